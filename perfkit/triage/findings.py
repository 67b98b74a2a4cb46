"""What stands out in a triage snapshot.  Pure functions over typed facts.

Input: the host facts (:class:`~perfkit.triage.hostfacts.HostFacts`, ``host/host.json``)
and one :class:`~perfkit.triage.model.ProcRecord` per Python process (its facts, stacks
and the top of its CPU profile).  Output: a list of :class:`Finding`, most severe first,
each naming the relative path(s) of its evidence inside the bundle.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from perfkit.triage.hostfacts import CgroupFacts, HostFacts
from perfkit.triage.model import ProcRecord, ThreadDump
from perfkit.triage.summary import Finding
from perfkit.units import human_bytes as _gib

SEVERITY_ORDER = {"high": 0, "warn": 1, "info": 2}

# bundle layout (relative paths), shared with the bundle writer
HOST_JSON = "host/host.json"


def proc_dir(pid: int) -> str:
    return f"procs/{pid}"


def proc_json(pid: int) -> str:
    return f"{proc_dir(pid)}/process.json"


def stacks_txt(pid: int) -> str:
    return f"{proc_dir(pid)}/stacks.txt"


# thresholds
CPU_PEG = 80.0  # % of one core
FD_WARN, FD_HIGH = 0.80, 0.95
CG_MEM_WARN, CG_MEM_HIGH = 0.85, 0.95
HOST_MEM_AVAIL_HIGH = 0.10
PSI = {"cpu": ("some", 20.0, 50.0), "memory": ("some", 10.0, 30.0), "io": ("some", 20.0, 50.0)}
PSI_FULL = {"memory": 5.0, "io": 10.0}


# --------------------------------------------------------------------------- lock waits

_LOCK_LINE = re.compile(r"(\.acquire\s*\(|^\s*(async\s+)?with\b[^#]*lock|lock\w*\s*\.\s*__enter__)", re.I)
_WAIT_LIBS = ("/threading.py", "/queue.py", "/selectors.py", "/socket.py", "/subprocess.py",
              "/multiprocessing/", "/asyncio/", "/concurrent/futures/")


def is_lock_wait(thread: ThreadDump) -> bool:
    """A thread blocked acquiring a lock in its own code (not a condition/queue/join wait).

    py-spy shows no frame for the C ``acquire``: the leaf is the caller, on the
    ``with lock:`` / ``lock.acquire()`` line.  Waits inside threading/queue/asyncio
    internals are ordinary idling (Condition.wait, Queue.get, Thread.join).
    """
    leaf = thread.leaf
    if thread.active or leaf is None:
        return False
    if any(s in leaf.filename for s in _WAIT_LIBS):
        return False
    return bool(_LOCK_LINE.search(thread.leaf_source or ""))


def has_lock_waits(threads: Sequence[ThreadDump] | None) -> bool:
    return any(is_lock_wait(t) for t in threads or ())


def _where(thread: ThreadDump) -> str:
    f = thread.leaf
    if f is None:
        return "?"
    base = (f.filename or "?").rsplit("/", 1)[-1]
    return f"{f.name} ({base}:{f.line})"


def _key(thread: ThreadDump) -> tuple[tuple[str, str, int], ...]:
    return tuple((f.name, f.filename, f.line) for f in thread.frames)


def thread_label(thread: ThreadDump) -> str:
    return f'"{thread.name}" ({thread.tid})' if thread.name else f"thread {thread.tid}"


def lock_findings(proc: ProcRecord) -> list[Finding]:
    pid = proc.pid
    first = [t for t in proc.stacks or () if is_lock_wait(t)]
    if not first:
        return []
    second = proc.stacks2
    if second is not None:
        again = {t.thread_id: t for t in second}
        stuck = [t for t in first if t.thread_id in again and _key(again[t.thread_id]) == _key(t)
                 and is_lock_wait(again[t.thread_id])]
        delay = proc.stacks2_delay_s
        when = f"at the same line in two dumps {delay:.1f} s apart" if delay else "at the same line in two dumps"
    else:
        stuck = first
        when = "in one dump (no second look)"
    if not stuck:
        return []
    who = "; ".join(f"{thread_label(t)} in {_where(t)}" for t in stuck[:6])
    more = f" and {len(stuck) - 6} more" if len(stuck) > 6 else ""
    evidence = [stacks_txt(pid), f"{proc_dir(pid)}/stacks.json"]
    if len(stuck) >= 2:
        return [Finding("deadlock", "high",
                        f"{proc.label}: {len(stuck)} threads blocked acquiring locks — possible deadlock",
                        f"{who}{more}; {when}.", evidence, pid)]
    return [Finding("lock_wait", "warn", f"{proc.label}: a thread is stuck waiting on a lock",
                    f"{who}; {when}.", evidence, pid)]


# --------------------------------------------------------------------------- per process

def cpu_findings(proc: ProcRecord) -> list[Finding]:
    pct = proc.facts.cpu_percent if proc.facts else None
    busy = proc.profile_busy_percent
    # On a contended host a CPU-bound process gets less than a core; its profile
    # still shows it on CPU or runnable at (nearly) every sample.
    want = max(pct or 0.0, busy or 0.0)
    if want < CPU_PEG:
        return []
    pid = proc.pid
    cores = want / 100.0
    got = f"{pct:.0f}% CPU" if pct is not None else "CPU ?"
    if busy is not None and busy > (pct or 0) + 10:
        got += f", on CPU or runnable in {busy:.0f}% of samples"
    title = (f"{proc.label} pegs a core ({got})" if cores < 1.5
             else f"{proc.label} uses {cores:.1f} cores ({got})")
    parts = []
    if proc.profile_top:
        h = proc.profile_top[0]
        parts.append(f"hottest function {h.function} ({h.location or '?'}) {h.self_percent:.0f}% self of the profile")
    busiest = _busiest_thread(proc)
    if busiest:
        parts.append(f"busiest thread {busiest}")
    evidence = [p for p in (proc.flame, proc_json(pid), stacks_txt(pid)) if p]
    return [Finding("cpu_hog", "high" if cores >= 0.95 else "warn", title, "; ".join(parts), evidence, pid)]


def _busiest_thread(proc: ProcRecord) -> str | None:
    threads = proc.facts.threads if proc.facts else {}
    best = max(((tid, row.cpu_percent or 0.0) for tid, row in threads.items()), key=lambda x: x[1], default=None)
    if not best or best[1] < 20:
        return None
    for t in proc.stacks or ():
        if str(t.os_thread_id) == str(best[0]):
            where = _where(t)
            return f'"{t.name}" ({best[0]}, {best[1]:.0f}% CPU) in {where}' if t.name else \
                f"{best[0]} ({best[1]:.0f}% CPU) in {where}"
    return f"{best[0]} ({best[1]:.0f}% CPU)"


def fd_findings(proc: ProcRecord) -> list[Finding]:
    facts = proc.facts
    if facts is None or facts.fds is None or not facts.fd_soft_limit:
        return []
    first, soft, end = facts.fds.count, facts.fd_soft_limit, facts.fds_at_end
    fds = max(first, end or 0)
    frac = fds / soft
    if frac < FD_WARN:
        return []
    sev = "high" if frac >= FD_HIGH else "warn"
    kinds = ", ".join(f"{v} {k}" for k, v in facts.fds.by_kind.items() if v)
    grew = f"; grew from {first} to {end} during triage" if end is not None and end > first else ""
    return [Finding("fd_limit", sev, f"{proc.label} is near its fd limit ({fds} of {soft} open, {frac:.0%})",
                    f"open descriptors at first look: {kinds}{grew}; opening more fails with EMFILE "
                    "(Too many open files).", [proc_json(proc.pid)], proc.pid)]


def state_findings(proc: ProcRecord) -> list[Finding]:
    if proc.facts is not None and proc.facts.status == "stopped":
        return [Finding("stopped", "warn", f"{proc.label} is stopped (SIGSTOP or a debugger)",
                        "it makes no progress until it gets SIGCONT; its stacks were read without resuming it.",
                        [proc_json(proc.pid), stacks_txt(proc.pid)], proc.pid)]
    return []


# --------------------------------------------------------------------------- host

def _memory_findings(host: HostFacts) -> list[Finding]:
    mem, out = host.memory, []
    if mem is None:
        return []
    if mem.total:
        avail = mem.available / mem.total
        if avail < HOST_MEM_AVAIL_HIGH:
            out.append(Finding("memory_low", "high", f"host memory nearly exhausted ({avail:.0%} available)",
                               f"{_gib(mem.available)} of {_gib(mem.total)} available.", [f"{HOST_JSON}#/memory"]))
    pin, pout = host.vmstat_delta.pswpin or 0, host.vmstat_delta.pswpout or 0
    if mem.swap_used:
        swapping = pin + pout
        sev = "high" if swapping else ("warn" if (mem.swap_percent or 0) >= 20 else "info")
        act = f"; actively swapping ({pin} pages in, {pout} out during triage)" if swapping \
            else "; no swapping during triage"
        out.append(Finding("swap", sev, f"swap in use: {_gib(mem.swap_used)} ({mem.swap_percent or 0:.0f}%)",
                           f"of {_gib(mem.swap_total or 0)} swap{act}.", [f"{HOST_JSON}#/memory"]))
    return out


def _pressure_findings(host: HostFacts) -> list[Finding]:
    out = []
    psi = host.pressure or {}
    for res, (kind, warn, high) in PSI.items():
        p = psi.get(res)
        line = (p.some if kind == "some" else p.full) if p else None
        some = line.avg10 if line else None
        full = p.full.avg10 if p and p.full else None
        sev = None
        if some is not None and some >= high:
            sev = "high"
        elif some is not None and some >= warn:
            sev = "warn"
        if res in PSI_FULL and full is not None and full >= PSI_FULL[res]:
            sev = "high"
        if sev:
            out.append(Finding("pressure", sev, f"{res} pressure: tasks stalled {some or 0:.0f}% of the last 10 s",
                               f"/proc/pressure/{res}: some avg10={some}, full avg10={full}.",
                               [f"{HOST_JSON}#/pressure/{res}"]))
    return out


def host_findings(host: HostFacts, procs: Sequence[ProcRecord]) -> list[Finding]:
    out = _memory_findings(host) + _pressure_findings(host)
    load = host.load
    if load is not None and load.cpus and load.load1 > 2 * load.cpus:
        out.append(Finding("load", "warn", f"load average {load.load1:.1f} on {load.cpus} CPUs",
                           f"1/5/15 min: {load.load1}/{load.load5}/{load.load15}; runnable now: "
                           f"{load.runnable}.", [f"{HOST_JSON}#/load"]))
    modes = host.cpu_modes_percent
    iowait, steal = (modes.iowait or 0.0, modes.steal or 0.0) if modes else (0.0, 0.0)
    if iowait >= 20:
        out.append(Finding("iowait", "warn", f"CPUs waiting on I/O {iowait:.0f}% of the time",
                           "see the disk deltas.", [f"{HOST_JSON}#/cpu_modes_percent", f"{HOST_JSON}#/disks"]))
    if steal >= 10:
        out.append(Finding("steal", "warn", f"CPU steal {steal:.0f}%: the hypervisor is taking CPU time",
                           "", [f"{HOST_JSON}#/cpu_modes_percent"]))
    out += _cgroup_findings(host)
    out += _oom_findings(host)
    out += _other_hogs(host, procs)
    return out


def _other_hogs(host: HostFacts, procs: Sequence[ProcRecord]) -> list[Finding]:
    """Processes that are not triaged as Python targets but eat a core (a busy
    database, a runaway shell loop ... slows the Python ones down too)."""
    mine = {p.pid for p in procs}
    out = []
    for row in host.top_cpu:
        pct = row.cpu_percent or 0
        if pct < CPU_PEG or row.pid in mine:
            continue
        out.append(Finding("busy_process", "warn", f"pid {row.pid} ({row.name or '?'}) uses {pct:.0f}% CPU",
                           f"user {row.user or '?'}; not one of the triaged Python processes.",
                           [f"{HOST_JSON}#/processes/top_cpu"], row.pid))
    return out[:5]


def _cgroup_findings(host: HostFacts) -> list[Finding]:
    out = []
    by_pid = host.cgroups.by_pid
    for key, facts in sorted(host.cgroups.groups.items()):
        pids = sorted(int(p) for p, k in by_pid.items() if k == key)
        who = ", ".join(str(p) for p in pids[:8]) + (" …" if len(pids) > 8 else "")
        out += _one_cgroup(facts, who)
    return out


def _one_cgroup(facts: CgroupFacts, who: str) -> list[Finding]:
    out = []
    name = facts.cgroup or "?"
    frac = facts.memory_fraction
    if frac is not None and frac >= CG_MEM_WARN:
        out.append(Finding("cgroup_memory", "high" if frac >= CG_MEM_HIGH else "warn",
                           f"cgroup {name} is at {frac:.0%} of its memory limit (pids {who})",
                           f"{_gib(facts.memory_current)} of {_gib(facts.memory_limit)}; at the limit the "
                           "kernel reclaims hard and then OOM-kills.", [f"{HOST_JSON}#/cgroups"]))
    thr, per = facts.nr_throttled_delta, facts.nr_periods_delta
    if thr:
        share = f" in {thr} of {per} periods" if per else f" {thr} times"
        out.append(Finding("throttling", "warn", f"CPU throttled by its cgroup quota{share} (pids {who})",
                           f"quota {facts.cpu_quota_cores} cores; throttled "
                           f"{(facts.throttled_us_delta or 0) / 1e6:.2f} s during triage.", [f"{HOST_JSON}#/cgroups"]))
    if facts.oom_kills_delta:
        out.append(Finding("oom", "high", f"cgroup {name}: {facts.oom_kills_delta} OOM kills during triage",
                           "", [f"{HOST_JSON}#/cgroups"]))
    return out


def _oom_findings(host: HostFacts) -> list[Finding]:
    oom = host.oom
    delta = host.vmstat_delta.oom_kill or 0
    if delta:
        return [Finding("oom", "high", f"{delta} OOM kills during triage", "", [f"{HOST_JSON}#/oom"])]
    if oom.events:
        return [Finding("oom", "warn", f"{len(oom.events)} OOM kill messages in the kernel log",
                        f"latest: {oom.events[-1].message[:200]}", [f"{HOST_JSON}#/oom"])]
    if oom.since_boot:
        return [Finding("oom", "info", f"{oom.since_boot} OOM kills since boot", "", [f"{HOST_JSON}#/oom"])]
    return []


# --------------------------------------------------------------------------- all

def analyse(host: HostFacts, procs: Sequence[ProcRecord]) -> list[Finding]:
    """Every finding, most severe first (stable: severity, then kind, then pid)."""
    out = host_findings(host, procs)
    for p in procs:
        out += cpu_findings(p) + lock_findings(p) + fd_findings(p) + state_findings(p)
    return sorted(out, key=lambda f: (SEVERITY_ORDER.get(f.severity, 9), f.kind, f.pid or 0))


__all__ = ["Finding", "analyse", "is_lock_wait", "has_lock_waits", "HOST_JSON", "proc_dir", "proc_json",
           "stacks_txt"]
