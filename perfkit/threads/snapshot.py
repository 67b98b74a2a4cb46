"""Thread snapshots of a process (and optionally its children): py-spy stacks plus
per-thread CPU% measured from /proc over a short window that overlaps the dumps.

``py-spy dump --subprocesses`` silently drops children, so children are enumerated
here (/proc/PID/task/*/children, recursively) and dumped one py-spy each, in parallel
(at most ``MAX_PARALLEL`` at once, each with its own timeout).  OS threads that py-spy
does not report (native threads without Python frames) are listed with no frames.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from perfkit.procs import proc as procstat

MAX_PARALLEL = 4


@dataclass
class ProcessThreads:
    pid: int
    stacks: list = field(default_factory=list)  # pyspy.ThreadStack
    cpu: dict[int, dict] = field(default_factory=dict)  # tid -> {cpu_pct, name, new}
    native: list[int] = field(default_factory=list)  # OS threads py-spy did not report
    error: str | None = None  # why this process could not be dumped
    error_code: int | None = None


@dataclass
class Snapshot:
    processes: list[ProcessThreads]
    interval: float
    taken_at: float

    @property
    def errors(self) -> list[str]:
        return [f"pid {p.pid}: {p.error}" for p in self.processes if p.error]


def _dump(pid: int, nonblocking: bool, locals_: bool, timeout: float,
          native: bool = False) -> tuple[list, str | None, int | None]:
    from perfkit.errors import PerfkitError, ToolMissing
    from perfkit.tools import pyspy

    if procstat.state(pid) in ("T", "t"):
        nonblocking, native = True, False  # a blocking dump ptrace-stops it (and fails): never resume it
    try:
        return pyspy.dump(pid, nonblocking=nonblocking, locals_=locals_, native=native, timeout=timeout), None, None
    except ToolMissing:
        raise
    except PerfkitError as exc:
        return [], exc.message, exc.exit_code


POLL_S = 0.002  # how often a dump's pause of the target is looked for


class _PauseClock:
    """Seconds each target spent ptrace-stopped (state ``t``) while its dump ran.

    A blocking py-spy dump stops the target for its stack walk; a stopped thread's CPU
    counters do not move, so that time is taken out of the CPU window (else a busy
    thread reads low by the pause's share of the window).  The main thread's state
    stands for the process: py-spy stops and resumes every thread together.
    """

    def __init__(self, pids: list[int]) -> None:
        self.paused = dict.fromkeys(pids, 0.0)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="perfkit-pause-clock", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last = time.monotonic()
        was = dict.fromkeys(self.paused, False)
        while not self._done.wait(POLL_S):
            now = time.monotonic()
            for pid in self.paused:
                stopped = procstat.state(pid) == "t"
                # a poll step is half paused when the state changed within it (trapezoid rule:
                # counting it whole would overstate every pause by up to a step)
                self.paused[pid] += (now - last) * (was[pid] + stopped) / 2
                was[pid] = stopped
            last = now

    def stop(self) -> dict[int, float]:
        self._done.set()
        self._thread.join()
        return self.paused


def snapshot(pid: int, *, all_processes: bool = False, interval: float = 0.5, locals_: bool = False,
             nonblocking: bool = False, timeout: float = 10.0, native: bool = False,
             meanwhile: Callable[[], object] | None = None) -> Snapshot:
    """A py-spy dump of ``pid`` (and its children, in parallel) inside a CPU window of ``interval``.

    The window overlaps the dumps instead of preceding them: /proc is read, the dumps
    start, and /proc is read again once they are done and at least ``interval`` has
    passed — so a snapshot takes max(interval, dump) rather than their sum.  CPU % is
    over the window as measured (a dump that outlasts ``interval`` lengthens it), less
    the time a blocking dump kept the target stopped (:class:`_PauseClock`).
    ``meanwhile`` runs once the dumps are done, in what is left of the window (the
    caller's imports for its report, which then cost nothing).
    """
    pids = [pid] + (procstat.child_pids(pid) if all_processes else [])
    before: dict[int, dict] = {}
    for one in pids:
        try:
            before[one] = procstat.thread_cpu_times(one, precise=True)
        except procstat.Gone:
            before[one] = {}
    t0 = time.monotonic()
    running = [p for p in pids if procstat.state(p) not in ("T", "t")]  # a stopped target stays out
    clock = _PauseClock(running) if running and not nonblocking else None
    procs = [ProcessThreads(pid=p) for p in pids]
    try:
        if len(procs) == 1:  # the usual case: no pool to import and start
            results = [_dump(pid, nonblocking, locals_, timeout, native)]
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(pids)), thread_name_prefix="perfkit-dump") as ex:
                futures = [ex.submit(_dump, p.pid, nonblocking, locals_, timeout, native) for p in procs]
                results = [fut.result() for fut in futures]
    finally:
        paused = clock.stop() if clock is not None else {}
    if meanwhile is not None:
        meanwhile()
    time.sleep(max(0.0, t0 + interval - time.monotonic()))
    for p, (stacks, error, code) in zip(procs, results, strict=True):
        try:
            after = procstat.thread_cpu_times(p.pid, precise=True)
        except procstat.Gone:
            after = {}
        window = time.monotonic() - t0
        dt = max(window - paused.get(p.pid, 0.0), window / 4, 1e-6)
        a = before.get(p.pid, {})
        for tid, (cpu, name) in after.items():
            prev = a[tid][0] if tid in a else 0.0
            # at most one core: py-spy stops threads one after another, so a thread's own
            # pause can be shorter than the main thread's, which is what is timed
            p.cpu[tid] = {"cpu_pct": round(min(100.0, max(0.0, (cpu - prev) / dt * 100.0)), 1), "name": name,
                          "new": tid not in a}
        p.stacks, p.error, p.error_code = stacks, error, code
        seen = {s.os_thread_id for s in p.stacks}
        p.native = sorted(t for t in p.cpu if t not in seen) if not p.error else []
    return Snapshot(processes=procs, interval=interval, taken_at=time.time())
