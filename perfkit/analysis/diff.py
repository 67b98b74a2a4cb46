"""Differential profiles: what changed between BASE and NEW, and whether it is real.

Per function (function + file), for both profiles:

* **shares**: self and total (inclusive) value as % of that profile's total
  (``base_pct``/``new_pct`` self, ``base_total_pct``/``new_total_pct`` inclusive), so
  recordings of different lengths or rates compare; ``delta_pp`` and
  ``total_delta_pp`` are the changes in percentage points;
* **absolute rates** (when both recordings know their duration): self and total value
  per second of recording (``*_per_s``), and their change.  When both durations are
  equal this is exactly ``pprof -diff_base`` (new minus base) divided by the duration;
  when they differ each side is divided by its own duration first, so a 30 s recording
  does not "grow" everything against a 10 s one.  Without durations the raw values are
  subtracted, as ``pprof -diff_base`` does.

Rows are ranked by the larger of |self Δ| and |total Δ| (``change_pp``, with its sign):
a function that vanished with no self time of its own (a wrapper whose callees now run
elsewhere) ranks by its inclusive change.  Other orders: ``self``, ``total``, ``abs``
(the absolute per-second change), ``name``.

**Status**: ``appeared`` / ``vanished`` when one side has none of it; otherwise
``grew`` / ``shrank`` / ``same``, decided on the absolute per-second values when both
durations are known (code whose work per second did not change is ``same`` even if its
*share* moved because other code grew) and on the shares otherwise.  A change is
``noise`` when it lies within sampling error: sampled profiles (a ``samples`` value)
get a two-sided interval on the sample counts — Poisson rates for per-second values,
two proportions for shares — at ``confidence`` (99 % by default; ``perfkit.stats``);
exact values (memray's bytes) have no sampling error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from perfkit import stats
from perfkit.analysis.top import top
from perfkit.model import Profile

CONFIDENCE = 0.99
SORTS = ("change", "self", "total", "abs", "name")


@dataclass(frozen=True)
class DiffRow:
    function: str
    file: str
    line: int
    base_pct: float
    new_pct: float
    delta_pp: float
    base_total_pct: float
    new_total_pct: float
    base_value: int
    new_value: int
    base_total_value: int = 0
    new_total_value: int = 0
    base_per_s: float | None = None  # self value per second of recording
    new_per_s: float | None = None
    base_total_per_s: float | None = None
    new_total_per_s: float | None = None
    interval_pp: tuple[float, float] | None = None  # of change_pp (shares), None for exact values
    interval_per_s: tuple[float, float] | None = None  # of the same measure per second
    noise: bool | None = None  # the change lies within sampling error (None: exact values)

    @property
    def total_delta_pp(self) -> float:
        return self.new_total_pct - self.base_total_pct

    @property
    def by_total(self) -> bool:
        """The row ranks by its inclusive change (larger than its self change)."""
        return abs(self.total_delta_pp) > abs(self.delta_pp)

    @property
    def change_pp(self) -> float:
        return self.total_delta_pp if self.by_total else self.delta_pp

    @property
    def delta_per_s(self) -> float | None:
        b, n = (self.base_total_per_s, self.new_total_per_s) if self.by_total else (self.base_per_s, self.new_per_s)
        return None if b is None or n is None else n - b

    @property
    def status(self) -> str:
        if self.base_total_value == 0 and self.new_total_value > 0:
            return "appeared"
        if self.new_total_value == 0 and self.base_total_value > 0:
            return "vanished"
        if self.noise:
            return "same"
        d = self.delta_per_s if self.delta_per_s is not None else self.change_pp
        return "grew" if d > 0 else "shrank" if d < 0 else "same"

    def to_json(self) -> dict:
        def r(x, n=3):
            return None if x is None else round(x, n)

        return {"function": self.function, "file": self.file, "line": self.line,
                "base_pct": r(self.base_pct), "new_pct": r(self.new_pct), "delta_pp": r(self.delta_pp),
                "base_total_pct": r(self.base_total_pct), "new_total_pct": r(self.new_total_pct),
                "total_delta_pp": r(self.total_delta_pp), "change_pp": r(self.change_pp),
                "ranked_by": "total" if self.by_total else "self",
                "base_self": self.base_value, "new_self": self.new_value,
                "base_total": self.base_total_value, "new_total": self.new_total_value,
                "base_self_per_s": r(self.base_per_s, 6), "new_self_per_s": r(self.new_per_s, 6),
                "base_total_per_s": r(self.base_total_per_s, 6), "new_total_per_s": r(self.new_total_per_s, 6),
                "delta_per_s": r(self.delta_per_s, 6),
                "interval_pp": None if self.interval_pp is None else [r(x) for x in self.interval_pp],
                "interval_per_s": None if self.interval_per_s is None else [r(x, 6) for x in self.interval_per_s],
                "noise": self.noise, "status": self.status}


@dataclass
class DiffResult:
    rows: list[DiffRow]
    base_total: int
    new_total: int
    value_type: str
    unit: str
    limit: int = 20  # rows shown in the terminal table
    notes: list[str] = field(default_factory=list)
    base_duration_s: float | None = None
    new_duration_s: float | None = None
    sort: str = "change"
    confidence: float = CONFIDENCE
    sampled: bool = False  # noise intervals come from sample counts

    @property
    def absolute(self) -> bool:
        return bool(self.base_duration_s and self.new_duration_s)

    def appeared(self) -> list[DiffRow]:
        return [r for r in self.rows if r.status == "appeared"]

    def vanished(self) -> list[DiffRow]:
        return [r for r in self.rows if r.status == "vanished"]

    def to_json(self, limit: int | None = None) -> dict:
        rows = self.rows[:limit] if limit else self.rows
        return {"value_type": self.value_type, "unit": self.unit, "base_total": self.base_total,
                "new_total": self.new_total, "base_duration_s": self.base_duration_s,
                "new_duration_s": self.new_duration_s, "absolute": self.absolute, "sort": self.sort,
                "noise_test": ({"confidence": self.confidence, "on": "sample counts"} if self.sampled else None),
                "rows": [r.to_json() for r in rows],
                "appeared": [r.to_json() for r in self.appeared()],
                "vanished": [r.to_json() for r in self.vanished()], "notes": self.notes}


_KINDS = {"bytes": "space", "nanoseconds": "time", "microseconds": "time", "milliseconds": "time",
          "seconds": "time"}


def _kind(vt) -> str:
    if vt.unit in _KINDS:
        return _KINDS[vt.unit]
    if vt.type in ("samples", "cpu", "wall", "time"):
        return "time"
    return f"{vt.type}/{vt.unit}"


def check_comparable(base: Profile, new: Profile, value: str | None = None) -> None:
    """Refuse (exit 2) to compare different kinds of value: CPU time with heap bytes, say.

    With ``value`` both profiles must have that type; without it their default types
    must measure the same kind of thing (time, space, objects …).
    """
    from perfkit.errors import UsageError

    if value is not None:
        base.value_index(value)
        new.value_index(value)
        return
    bvt, nvt = base.sample_types[base.default_index], new.sample_types[new.default_index]
    if _kind(bvt) == _kind(nvt):
        return
    common = [vt.type for vt in base.sample_types if any(vt.type == w.type for w in new.sample_types)]
    raise UsageError(f"cannot compare {bvt} (base) with {nvt} (new): they measure different things",
                     f"choose a value type both have with --value ({', '.join(common)})" if common else
                     "diff two CPU profiles or two heap profiles")


def _count_index(p: Profile) -> int | None:
    for i, vt in enumerate(p.sample_types):
        if vt.type == "samples":
            return i
    return None


def _duration(p: Profile) -> float | None:
    d = p.recording.duration_s
    return float(d) if d and d > 0 else None


def _z(confidence: float) -> float:
    return stats.norm_ppf(1.0 - (1.0 - confidence) / 2.0)


def _prop_interval(b: int, bt: int, n: int, nt: int, z: float) -> tuple[float, float]:
    """Interval (pp) of the change of share n/nt − b/bt (two proportions, normal approximation)."""
    p1 = b / bt if bt else 0.0
    p2 = n / nt if nt else 0.0
    var = (p1 * (1 - p1) / bt if bt else 0.0) + (p2 * (1 - p2) / nt if nt else 0.0)
    # a count of 0 is not known to be exactly 0: at least one count's worth of uncertainty
    var = max(var, (1.0 / bt if bt else 0.0) ** 2 + (1.0 / nt if nt else 0.0) ** 2)
    half = z * math.sqrt(var) * 100.0
    d = (p2 - p1) * 100.0
    return d - half, d + half


def _rate_interval(b: int, tb: float, n: int, tn: float, z: float) -> tuple[float, float]:
    """Interval of the change of a Poisson rate n/tn − b/tb (counts per second)."""
    d = n / tn - b / tb
    half = z * math.sqrt(max(b, 1) / tb ** 2 + max(n, 1) / tn ** 2)
    return d - half, d + half


def diff(base: Profile, new: Profile, value: str | None = None, *, sort: str = "change",
         confidence: float = CONFIDENCE) -> DiffResult:
    """Per-function change between ``base`` and ``new`` (see the module docstring)."""
    bi, ni = base.value_index(value), new.value_index(value)
    brows = {(r.function, r.file): r for r in top(base, bi)}
    nrows = {(r.function, r.file): r for r in top(new, ni)}
    bci, nci = _count_index(base), _count_index(new)
    bcounts = {(r.function, r.file): r for r in top(base, bci)} if bci is not None and nci is not None else None
    ncounts = {(r.function, r.file): r for r in top(new, nci)} if bcounts is not None else None
    bt, nt = base.total(bci) if bcounts is not None else 0, new.total(nci) if ncounts is not None else 0
    tb, tn = _duration(base), _duration(new)
    absolute = bool(tb and tn)
    z = _z(confidence)
    rows = []
    for key in brows.keys() | nrows.keys():
        b, n = brows.get(key), nrows.get(key)
        line = n.line if n is not None else (b.line if b is not None else 0)
        bp, np_ = (b.self_pct if b else 0.0), (n.self_pct if n else 0.0)
        row = DiffRow(key[0], key[1], line, bp, np_, np_ - bp,
                      b.total_pct if b else 0.0, n.total_pct if n else 0.0,
                      b.self_value if b else 0, n.self_value if n else 0,
                      b.total_value if b else 0, n.total_value if n else 0)
        if tb and tn:
            row = _with(row, base_per_s=row.base_value / tb, new_per_s=row.new_value / tn,
                        base_total_per_s=row.base_total_value / tb, new_total_per_s=row.new_total_value / tn)
        if bcounts is not None and ncounts is not None and bt and nt:
            bc, nc = bcounts.get(key), ncounts.get(key)
            bx = (bc.total_value if bc else 0) if row.by_total else (bc.self_value if bc else 0)
            nx = (nc.total_value if nc else 0) if row.by_total else (nc.self_value if nc else 0)
            ipp = _prop_interval(bx, bt, nx, nt, z)
            if tb and tn:
                lo, hi = _rate_interval(bx, tb, nx, tn, z)
                scale = _per_count(row, bx, nx)
                ips = (lo * scale, hi * scale)
                noise = lo <= 0.0 <= hi
            else:
                ips = None
                noise = ipp[0] <= 0.0 <= ipp[1]
            row = _with(row, interval_pp=ipp, interval_per_s=ips, noise=noise)
        rows.append(row)
    rows.sort(key=_sort_key(sort))
    nvt = new.sample_types[ni]
    notes = []
    bvt = base.sample_types[bi]
    if str(bvt) != str(nvt):
        notes.append(f"note: comparing base {bvt} with new {nvt}")
    if base.total(bi) == 0 or new.total(ni) == 0:
        notes.append("note: one of the profiles is empty; shares are 0")
    if not absolute:
        notes.append("recording durations unknown: absolute changes are raw value differences (pprof -diff_base); "
                     "shares are normalised to each profile's total")
    elif tb and tn and abs(tb - tn) > 0.05 * max(tb, tn):
        notes.append(f"durations differ ({tb:.1f} s vs {tn:.1f} s): absolute values are per second of each "
                     f"recording")
    return DiffResult(rows, base.total(bi), new.total(ni), nvt.type, nvt.unit, notes=notes, base_duration_s=tb,
                      new_duration_s=tn, sort=sort, confidence=confidence, sampled=bcounts is not None)


def _per_count(row: DiffRow, bx: int, nx: int) -> float:
    """Value per sample count (to turn a count-rate interval into a value-rate interval)."""
    bv = row.base_total_value if row.by_total else row.base_value
    nv = row.new_total_value if row.by_total else row.new_value
    counts = bx + nx
    return (bv + nv) / counts if counts else 0.0


def _with(row: DiffRow, **changes) -> DiffRow:
    from dataclasses import replace

    return replace(row, **changes)


def _sort_key(sort: str):
    if sort == "self":
        return lambda r: (-abs(r.delta_pp), -abs(r.total_delta_pp), r.function, r.file)
    if sort == "total":
        return lambda r: (-abs(r.total_delta_pp), -abs(r.delta_pp), r.function, r.file)
    if sort == "abs":
        return lambda r: (-abs(r.delta_per_s if r.delta_per_s is not None else
                                r.new_total_value - r.base_total_value), -abs(r.change_pp), r.function, r.file)
    if sort == "name":
        return lambda r: (r.function, r.file)
    return lambda r: (-abs(r.change_pp), -abs(r.delta_pp), r.function, r.file)
