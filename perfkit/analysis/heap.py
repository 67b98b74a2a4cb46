"""Heap summaries: the peak, the top allocation sites, what stayed alive, RSS vs heap.

Pure functions over a heap ``Profile`` (value types alloc_space, alloc_objects,
inuse_space, inuse_objects, as the memray collector writes them).  An allocation
*site* is the leaf frame of a stack (the line that asked for the memory) together with
the innermost frame of the user's own code on that stack (``user_*``, see
:mod:`perfkit.analysis.yourcode`): a site inside the standard library or a package is
listed under the user's line that led to it, so the table points at code a person can
change.  ``caller`` is the nearest frame above the leaf in a different file.

Import-time stacks (module code run by the import system) are left out of the tables
unless ``show_imports``; ``hidden_*`` says how much that was.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from perfkit import paths
from perfkit.analysis import yourcode
from perfkit.model import HeapFacts, Profile
from perfkit.units import human_bytes

LARGE_ALIVE_FRACTION = 0.10  # of all bytes allocated: "a lot is still alive"


@dataclass(frozen=True)
class Site:
    function: str
    file: str
    line: int
    bytes: int
    count: int
    pct: float  # of the total of the value ranked (allocated or alive), import-time stacks included
    caller: str = ""  # "function file:line" of the nearest caller in another file
    user_function: str = ""  # the innermost frame of the user's own code on the stack ("" if none)
    user_file: str = ""
    user_line: int = 0

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}" if self.file else ""

    @property
    def in_user_code(self) -> bool:
        """The allocating line is itself the user's."""
        return bool(self.user_function) and (self.user_function, self.user_file, self.user_line) == \
            (self.function, self.file, self.line)

    def to_json(self) -> dict:
        your = ({"function": self.user_function, "file": self.user_file, "line": self.user_line}
                if self.user_function else None)
        return {"your_code": your, "function": self.function, "file": self.file, "line": self.line,
                "bytes": self.bytes, "count": self.count, "pct": round(self.pct, 3), "caller": self.caller}


@dataclass(frozen=True)
class RssExplanation:
    """How much of the process's resident memory memray tracked as heap, and why not all."""

    rss_bytes: int | None
    heap_bytes: int | None
    tracked_pct: float | None
    rss_growth: int | None
    heap_growth: int | None
    attached: bool
    lines: list[str]

    def to_json(self) -> dict:
        return {"rss_bytes": self.rss_bytes, "heap_bytes": self.heap_bytes,
                "tracked_pct": None if self.tracked_pct is None else round(self.tracked_pct, 2),
                "rss_growth_bytes": self.rss_growth, "heap_growth_bytes": self.heap_growth,
                "attached": self.attached, "text": self.lines}


@dataclass
class HeapSummary:
    target: str
    pid: int | None
    duration_s: float
    peak_heap: int | None
    peak_rss: int | None
    end_heap: int | None
    end_rss: int | None
    alloc_bytes: int
    alloc_count: int
    inuse_bytes: int
    inuse_count: int
    top_allocated: list[Site]
    top_alive: list[Site]
    peak_sites: list[Site]
    rss: RssExplanation
    notes: list[str] = field(default_factory=list)
    hidden_allocated: yourcode.Hidden | None = None  # import-time stacks left out of the tables
    hidden_alive: yourcode.Hidden | None = None
    your_code_alive: list[dict] = field(default_factory=list)  # the user's lines holding the most alive
    your_code_allocated: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"target": self.target, "pid": self.pid, "duration_s": self.duration_s,
                "peak_heap_bytes": self.peak_heap, "peak_rss_bytes": self.peak_rss,
                "end_heap_bytes": self.end_heap, "end_rss_bytes": self.end_rss,
                "totals": {"alloc_bytes": self.alloc_bytes, "alloc_count": self.alloc_count,
                           "inuse_bytes": self.inuse_bytes, "inuse_count": self.inuse_count},
                "top_allocated": [s.to_json() for s in self.top_allocated],
                "top_alive": [s.to_json() for s in self.top_alive],
                "peak_sites": [s.to_json() for s in self.peak_sites],
                "rss_vs_heap": self.rss.to_json(), "notes": self.notes,
                "your_code_alive": self.your_code_alive, "your_code_allocated": self.your_code_allocated,
                "import_time_hidden": None if self.hidden_alive is None else {
                    "allocated": self.hidden_allocated.to_json() if self.hidden_allocated else None,
                    "alive": self.hidden_alive.to_json()}}


