"""Triage collection under one time budget.

Timeline (``B`` = budget, everything bounded by it):

1. find the Python processes, open the host counter window;
2. in parallel (a bounded pool): each process's facts and all-thread stacks, each
   target with its own timeout; stop waiting at ~45 % of B;
3. the top CPU consumers get a short non-blocking CPU profile (whole seconds that
   fit the remaining budget); processes with threads that look blocked on a lock get
   a second stack dump, so "stuck" means "at the same place twice";
4. close the host window (deltas over the whole run).

Jobs still running when their phase ends are abandoned (daemon threads; their py-spy
calls carry their own timeouts) and reported as timed out.  No target is paused.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Callable

from perfkit.procs.signals import sigterm_as_interrupt
from perfkit.triage import host, pyprocs
from perfkit.triage.facts import Event, Problem
from perfkit.triage.hostfacts import HostFacts
from perfkit.triage.model import ProcessFacts, Stacks
from perfkit.triage.pool import BoundedPool, Job

_PHASE_A_SHARE = 0.45
_PYSPY_OVERHEAD_S = 2.5  # py-spy start + write, on top of the recorded seconds


@dataclass
class TriageOptions:
    pids: list[int] | None = None
    budget: float = 30.0
    profile_top: int = 3
    profile_seconds: int = 5
    profile_min_cpu: float = 10.0  # percent of one core
    locals_: bool = False
    workers: int = 8
    already_spent: float = 0.0  # seconds of the budget used before run() (start-up, checks)


@dataclass
class ProcResult:
    proc: pyprocs.PyProc
    facts: ProcessFacts | None = None
    stacks: Stacks | None = None
    stacks2: Stacks | None = None
    stacks_at: float | None = None  # monotonic time of the first dump
    stacks2_delay_s: float | None = None  # seconds between the two dumps
    profile: Any = None  # a perfkit Profile
    events: list[Event] = field(default_factory=list)  # manifest rows for this pid
    problems: list[Problem] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def event(self, what: str, status: str, *, error: str | None = None, needs_privilege: bool = False,
              seconds: float | None = None) -> None:
        self.events.append(Event(what, status, pid=self.pid, error=error or None, needs_privilege=needs_privilege,
                                 seconds=seconds))


@dataclass
class TriageResult:
    options: TriageOptions
    started: float
    elapsed: float
    host: HostFacts
    procs: list[ProcResult]
    problems: list[Problem]
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)


def classify_error(exc: BaseException) -> tuple[str, str, bool]:
    """(status, message, needs_privilege) for a failed collection step."""
    from perfkit.errors import NoSuchProcess, PermissionDenied, TargetExited, ToolError

    name = type(exc).__name__
    if isinstance(exc, PermissionDenied) or name == "AccessDenied" or isinstance(exc, PermissionError):
        m = _msg(exc)
        return "failed", m if "permission denied" in m.lower() else f"permission denied: {m}", True
    if isinstance(exc, (NoSuchProcess, TargetExited)) or name in ("NoSuchProcess", "ZombieProcess"):
        return "vanished", f"process exited during triage ({_msg(exc)})", False
    if isinstance(exc, ToolError) and "timed out" in _msg(exc):
        return "timeout", _msg(exc), False
    return "failed", _msg(exc), False


def _msg(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return text.splitlines()[0][:300]


def _collect_one(r: ProcResult, locals_: bool, dump_timeout: float) -> None:
    """Facts, then stacks, of one process; each failure recorded, never raised."""
    problems = host.Problems()
    t = time.monotonic()
    try:
        r.facts = pyprocs.facts(r.proc, problems)
        r.event("facts", "ok", seconds=round(time.monotonic() - t, 3))
        if r.facts.status == "stopped":
            r.event("state", "stopped", error="process is stopped (SIGSTOP or a debugger): stacks read without "
                                              "resuming it; it makes no progress")
        elif r.facts.status == "zombie":
            r.event("state", "vanished", error="process is a zombie (exited, not reaped)")
            _merge_problems(r, problems)
            return
    except BaseException as exc:  # noqa: BLE001
        status, msg, priv = classify_error(exc)
        r.event("facts", status, error=msg, needs_privilege=priv, seconds=round(time.monotonic() - t, 3))
        if status == "vanished":
            _merge_problems(r, problems)
            return
    t = time.monotonic()
    try:
        r.stacks = pyprocs.stacks(r.pid, locals_=locals_, timeout=dump_timeout)
        r.stacks_at = time.monotonic()
        r.event("stacks", "ok", seconds=round(time.monotonic() - t, 3))
    except BaseException as exc:  # noqa: BLE001
        status, msg, priv = classify_error(exc)
        r.event("stacks", status, error=msg, needs_privilege=priv, seconds=round(time.monotonic() - t, 3))
    _merge_problems(r, problems)


def _merge_problems(r: ProcResult, problems: host.Problems) -> None:
    r.problems = problems.items
    for p in problems.items:
        what = p.what.split(": ", 1)[-1] if p.what.startswith(f"pid {r.pid}") else p.what
        r.event(what, "failed", error=p.error, needs_privilege=p.needs_privilege)


def _second_dump(r: ProcResult, not_before: float, dump_timeout: float, locals_: bool) -> None:
    wait = not_before - time.monotonic()
    if wait > 0:
        time.sleep(wait)
    t = time.monotonic()
    try:
        r.stacks2 = pyprocs.stacks(r.pid, locals_=locals_, timeout=dump_timeout)
        if r.stacks_at is not None:
            r.stacks2_delay_s = round(time.monotonic() - r.stacks_at, 2)
        r.event("stacks (second look)", "ok", seconds=round(time.monotonic() - t, 3))
    except BaseException as exc:  # noqa: BLE001
        status, msg, priv = classify_error(exc)
        r.event("stacks (second look)", status, error=msg, needs_privilege=priv)


def _profile_one(r: ProcResult, seconds: int) -> None:
    t = time.monotonic()
    try:
        res = pyprocs.profile(r.pid, seconds)
        r.profile = res.profile
        note = " (process exited during the profile)" if res.target_exited else ""
        r.event("cpu profile", "ok", error=note.strip(" ()") or None, seconds=round(time.monotonic() - t, 3))
    except BaseException as exc:  # noqa: BLE001
        status, msg, priv = classify_error(exc)
        r.event("cpu profile", status, error=msg, needs_privilege=priv, seconds=round(time.monotonic() - t, 3))


def _timeout_pending(jobs: dict[int, Job], results: dict[int, ProcResult], what: str, limit: float) -> None:
    for pid, job in jobs.items():
        if job.done.is_set():
            continue
        r = results[pid]
        if job.started is None:
            r.event(what, "skipped", error="triage budget used up before it started")
        else:
            r.event(what, "timeout", error=f"still running after {job.seconds:.1f} s when the budget for this "
                                           f"phase ended ({limit:.1f} s); abandoned")


def run(opts: TriageOptions, *, on_progress: Callable[[dict[str, Any]], None] | None = None,
        lock_suspects: Callable[[Stacks], bool] | None = None) -> TriageResult:
    """Collect everything within ``opts.budget`` seconds (see module doc)."""
    spent = max(0.0, opts.already_spent)
    t0 = time.monotonic() - spent
    started = time.time() - spent
    end = t0 + opts.budget
    reserve = max(1.0, 0.08 * opts.budget)  # left for writing the bundle
    dump_timeout = min(10.0, max(2.0, 0.25 * opts.budget))
    problems = host.Problems()
    progress: dict[str, Any] = {"phase": "finding Python processes", "done": 0, "total": 0, "budget": opts.budget,
                                "t0": t0}

    def tick(**kw: Any) -> None:
        progress.update(kw)
        if on_progress:
            on_progress(dict(progress, elapsed=time.monotonic() - t0))

    results: dict[int, ProcResult] = {}
    interrupted = False
    notes: list[str] = []
    phases: dict[str, float] = {}
    pool = BoundedPool(opts.workers)
    host_pool = BoundedPool(1)  # never queued behind a wedged target
    host_start: Job | None = None
    with sigterm_as_interrupt():
        try:
            tick()
            cands = pyprocs.candidates(opts.pids, problems)
            tick(phase="finding Python processes", total=len(cands))
            disc = {c[0]: pool.submit(f"examine {c[0]}", partial(pyprocs.examine, *c, problems)) for c in cands}
            limit_d = min(end - reserve, time.monotonic() + max(0.2 * opts.budget, 1.0))
            BoundedPool.wait(list(disc.values()), limit_d,
                             poll=lambda: tick(done=sum(j.done.is_set() for j in disc.values())))
            BoundedPool.cancel_unstarted(list(disc.values()))
            late = [pid for pid, j in disc.items() if not j.done.is_set()]
            if late:
                problems.add("finding Python processes",
                             f"{len(late)} processes not examined in time (reading /proc/PID did not finish: "
                             f"uninterruptible sleep?): pids {', '.join(map(str, late[:20]))}")
            procs = pyprocs.note_by_name([j.result for j in disc.values() if j.done.is_set() and j.result], problems)
            results = {p.pid: ProcResult(p) for p in procs}
            host_start = host_pool.submit("host start", lambda: host.start_window(list(results)))
            phases["discovery_s"] = round(time.monotonic() - t0, 3)

            # phase A: facts + stacks for everyone
            tick(phase="stacks and facts", total=len(results))
            jobs = {pid: pool.submit(f"collect {pid}", partial(_collect_one, r, opts.locals_, dump_timeout))
                    for pid, r in results.items()}
            limit_a = t0 + max(_PHASE_A_SHARE * opts.budget, min(opts.budget - reserve, 2.0))
            BoundedPool.wait(list(jobs.values()), limit_a,
                             poll=lambda: tick(done=sum(j.done.is_set() for j in jobs.values())))
            BoundedPool.cancel_unstarted(list(jobs.values()))
            _timeout_pending(jobs, results, "stacks and facts", limit_a - t0)
            phases["collect_s"] = round(time.monotonic() - t0, 3)

            # give the CPU window at least a second before ranking
            min_window = min(1.0, max(0.0, end - reserve - time.monotonic()))
            first_seen = min((r.proc.t0 for r in results.values()), default=t0)
            if time.monotonic() - first_seen < min_window:
                time.sleep(min_window - (time.monotonic() - first_seen))
                for r in results.values():
                    if r.facts and jobs[r.pid].done.is_set():
                        _refresh_cpu(r)

            # phase B: profiles of the top CPU consumers, second looks at lock waiters
            # busy, or runnable right now (on a starved host a CPU-bound process may get
            # little CPU, yet it is what the profile should show)
            hot = sorted((r for r in results.values() if r.facts and r.stacks is not None
                          and ((r.facts.cpu_percent or 0) >= opts.profile_min_cpu
                               or (r.facts.status == "running" and any(t.active for t in r.stacks)))),
                         key=lambda r: -(r.facts.cpu_percent if r.facts and r.facts.cpu_percent else 0))
            hot = hot[:max(0, opts.profile_top)]
            room = end - reserve - time.monotonic() - _PYSPY_OVERHEAD_S
            seconds = int(min(opts.profile_seconds, room))
            prof_jobs: dict[int, Job] = {}
            if hot and seconds >= 1:
                tick(phase=f"profiling {len(hot)} busiest for {seconds} s", done=0, total=len(hot))
                prof_jobs = {r.pid: pool.submit(f"profile {r.pid}", partial(_profile_one, r, seconds)) for r in hot}
            elif hot:
                notes.append(f"no CPU profiles: the budget left too little time ({room + _PYSPY_OVERHEAD_S:.1f} s)")
                for r in hot:
                    r.event("cpu profile", "skipped", error="triage budget too small for a profile")
            suspects = [r for r in results.values() if r.stacks and lock_suspects and lock_suspects(r.stacks)]
            second: dict[int, Job] = {}
            not_before = max(time.monotonic() + 1.0, first_seen + 2.0)
            if suspects and not_before < end - reserve:
                for r in suspects:
                    second[r.pid] = pool.submit(f"second look {r.pid}",
                                                partial(_second_dump, r, not_before, dump_timeout, opts.locals_))
            all_b = list(prof_jobs.values()) + list(second.values())
            limit_b = end - reserve
            BoundedPool.wait(all_b, limit_b, poll=lambda: tick(done=sum(j.done.is_set() for j in all_b),
                                                                total=len(all_b)))
            BoundedPool.cancel_unstarted(all_b)
            _timeout_pending(prof_jobs, results, "cpu profile", limit_b - t0)
            _timeout_pending(second, results, "stacks (second look)", limit_b - t0)
            phases["profile_s"] = round(time.monotonic() - t0, 3)
            for r in results.values():  # CPU % over the whole window, not just the first second
                if r.facts and jobs[r.pid].done.is_set():
                    _refresh_cpu(r)
        except KeyboardInterrupt:
            interrupted = True
            notes.append("interrupted: partial results")
        finally:
            pool.close()
        tick(phase="host counters")
        host_facts = _host_facts(host_pool, host_start, list(results), end - reserve / 2)
        host_pool.close()
    elapsed = time.monotonic() - t0
    return TriageResult(options=opts, started=started, elapsed=round(elapsed, 3), host=host_facts,
                        procs=sorted(results.values(), key=lambda r: r.pid), problems=problems.items,
                        interrupted=interrupted, notes=notes, phases=phases)


def _host_facts(host_pool: BoundedPool, start: Job | None, pids: list[int], deadline: float) -> HostFacts:
    """Close the host window in its own thread, bounded by ``deadline``."""
    if start is None or not BoundedPool.wait([start], deadline) or start.result is None:
        why = "host counters: the first reading did not finish in time"
        if start is not None and start.error is not None:
            why = f"host counters: {_msg(start.error)}"
        start_job = host_pool.submit("host start (late)", lambda: host.start_window([]))
        if not BoundedPool.wait([start_job], max(deadline, time.monotonic() + 1.0)) or start_job.result is None:
            return HostFacts.unavailable("host facts", why)
        start = start_job
    job = host_pool.submit("host finish", lambda: host.finish_window(start.result, pids))
    if not BoundedPool.wait([job], max(deadline, time.monotonic() + 1.0)) or job.result is None:
        err = _msg(job.error) if job.error is not None else "did not finish in time"
        return HostFacts.unavailable("host facts", err)
    result: HostFacts = job.result
    return result


def _refresh_cpu(r: ProcResult) -> None:
    """Re-read CPU % of a process and its threads over the longer window, and its fd count (cheap: /proc)."""
    import psutil

    if r.facts is None:
        return
    try:
        t = psutil.Process(r.pid).cpu_times()
    except psutil.Error:
        return
    window = time.monotonic() - r.proc.t0
    if r.proc.cpu_s0 is None or window <= 0.2:
        return
    fds_at_end = r.facts.fds_at_end
    if r.facts.fds:
        try:
            fds_at_end = len(os.listdir(f"/proc/{r.pid}/fd"))
        except OSError:
            pass
    threads = dict(r.facts.threads)
    for tid, row in pyprocs.thread_cpu_rows(r.proc, window).items():
        old = threads.get(tid)
        threads[tid] = row if row.cpu_percent is not None or old is None else replace(old, cpu_seconds=row.cpu_seconds)
    r.facts = replace(r.facts, cpu_percent=round(100.0 * (t.user + t.system - r.proc.cpu_s0) / window, 1),
                      cpu_window_s=round(window, 2), fds_at_end=fds_at_end, threads=threads)


__all__ = ["TriageOptions", "TriageResult", "ProcResult", "run", "classify_error"]
