"""The ``perfkit top`` loop: feed the sliding window, read /proc, answer keys, draw.

One thread does everything (py-spy children are spawned and reaped from it, as the
supervisor asks).  Every ~50 ms it collects finished py-spy windows, starts the next,
reads /proc twice a second, handles keys, and redraws when a window finished or the
refresh delay passed.  It ends on ``q``, Ctrl-C/SIGTERM/SIGHUP, ``--duration``, or the
target's exit; whatever the reason every py-spy is asked to stop (SIGINT: it
detaches) and a launched program is stopped the way ``perfkit cpu`` stops it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from perfkit.procs.signals import StopRequest
from perfkit.top.procwatch import ProcWatch
from perfkit.top.view import TopFrame
from perfkit.top.window import SlidingWindow, rows, thread_shares

WINDOW_S = 1  # each py-spy window: the view updates this often
GIL_WINDOW_S = 2
TICK_S = 0.05
PROC_EVERY_S = 0.5
_FAILED_WINDOWS = 3  # consecutive windows with nothing and an error: give up with that error


@dataclass
class TopOptions:
    rate: int = 100
    window: float = 10.0  # seconds the shares cover
    delay: float = 1.0  # seconds between refreshes (snapshots when not a terminal)
    duration: float | None = None
    gil_rate: int = 20  # 0: no GIL stream
    native: bool = False
    nonblocking: bool = False
    subprocesses: bool = False
    sort: str = "own"
    by_line: bool = False
    show_threads: bool = True


@dataclass
class State:
    sort: str = "own"
    by_line: bool = False
    show_threads: bool = True
    paused: bool = False
    thread_index: int = -1  # -1: all threads
    quit: bool = False
    frozen: TopFrame | None = None

    def key(self, k: str, threads: Callable[[], list]) -> bool:
        """Apply one key (``threads()`` lists the threads, for T); True when the view should redraw."""
        if k in ("q", "Q"):
            self.quit = True
        elif k == "1":
            self.sort = "own"
        elif k == "2":
            self.sort = "total"
        elif k == "s":
            self.sort = "total" if self.sort == "own" else "own"
        elif k in ("l", "L"):
            self.by_line = not self.by_line
        elif k == "t":
            self.show_threads = not self.show_threads
        elif k in ("T", "\t"):
            self.thread_index = self.thread_index + 1 if self.thread_index + 1 < len(threads()) else -1
        elif k in (" ", "p", "P"):
            self.paused = not self.paused
        else:
            return False
        return True


@dataclass
class Outcome:
    frames: list[TopFrame] = field(default_factory=list)  # snapshots kept (plain / JSON modes)
    last: TopFrame | None = None
    reason: str = "quit"  # quit, duration, interrupt, target-exit
    program: object = None  # supervisor.Outcome of a launched program


def run(pid: int, who: str, opts: TopOptions, *, show: Callable[[TopFrame], None], keys,
        every: float | None = None, keep: bool = False, program=None) -> Outcome:
    """Run the view until it ends; ``show(frame)`` draws (every refresh, or every ``every`` s)."""
    from perfkit.tools.pyspy import RecordOptions
    from perfkit.tools.pyspy_stream import Stream

    state = State(sort=opts.sort, by_line=opts.by_line, show_threads=opts.show_threads)
    out = Outcome()
    sw = SlidingWindow(span=opts.window)
    watch = ProcWatch(pid)
    main = Stream(pid, RecordOptions(duration=WINDOW_S, rate=opts.rate, native=opts.native,
                                     nonblocking=opts.nonblocking, subprocesses=opts.subprocesses))
    gil = Stream(pid, RecordOptions(duration=GIL_WINDOW_S, rate=opts.gil_rate, gil=True, nonblocking=True,
                                    subprocesses=opts.subprocesses), exe=main.exe) if opts.gil_rate else None
    started = time.monotonic()
    next_proc = started
    next_show = started + (every if every is not None else opts.delay)
    failures = 0
    dirty = False
    try:
        with StopRequest() as stop:
            while True:
                now = time.monotonic()
                for r in main.poll(now):
                    sw.add(r)
                    dirty = True
                    failures = failures + 1 if (r.error is not None and not r.samples) else 0
                    if failures >= _FAILED_WINDOWS and watch.latest is not None and not watch.gone:
                        raise r.error  # type: ignore[misc]
                if gil is not None:
                    for r in gil.poll(now):
                        sw.add(r, gil=True)
                if now >= next_proc:
                    watch.read(now)
                    next_proc = now + PROC_EVERY_S
                for k in keys.read(TICK_S):
                    if state.key(k, lambda: _threads(sw, watch)):
                        dirty = True
                    if k in ("r", "R"):
                        sw.reset()
                        dirty = True
                if state.quit:
                    out.reason = "quit"
                    break
                if stop.signal is not None:
                    out.reason = "interrupt"
                    break
                if program is not None and not program.running():
                    out.reason = "target-exit"
                    break
                if watch.gone:
                    out.reason = "target-exit"
                    break
                if opts.duration is not None and now - started >= opts.duration:
                    out.reason = "duration"
                    break
                due = every is None and dirty or (every is not None and now >= next_show)
                if due:
                    if state.paused and state.frozen is not None and every is None:
                        frame = state.frozen  # paused: the screen keeps what it showed (sampling goes on)
                    else:
                        frame = build(sw, watch, who, state)
                        show(frame)
                        if keep:
                            out.frames.append(frame)
                    state.frozen = frame if state.paused else None
                    out.last = frame
                    dirty = False
                    if every is not None:
                        next_show = now + every
    finally:
        for r in main.close():
            sw.add(r)
        if gil is not None:
            gil.close()
    if out.reason in ("duration", "target-exit") or out.last is None:
        watch.read(time.monotonic())
        out.last = build(sw, watch, who, state)
        if every is not None:  # snapshots: the final state is always the last one shown
            show(out.last)
            if keep:
                out.frames.append(out.last)
    return out


def _threads(sw: SlidingWindow, watch: ProcWatch) -> list:
    stats = sw.stats()
    start, end = sw.start, sw.end
    cpu = watch.thread_cpu(start, end) if start is not None and end is not None else None
    return thread_shares(sw.merged(), stats, cpu, sw.gil_counts())


def build(sw: SlidingWindow, watch: ProcWatch, who: str, state: State, threads=None) -> TopFrame:
    stats = sw.stats()
    profile = sw.merged()
    start, end = sw.start, sw.end
    known = start is not None and end is not None
    cpu = watch.thread_cpu(start, end) if known else None  # type: ignore[arg-type]
    threads = threads if threads is not None else thread_shares(profile, stats, cpu, sw.gil_counts())
    one = threads[state.thread_index] if 0 <= state.thread_index < len(threads) else None
    table = rows(profile, stats, threads, by_line=state.by_line, sort=state.sort, thread=one.tid if one else None)
    latest = watch.latest
    span = stats.span_s or 0.0
    proc_cpu = watch.process_cpu(start, end) if known else None  # type: ignore[arg-type]
    trend = []
    rs = list(watch.readings)
    for a, b in zip(rs, rs[1:], strict=False):
        if b.at > a.at:
            trend.append(max(0.0, (b.cpu_s - a.cpu_s) / (b.at - a.at)))
    return TopFrame(who=who, stats=stats, rows=table, threads=threads, cpu=proc_cpu,
                    rss=latest.rss if latest else None, nthreads=len(latest.threads) if latest else None,
                    cpu_trend=trend[-60:], rss_trend=watch.series("rss"), threads_trend=watch.series("threads"),
                    sort=state.sort, by_line=state.by_line, show_threads=state.show_threads, thread=one,
                    paused=state.paused, pyspy_cpu=(stats.pyspy_cpu_s / span) if span else None,
                    clock=time.strftime("%H:%M:%S"))


__all__ = ["TopOptions", "run", "build", "Outcome"]