def _index(profile: Profile, name: str) -> int:
    return profile.value_index(name)


def top_sites(profile: Profile, space: str = "alloc_space", objects: str = "alloc_objects",
              limit: int | None = 10, *, hide_imports: bool = False) -> list[Site]:
    """Allocation sites ranked by ``space`` bytes: one row per (leaf line, innermost user line)."""
    bi, ci = _index(profile, space), _index(profile, objects)
    frames = profile.frames
    uflags = yourcode.user_flags(profile)
    iflags = yourcode.import_flags(profile) if hide_imports else None
    acc: dict[tuple, list] = {}
    grand = 0
    for s in profile.samples:
        v = s.values[bi]
        if not v or not s.stack:
            continue
        grand += v
        if iflags is not None and yourcode.is_import(s.stack, iflags):
            continue
        leaf = frames[s.stack[-1]]
        u = yourcode.innermost_user(s.stack, uflags)
        user = frames[u] if u is not None else None
        key = (leaf.function, leaf.file, leaf.line,
               user.function if user else "", user.file if user else "", user.line if user else 0)
        slot = acc.get(key)
        if slot is None:
            slot = acc[key] = [0, 0, {}]
        slot[0] += v
        slot[1] += s.values[ci]
        caller = _caller(profile, s.stack)
        if caller:
            slot[2][caller] = slot[2].get(caller, 0) + v
    rows = []
    for (fn, fl, ln, ufn, ufl, uln), (b, c, callers) in acc.items():
        caller = max(callers.items(), key=lambda kv: (kv[1], kv[0]))[0] if callers else ""
        rows.append(Site(fn, fl, ln, b, c, 100.0 * b / grand if grand else 0.0, caller, ufn, ufl, uln))
    rows.sort(key=lambda r: (-r.bytes, -r.count, r.user_function, r.user_file, r.user_line, r.function, r.file,
                             r.line))
    return rows[:limit] if limit else rows


def by_your_code(sites: list[Site], limit: int = 3) -> list[dict]:
    """The user's lines holding the most, over every site (a line that reaches several
    library sites counts once, with all of them)."""
    acc: dict[tuple, list] = {}
    for s in sites:
        if not s.user_function:
            continue
        k = (s.user_function, s.user_file, s.user_line)
        slot = acc.setdefault(k, [0, 0, 0.0, 0])
        slot[0] += s.bytes
        slot[1] += s.count
        slot[2] += s.pct
        slot[3] += 1
    rows = [{"function": k[0], "file": k[1], "line": k[2], "bytes": v[0], "count": v[1], "pct": round(v[2], 3),
             "sites": v[3]} for k, v in acc.items()]
    rows.sort(key=lambda r: (-r["bytes"], r["function"], r["file"], r["line"]))
    return rows[:limit]


def _caller(profile: Profile, stack: tuple[int, ...]) -> str:
    leaf = profile.frames[stack[-1]]
    if not leaf.file.endswith(".py"):  # a native leaf: point at the Python line that called it
        for i in reversed(stack[:-1]):
            f = profile.frames[i]
            if f.file.endswith(".py"):
                return f"{f.function} {f.file}:{f.line}"
    for i in reversed(stack[:-1]):
        f = profile.frames[i]
        if f.file and f.file != leaf.file:
            return f"{f.function} {f.file}:{f.line}"
    return ""


def peak_sites(profile: Profile, limit: int = 10, *, hide_imports: bool = False) -> list[Site]:
    heap = profile.recording.heap or HeapFacts()
    raw = [r for r in (heap.peak_top or []) if not (hide_imports and r.get("import"))]
    total = sum(int(r.get("bytes", 0)) for r in raw) or 0
    peak = heap.peak_heap_bytes or total
    rows = []
    for r in raw:
        fn, fl, ln = str(r.get("function", "")), str(r.get("file", "")), int(r.get("line", 0))
        if "user_function" in r:
            user = (str(r.get("user_function") or ""), str(r.get("user_file") or ""), int(r.get("user_line") or 0))
        else:  # a file from before perfkit kept the user's frame at the peak: only the leaf is known
            user = (fn, fl, ln) if paths.is_user(fl, fn) else ("", "", 0)
        b = int(r.get("bytes", 0))
        rows.append(Site(fn, fl, ln, b, int(r.get("count", 0)), 100.0 * b / peak if peak else 0.0, "", *user))
    return rows[:limit]


