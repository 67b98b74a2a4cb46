"""Measured behaviour of a process (tree) for worker-count advice.

Three short py-spy recordings, one after the other (py-spy attaches one at a time),
all ``--nonblocking`` so the target is never paused (a blocking sampler stops every
thread ~100 times a second, which slows a busy worker and lowers the very CPU use being
measured): ``--gil`` (only the thread holding the GIL is sampled), plain (only threads
that are running), ``--idle`` (every thread, every tick).  CPU use comes from /proc
ticks over exactly those three sampling windows (``workers.CpuMeter``, the same meter
``affinity show`` uses).  From them, per process:

* ``gil_share``: fraction of sampling ticks in which some thread held the GIL
  (gil samples / (tick rate × duration), the tick rate being what py-spy achieved in
  the --idle run, at most --rate);
* ``idle_share``: fraction of thread-time spent waiting (1 − running / all samples,
  each per second of its own recording);
* ``active_threads``: running threads per tick (>1 with gil_share≈1 → GIL contention);
* ``cpu``: CPUs used (CPU seconds / seconds of the sampling windows, from /proc).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class ProcessBehaviour:
    pid: int
    threads: int
    gil_share: float
    idle_share: float
    active_threads: float
    cpu: float

    def to_json(self) -> dict:
        return {"pid": self.pid, "threads": self.threads, "gil_share": round(self.gil_share, 3),
                "idle_share": round(self.idle_share, 3), "active_threads": round(self.active_threads, 2),
                "cpu": round(self.cpu, 3)}


@dataclass
class Behaviour:
    processes: list[ProcessBehaviour]
    duration_s: float
    rate: int
    notes: list[str] = field(default_factory=list)
    cpu_window_s: float = 0.0  # seconds over which CPU was measured (the sampling windows)

    def to_json(self) -> dict:
        return {"processes": [p.to_json() for p in self.processes], "duration_s": self.duration_s,
                "rate": self.rate, "notes": self.notes, "cpu_window_s": self.cpu_window_s,
                "cpu_source": "/proc ticks over the sampling windows", "sampling": "nonblocking"}


def _per_pid(profile, default_pid: int) -> tuple[dict[int, int], dict[int, dict[int, int]]]:
    totals: dict[int, int] = {}
    threads: dict[int, dict[int, int]] = {}
    for s in profile.samples:
        pid = s.labels.pid if s.labels.pid is not None else default_pid
        totals[pid] = totals.get(pid, 0) + s.values[0]
        per = threads.setdefault(pid, {})
        per[s.labels.tid] = per.get(s.labels.tid, 0) + s.values[0]
    return totals, threads


def measure(pid: int, duration: float = 5.0, rate: int = 100, subprocesses: bool = True,
            on_phase=None) -> Behaviour:
    from perfkit.affinity.workers import CpuMeter, tree
    from perfkit.target import Target
    from perfkit.tools import pyspy

    pids = [p.pid for p in tree(pid)] if subprocesses else [pid]
    meter = CpuMeter(pids)
    t0 = time.monotonic()
    runs = {}
    notes = []
    def options(**mode: bool) -> pyspy.RecordOptions:
        return pyspy.RecordOptions(duration=duration, rate=rate, subprocesses=subprocesses, nonblocking=True, **mode)

    for name, opts in (("gil", options(gil=True)), ("running", options()), ("all", options(idle=True))):
        if on_phase:
            on_phase(name)
        meter.start()
        try:
            res = pyspy.record(Target(pid=pid), opts)
        finally:
            meter.stop()
        if res.interrupted:
            from perfkit.errors import Interrupted

            raise Interrupted("interrupted while sampling")
        runs[name] = (res.profile, max(1e-3, float(res.profile.recording.duration_s or duration)))
        if res.target_exited:
            notes.append(f"the target exited during the {name} recording")
            break
    wall = max(1e-3, time.monotonic() - t0)
    used = meter.cpus()
    per = {name: _per_pid(prof, pid) for name, (prof, _) in runs.items()}
    out = []
    seen = set(pids)
    for name in per:
        seen |= set(per[name][0])
    for p in sorted(seen):
        if p not in used and not any(p in per[n][0] for n in per):
            continue
        gil_n = per.get("gil", ({}, {}))[0].get(p, 0)
        run_n = per.get("running", ({}, {}))[0].get(p, 0)
        all_n = per.get("all", ({}, {}))[0].get(p, 0)
        d_gil = runs["gil"][1] if "gil" in runs else duration
        d_run = runs["running"][1] if "running" in runs else duration
        d_all = runs["all"][1] if "all" in runs else duration
        threads = len(per.get("all", ({}, {}))[1].get(p, {})) or len(per.get("running", ({}, {}))[1].get(p, {}))
        ticks_all = max(per.get("all", ({}, {}))[1].get(p, {0: 0}).values() or [0]) / d_all
        # py-spy falls behind on a loaded box: count against the tick rate it achieved
        # (every thread is sampled on every tick of the --idle run), never above --rate
        tick_rate = min(float(rate), ticks_all) if ticks_all >= 1.0 else float(rate)
        gil_share = min(1.0, gil_n / (tick_rate * d_gil))
        if all_n:
            idle_share = max(0.0, min(1.0, 1.0 - (run_n / d_run) / (all_n / d_all)))
        else:
            idle_share = 1.0 if run_n == 0 else 0.0
        active = min(float(threads), (run_n / d_run) / ticks_all) if ticks_all else 0.0
        cpu = used.get(p, 0.0)
        out.append(ProcessBehaviour(pid=p, threads=threads, gil_share=gil_share, idle_share=idle_share,
                                    active_threads=active, cpu=max(0.0, cpu)))
    return Behaviour(processes=out, duration_s=round(wall, 2), rate=rate, notes=notes,
                     cpu_window_s=round(meter.seconds, 2))
