"""Differential profiles: which functions' share of the total grew or shrank.

Both profiles are normalised to their own totals, so a before/after pair recorded for
different lengths of time (or at different rates) compares fairly.  Per function
(function + file): ``base_pct``/``new_pct`` are self shares (the function's own code),
``delta_pp = new_pct - base_pct`` in percentage points; inclusive (total) shares are
carried alongside.  Rows are sorted by ``|delta_pp|`` (then by inclusive change).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from perfkit.analysis.top import top
from perfkit.model import Profile


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

    @property
    def total_delta_pp(self) -> float:
        return self.new_total_pct - self.base_total_pct

    @property
    def status(self) -> str:
        if self.base_total_pct == 0 and self.new_total_pct > 0:
            return "new"
        if self.new_total_pct == 0 and self.base_total_pct > 0:
            return "gone"
        return "grew" if self.delta_pp > 0 else "shrank" if self.delta_pp < 0 else "same"

    def to_json(self) -> dict:
        return {"function": self.function, "file": self.file, "line": self.line,
                "base_pct": round(self.base_pct, 3), "new_pct": round(self.new_pct, 3),
                "delta_pp": round(self.delta_pp, 3), "base_total_pct": round(self.base_total_pct, 3),
                "new_total_pct": round(self.new_total_pct, 3), "total_delta_pp": round(self.total_delta_pp, 3),
                "base_self": self.base_value, "new_self": self.new_value, "status": self.status}


@dataclass
class DiffResult:
    rows: list[DiffRow]
    base_total: int
    new_total: int
    value_type: str
    unit: str
    limit: int = 20  # rows shown in the terminal table
    notes: list[str] = field(default_factory=list)

    def to_json(self, limit: int | None = None) -> dict:
        rows = self.rows[:limit] if limit else self.rows
        return {"value_type": self.value_type, "unit": self.unit, "base_total": self.base_total,
                "new_total": self.new_total, "rows": [r.to_json() for r in rows], "notes": self.notes}


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


def diff(base: Profile, new: Profile, value: str | None = None) -> DiffResult:
    """Per-function change of share between ``base`` and ``new`` (each normalised to its total)."""
    bi, ni = base.value_index(value), new.value_index(value)
    brows = {(r.function, r.file): r for r in top(base, bi)}
    nrows = {(r.function, r.file): r for r in top(new, ni)}
    rows = []
    for key in brows.keys() | nrows.keys():
        b, n = brows.get(key), nrows.get(key)
        line = n.line if n is not None else b.line
        bp, np_ = (b.self_pct if b else 0.0), (n.self_pct if n else 0.0)
        rows.append(DiffRow(key[0], key[1], line, bp, np_, np_ - bp,
                            b.total_pct if b else 0.0, n.total_pct if n else 0.0,
                            b.self_value if b else 0, n.self_value if n else 0))
    rows.sort(key=lambda r: (-abs(r.delta_pp), -abs(r.total_delta_pp), r.function, r.file))
    nvt = new.sample_types[ni]
    notes = []
    bvt = base.sample_types[bi]
    if str(bvt) != str(nvt):
        notes.append(f"note: comparing base {bvt} with new {nvt}")
    if base.total(bi) == 0 or new.total(ni) == 0:
        notes.append("note: one of the profiles is empty; shares are 0")
    return DiffResult(rows, base.total(bi), new.total(ni), nvt.type, nvt.unit, notes=notes)