def explain_rss(profile: Profile) -> RssExplanation:
    """RSS vs the tracked heap, in words, so "missing" memory does not mislead."""
    hb = human_bytes  # noqa: N806
    facts = profile.recording.heap or HeapFacts()
    rss, heap = facts.end_rss_bytes, facts.end_heap_bytes
    attached = profile.recording.attached
    rss_series = profile.series.get("rss_bytes") or []
    heap_series = profile.series.get("heap_bytes") or []
    rss_growth = int(rss_series[-1][1] - rss_series[0][1]) if len(rss_series) > 1 else None
    heap_growth = int(heap_series[-1][1] - heap_series[0][1]) if len(heap_series) > 1 else None
    if not rss or heap is None:
        return RssExplanation(rss, heap, None, rss_growth, heap_growth, attached,
                              ["memray recorded no memory-over-time data, so RSS cannot be compared with the heap"])
    pct = 100.0 * heap / rss
    lines = [f"memray tracked {hb(heap)} of heap still allocated at the end: {pct:.0f}% of the process's "
             f"{hb(rss)} RSS."]
    if heap <= rss:
        rest = ("The rest is memory memray does not count as heap: the interpreter and loaded modules' code, "
                "native libraries and their static data, thread stacks, free space inside pymalloc arenas and "
                "malloc fragmentation (freed memory the allocator keeps instead of returning to the OS)")
        if attached:
            rest += (", and everything allocated before perfkit attached (memray only sees allocations made "
                     "while it tracks)")
        lines.append(rest + ".")
    else:
        lines.append("The tracked heap exceeds RSS: memory that is allocated but never written (large zeroed "
                     "buffers, mmap) is not resident, and swapped-out pages do not count in RSS.")
    if rss_growth is not None and heap_growth is not None:
        lines.append(f"During the capture RSS changed by {_signed(rss_growth, hb)} and the tracked heap by "
                     f"{_signed(heap_growth, hb)}.")
    return RssExplanation(rss, heap, pct, rss_growth, heap_growth, attached, lines)


def _signed(v: int, hb) -> str:
    return ("+" if v >= 0 else "-") + hb(abs(v))


def summarize(profile: Profile, limit: int = 10, *, show_imports: bool = False) -> HeapSummary:
    """The whole summary; import-time stacks are left out of the site tables (and counted
    in ``hidden_*``) unless ``show_imports``."""
    rec = profile.recording
    facts = rec.heap or HeapFacts()
    totals = facts.totals or {}
    ai, ii = _index(profile, "alloc_space"), _index(profile, "inuse_space")
    aoi, ioi = _index(profile, "alloc_objects"), _index(profile, "inuse_objects")
    alloc_b = totals.get("alloc_bytes", profile.total(ai))
    inuse_b = totals.get("inuse_bytes", profile.total(ii))
    notes = list(rec.notes)
    every_alive = top_sites(profile, "inuse_space", "inuse_objects", None, hide_imports=not show_imports)
    every_alloc = top_sites(profile, "alloc_space", "alloc_objects", None, hide_imports=not show_imports)
    return HeapSummary(
        target=str(rec.target or rec.source or "?"),
        pid=rec.pid,
        duration_s=float(rec.duration_s or 0.0),
        peak_heap=facts.peak_heap_bytes,
        peak_rss=facts.peak_rss_bytes,
        end_heap=facts.end_heap_bytes,
        end_rss=facts.end_rss_bytes,
        alloc_bytes=int(alloc_b),
        alloc_count=int(totals.get("alloc_count", profile.total(aoi))),
        inuse_bytes=int(inuse_b),
        inuse_count=int(totals.get("inuse_count", profile.total(ioi))),
        top_allocated=every_alloc[:limit] if limit else every_alloc,
        top_alive=every_alive[:limit] if limit else every_alive,
        peak_sites=peak_sites(profile, limit, hide_imports=not show_imports),
        rss=explain_rss(profile),
        notes=notes,
        hidden_allocated=None if show_imports else yourcode.import_noise(profile, ai, aoi),
        hidden_alive=None if show_imports else yourcode.import_noise(profile, ii, ioi),
        your_code_alive=by_your_code(every_alive),
        your_code_allocated=by_your_code(every_alloc),
    )


def for_leaks(profile: Profile) -> Profile:
    """The same profile with inuse_space as the default value (what outputs weigh by)."""
    from dataclasses import replace

    return replace(profile, default_index=_index(profile, "inuse_space"), recording=profile.recording.copy())
