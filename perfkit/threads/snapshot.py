"""Thread snapshots of a process (and optionally its children): py-spy stacks plus
per-thread CPU% measured over a short window from /proc.

``py-spy dump --subprocesses`` silently drops children, so children are enumerated
here (/proc/PID/task/*/children, recursively) and dumped one py-spy each, in parallel
(at most ``MAX_PARALLEL`` at once, each with its own timeout).  OS threads that py-spy
does not report (native threads without Python frames) are listed with no frames.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

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


def snapshot(pid: int, *, all_processes: bool = False, interval: float = 0.5, locals_: bool = False,
             nonblocking: bool = False, timeout: float = 10.0, native: bool = False) -> Snapshot:
    """CPU over ``interval`` then a py-spy dump of ``pid`` (and its children), in parallel."""
    pids = [pid] + (procstat.child_pids(pid) if all_processes else [])
    before: dict[int, dict] = {}
    for p in pids:
        try:
            before[p] = procstat.thread_cpu_times(p)
        except procstat.Gone:
            before[p] = {}
    t0 = time.monotonic()
    time.sleep(max(0.0, interval))
    procs = [ProcessThreads(pid=p) for p in pids]
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(pids)), thread_name_prefix="perfkit-dump") as ex:
        futures = [ex.submit(_dump, p.pid, nonblocking, locals_, timeout, native) for p in procs]
        for p in procs:
            try:
                after = procstat.thread_cpu_times(p.pid)
            except procstat.Gone:
                after = {}
            dt = max(time.monotonic() - t0, 1e-6)
            a = before.get(p.pid, {})
            for tid, (cpu, name) in after.items():
                prev = a[tid][0] if tid in a else 0.0
                p.cpu[tid] = {"cpu_pct": round(max(0.0, (cpu - prev) / dt * 100.0), 1), "name": name,
                              "new": tid not in a}
        for p, fut in zip(procs, futures):
            p.stacks, p.error, p.error_code = fut.result()
            seen = {s.os_thread_id for s in p.stacks}
            p.native = sorted(t for t in p.cpu if t not in seen) if not p.error else []
    return Snapshot(processes=procs, interval=interval, taken_at=time.time())
