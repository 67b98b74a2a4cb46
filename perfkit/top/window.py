"""The sliding window behind ``perfkit top``: py-spy windows in, shares and rates out.

Two streams feed it (see :mod:`perfkit.tools.pyspy_stream`): *samples* (py-spy's
default: the threads that are running, each tick) and *gil* (``--gil --nonblocking``
at a lower rate: only the thread holding the GIL).  Each finished py-spy window
took exactly ``seconds x rate`` ticks (py-spy counts intervals, however late), so:

* the achieved sample rate is ticks / the window's wall time, measured;
* a thread's GIL share is its --gil samples / that stream's ticks;
* a thread's *active* share is its samples / ticks (py-spy's idle detection).

Function shares are **idle-corrected**: each thread's samples are weighted by
``min(1, CPU share from /proc ticks / active share)``, so a thread py-spy calls active
while /proc shows it burned no CPU (blocked in C, runnable but not running) does not
dilute where the CPU really goes.  The weights are shown per thread.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from perfkit.model import SAMPLES, Labels, Profile, ProfileBuilder


@dataclass
class ThreadShare:
    tid: int | None
    name: str | None
    samples: int = 0  # active samples in the window
    active: float = 0.0  # active samples / ticks (py-spy)
    cpu: float | None = None  # /proc CPU over the window, cores (1.0 = one core)
    gil: float | None = None  # share of ticks holding the GIL
    weight: float = 1.0  # idle correction applied to its samples

    def to_json(self) -> dict:
        return {"tid": self.tid, "name": self.name, "samples": self.samples, "active": round(self.active, 4),
                "cpu": None if self.cpu is None else round(self.cpu, 4),
                "gil": None if self.gil is None else round(self.gil, 4), "weight": round(self.weight, 4)}


@dataclass
class Row:
    function: str
    file: str
    line: int
    own: float  # idle-corrected share of the process's on-CPU samples, 0-1
    total: float
    own_s: float  # seconds of the window the function was running (py-spy top's OwnTime)
    total_s: float

    def to_json(self) -> dict:
        return {"function": self.function, "file": self.file, "line": self.line, "own": round(self.own, 4),
                "total": round(self.total, 4), "own_s": round(self.own_s, 3), "total_s": round(self.total_s, 3)}


@dataclass
class WindowStats:
    span_s: float  # wall time the samples cover
    ticks: float  # sampling intervals in the window (main stream)
    rate: int  # requested
    achieved_rate: float
    samples: int  # active samples kept
    errors: int
    windows: int
    gil_ticks: float = 0.0
    lag: str | None = None
    failure: str | None = None  # the newest window's failure, if it produced nothing
    pyspy_cpu_s: float = 0.0  # py-spy's own CPU time over the window

    def to_json(self) -> dict:
        return {"span_s": round(self.span_s, 3), "ticks": round(self.ticks), "rate": self.rate,
                "achieved_rate": round(self.achieved_rate, 2), "samples": self.samples, "errors": self.errors,
                "windows": self.windows, "gil_ticks": round(self.gil_ticks), "lag": self.lag,
                "failure": self.failure, "pyspy_cpu_s": round(self.pyspy_cpu_s, 3)}


@dataclass
class Entry:
    result: object  # pyspy_stream.WindowResult
    ticks: float


@dataclass
class SlidingWindow:
    """The last ``span`` seconds of py-spy windows of both streams."""

    span: float = 10.0
    main: deque = field(default_factory=deque)
    gil: deque = field(default_factory=deque)

    def add(self, result, *, gil: bool = False) -> None:
        ticks = _ticks(result)
        (self.gil if gil else self.main).append(Entry(result, ticks))
        self._trim(result.ended)

    def reset(self) -> None:
        self.main.clear()
        self.gil.clear()

    def _trim(self, now: float) -> None:
        for q in (self.main, self.gil):
            while q and q[0].result.ended <= now - self.span:
                q.popleft()

    @property
    def start(self) -> float | None:
        return self.main[0].result.started if self.main else None

    @property
    def end(self) -> float | None:
        return self.main[-1].result.ended if self.main else None

    # ------------------------------------------------------------ aggregates
    def merged(self) -> Profile:
        """Every active sample of the window as one profile (values: samples)."""
        b = ProfileBuilder([SAMPLES])
        for e in self.main:
            p = e.result.profile
            if p is None:
                continue
            for s in p.samples:
                b.add([p.frames[i] for i in s.stack], (s.values[0],), _thread_labels(s.labels))
        return b.build()

    def stats(self) -> WindowStats:
        wins = [e.result for e in self.main]
        ticks = sum(e.ticks for e in self.main)
        wall = sum(r.seconds for r in wins)
        span = (wins[-1].ended - wins[0].started) if wins else 0.0
        rate = wins[-1].rate if wins else 0
        lag = next((r.lag for r in reversed(wins) if r.lag), None)
        failure = wins[-1].failure if wins else None
        # each window's wall time runs from py-spy's "Sampling process" line to its exit:
        # a few ms of start/end jitter can put ticks/wall above what py-spy was asked for
        achieved = min(float(rate), ticks / wall) if wall > 0 else 0.0
        return WindowStats(span_s=span, ticks=ticks, rate=rate, achieved_rate=achieved,
                           samples=sum(r.samples for r in wins), errors=sum(r.errors for r in wins),
                           windows=len(wins), gil_ticks=sum(e.ticks for e in self.gil), lag=lag, failure=failure,
                           pyspy_cpu_s=sum(r.cpu_s for r in wins) + sum(e.result.cpu_s for e in self.gil))

    def gil_counts(self) -> dict[int | None, int]:
        out: dict[int | None, int] = {}
        for e in self.gil:
            p = e.result.profile
            if p is None:
                continue
            for s in p.samples:
                out[s.labels.tid] = out.get(s.labels.tid, 0) + s.values[0]
        return out


def _thread_labels(labels: Labels) -> Labels:
    return Labels(labels.pid, labels.tid, labels.thread)


def _ticks(result) -> float:
    return result.ticks


def thread_shares(profile: Profile, stats: WindowStats, cpu: dict[int, tuple[float, str]] | None,
                  gil: dict[int | None, int]) -> list[ThreadShare]:
    """Per thread: samples, active share, /proc CPU (cores), GIL share, and the idle-correction weight."""
    by_tid: dict[int | None, ThreadShare] = {}
    for s in profile.samples:
        t = by_tid.get(s.labels.tid)
        if t is None:
            t = by_tid[s.labels.tid] = ThreadShare(s.labels.tid, s.labels.thread)
        t.samples += s.values[0]
    for tid, (_, name) in (cpu or {}).items():
        if tid not in by_tid:
            by_tid[tid] = ThreadShare(tid, name)
    for t in by_tid.values():
        t.active = t.samples / stats.ticks if stats.ticks else 0.0
        if cpu is not None and t.tid in cpu:
            t.cpu = cpu[t.tid][0]
            if not t.name:
                t.name = cpu[t.tid][1]
            # idle correction: never up-weight; a thread active in py-spy's eyes but
            # burning no CPU counts for what /proc says it burned
            t.weight = min(1.0, t.cpu / t.active) if t.active > 0 else 1.0
        if stats.gil_ticks:
            t.gil = gil.get(t.tid, 0) / stats.gil_ticks
    return sorted(by_tid.values(), key=lambda t: (-(t.cpu or 0.0), -t.samples, t.tid or 0))


def rows(profile: Profile, stats: WindowStats, threads: list[ThreadShare], *, by_line: bool = False,
         sort: str = "own", thread: int | None = None) -> list[Row]:
    """Functions (or lines) by idle-corrected own and total share, optionally of one thread.

    ``analysis.top`` twice: on the samples weighted by their thread's idle correction
    (the shares) and on the raw counts (the seconds, as py-spy top's OwnTime)."""
    from dataclasses import replace

    from perfkit.analysis.top import top
    from perfkit.model import Sample

    weight = {t.tid: t.weight for t in threads}
    raw = [s for s in profile.samples if s.stack and (thread is None or s.labels.tid == thread)]
    scale = 1_000_000  # weights to integers: shares keep six digits
    counted = replace(profile, samples=raw, sample_types=[SAMPLES], timeline=None)
    weighted = replace(counted, samples=[Sample(s.stack, (round(s.values[0] * weight.get(s.labels.tid, 1.0) * scale),),
                                                s.labels) for s in raw])
    shares = {(r.function, r.file, r.line if by_line else 0): r for r in top(weighted, 0, by_line=by_line)}
    interval = 1.0 / stats.achieved_rate if stats.achieved_rate else 0.0
    out = []
    for n in top(counted, 0, by_line=by_line):  # every function seen, idle ones at a 0 share
        r = shares.get((n.function, n.file, n.line if by_line else 0))
        out.append(Row(n.function, n.file, n.line, r.self_pct / 100.0 if r else 0.0, r.total_pct / 100.0 if r else 0.0,
                       n.self_value * interval, n.total_value * interval))
    if sort == "total":
        out.sort(key=lambda r: (-r.total, -r.own, r.function, r.file, r.line))
    else:
        out.sort(key=lambda r: (-r.own, -r.total, r.function, r.file, r.line))
    return out
