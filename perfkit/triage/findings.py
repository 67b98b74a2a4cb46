"""What stands out in a triage snapshot.  Pure functions over plain data.

Input: the host facts (``host/host.json``) and one record per Python process
(``procs/<pid>/process.json`` plus its stacks and the top of its CPU profile).  Output:
a list of findings, most severe first, each naming the relative path(s) of its
evidence inside the bundle.
"""

from __future__ import annotations

from perfkit.units import human_bytes as _gib

import re
from dataclasses import dataclass, field

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


@dataclass
class Finding:
    kind: str
    severity: str
    title: str
    detail: str = ""
    evidence: list[str] = field(default_factory=list)
    pid: int | None = None

    def to_json(self) -> dict:
        d = {"kind": self.kind, "severity": self.severity, "title": self.title, "detail": self.detail,
             "evidence": list(self.evidence)}
        if self.pid is not None:
            d["pid"] = self.pid
        return d


# --------------------------------------------------------------------------- lock waits

_LOCK_LINE = re.compile(r"(\.acquire\s*\(|^\s*(async\s+)?with\b[^#]*lock|lock\w*\s*\.\s*__enter__)", re.I)
_WAIT_LIBS = ("/threading.py", "/queue.py", "/selectors.py", "/socket.py", "/subprocess.py",
              "/multiprocessing/", "/asyncio/", "/concurrent/futures/")


def is_lock_wait(thread: dict) -> bool:
    """A thread blocked acquiring a lock in its own code (not a condition/queue/join wait).

    py-spy shows no frame for the C ``acquire``: the leaf is the caller, on the
    ``with lock:`` / ``lock.acquire()`` line.  Waits inside threading/queue/asyncio
    internals are ordinary idling (Condition.wait, Queue.get, Thread.join).
    """
    if thread.get("active"):
        return False
    frames = thread.get("frames") or []
    if not frames:
        return False
    leaf = frames[0]
    fn = leaf.get("filename") or ""
    if any(s in fn for s in _WAIT_LIBS):
        return False
    src = thread.get("leaf_source") or ""
    return bool(_LOCK_LINE.search(src))


def has_lock_waits(threads: list[dict]) -> bool:
    return any(is_lock_wait(t) for t in threads or [])


def _where(thread: dict) -> str:
    frames = thread.get("frames") or []
    if not frames:
        return "?"
    f = frames[0]
    base = (f.get("filename") or "?").rsplit("/", 1)[-1]
    return f"{f.get('name', '?')} ({base}:{f.get('line', 0)})"


def _key(thread: dict) -> tuple:
    frames = thread.get("frames") or []
    return tuple((f.get("name"), f.get("filename"), f.get("line")) for f in frames)


def thread_label(thread: dict) -> str:
    name = thread.get("name")
    tid = thread.get("os_thread_id") or thread.get("thread_id")
    return f'"{name}" ({tid})' if name else f"thread {tid}"


def lock_findings(proc: dict) -> list[Finding]:
    pid = proc["pid"]
    first = [t for t in proc.get("stacks") or [] if is_lock_wait(t)]
    if not first:
        return []
    second = proc.get("stacks2")
    label = _proc_label(proc)
    if second is not None:
        again = {t.get("thread_id"): t for t in second}
        stuck = [t for t in first if t.get("thread_id") in again and _key(again[t.get("thread_id")]) == _key(t)
                 and is_lock_wait(again[t.get("thread_id")])]
        delay = proc.get("stacks2_delay_s")
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
                        f"{label}: {len(stuck)} threads blocked acquiring locks — possible deadlock",
                        f"{who}{more}; {when}.", evidence, pid)]
    return [Finding("lock_wait", "warn", f"{label}: a thread is stuck waiting on a lock",
                    f"{who}; {when}.", evidence, pid)]


# --------------------------------------------------------------------------- per process

def _proc_label(proc: dict) -> str:
    name = proc.get("script") or proc.get("name") or "?"
    return f"pid {proc['pid']} ({name})"


def cpu_findings(proc: dict) -> list[Finding]:
    facts = proc.get("facts") or {}
    pct = facts.get("cpu_percent")
    busy = proc.get("profile_busy_percent")
    # On a contended host a CPU-bound process gets less than a core; its profile
    # still shows it on CPU or runnable at (nearly) every sample.
    want = max(pct or 0.0, busy or 0.0)
    if want < CPU_PEG:
        return []
    pid = proc["pid"]
    cores = want / 100.0
    got = f"{pct:.0f}% CPU" if pct is not None else "CPU ?"
    if busy is not None and busy > (pct or 0) + 10:
        got += f", on CPU or runnable in {busy:.0f}% of samples"
    title = (f"{_proc_label(proc)} pegs a core ({got})" if cores < 1.5
             else f"{_proc_label(proc)} uses {cores:.1f} cores ({got})")
    parts = []
    hot = proc.get("profile_top") or []
    if hot:
        h = hot[0]
        parts.append(f"hottest function {h['function']} ({h.get('location') or '?'}) "
                     f"{h['self_percent']:.0f}% self of the profile")
    busiest = _busiest_thread(proc)
    if busiest:
        parts.append(f"busiest thread {busiest}")
    evidence = [p for p in (proc.get("flame"), proc_json(pid), stacks_txt(pid)) if p]
    return [Finding("cpu_hog", "high" if cores >= 0.95 else "warn", title, "; ".join(parts), evidence, pid)]


def _busiest_thread(proc: dict) -> str | None:
    threads = (proc.get("facts") or {}).get("threads") or {}
    best = max(((tid, row.get("cpu_percent") or 0.0) for tid, row in threads.items()), key=lambda x: x[1],
               default=None)
    if not best or best[1] < 20:
        return None
    name = None
    for t in proc.get("stacks") or []:
        if str(t.get("os_thread_id")) == str(best[0]):
            name = t.get("name")
            where = _where(t)
            return f'"{name}" ({best[0]}, {best[1]:.0f}% CPU) in {where}' if name else \
                f"{best[0]} ({best[1]:.0f}% CPU) in {where}"
    return f"{best[0]} ({best[1]:.0f}% CPU)"


def fd_findings(proc: dict) -> list[Finding]:
    facts = proc.get("facts") or {}
    first = (facts.get("fds") or {}).get("count")
    soft = (facts.get("nofile_limit") or {}).get("soft")
    if first is None or not soft:
        return []
    end = facts.get("fds_at_end")
    fds = max(first, end or 0)
    frac = fds / soft
    if frac < FD_WARN:
        return []
    sev = "high" if frac >= FD_HIGH else "warn"
    kinds = ", ".join(f"{v} {k}" for k, v in (facts["fds"].get("by_kind") or {}).items() if v)
    grew = f"; grew from {first} to {end} during triage" if end is not None and end > first else ""
    return [Finding("fd_limit", sev, f"{_proc_label(proc)} is near its fd limit ({fds} of {soft} open, {frac:.0%})",
                    f"open descriptors at first look: {kinds}{grew}; opening more fails with EMFILE "
                    "(Too many open files).", [proc_json(proc["pid"])], proc["pid"])]


def state_findings(proc: dict) -> list[Finding]:
    facts = proc.get("facts") or {}
    if facts.get("status") == "stopped":
        return [Finding("stopped", "warn", f"{_proc_label(proc)} is stopped (SIGSTOP or a debugger)",
                        "it makes no progress until it gets SIGCONT; its stacks were read without resuming it.",
                        [proc_json(proc["pid"]), stacks_txt(proc["pid"])], proc["pid"])]
    return []


# --------------------------------------------------------------------------- host

def host_findings(host: dict, procs: list[dict]) -> list[Finding]:
    out: list[Finding] = []
    mem = host.get("memory") or {}
    if mem.get("total"):
        avail = mem["available"] / mem["total"]
        if avail < HOST_MEM_AVAIL_HIGH:
            out.append(Finding("memory_low", "high", f"host memory nearly exhausted ({avail:.0%} available)",
                               f"{_gib(mem['available'])} of {_gib(mem['total'])} available.",
                               [f"{HOST_JSON}#/memory"]))
    vmd = host.get("vmstat_delta") or {}
    swapping = (vmd.get("pswpin") or 0) + (vmd.get("pswpout") or 0)
    if mem.get("swap_used"):
        sev = "high" if swapping else ("warn" if (mem.get("swap_percent") or 0) >= 20 else "info")
        act = f"; actively swapping ({vmd.get('pswpin', 0)} pages in, {vmd.get('pswpout', 0)} out during triage)" \
            if swapping else "; no swapping during triage"
        out.append(Finding("swap", sev, f"swap in use: {_gib(mem['swap_used'])} ({mem.get('swap_percent', 0):.0f}%)",
                           f"of {_gib(mem.get('swap_total') or 0)} swap{act}.", [f"{HOST_JSON}#/memory"]))
    psi = host.get("pressure") or {}
    for res, (kind, warn, high) in PSI.items():
        some = ((psi.get(res) or {}).get(kind) or {}).get("avg10")
        full = ((psi.get(res) or {}).get("full") or {}).get("avg10")
        sev = None
        if some is not None and some >= high:
            sev = "high"
        elif some is not None and some >= warn:
            sev = "warn"
        if res in PSI_FULL and full is not None and full >= PSI_FULL[res]:
            sev = "high"
        if sev:
            out.append(Finding("pressure", sev, f"{res} pressure: tasks stalled {some:.0f}% of the last 10 s",
                               f"/proc/pressure/{res}: some avg10={some}, full avg10={full}.",
                               [f"{HOST_JSON}#/pressure/{res}"]))
    load = host.get("load") or {}
    if load.get("cpus") and load.get("load1", 0) > 2 * load["cpus"]:
        out.append(Finding("load", "warn", f"load average {load['load1']:.1f} on {load['cpus']} CPUs",
                           f"1/5/15 min: {load['load1']}/{load['load5']}/{load['load15']}; runnable now: "
                           f"{load.get('runnable')}.", [f"{HOST_JSON}#/load"]))
    modes = host.get("cpu_modes_percent") or {}
    if (modes.get("iowait") or 0) >= 20:
        out.append(Finding("iowait", "warn", f"CPUs waiting on I/O {modes['iowait']:.0f}% of the time",
                           "see the disk deltas.", [f"{HOST_JSON}#/cpu_modes_percent", f"{HOST_JSON}#/disks"]))
    if (modes.get("steal") or 0) >= 10:
        out.append(Finding("steal", "warn", f"CPU steal {modes['steal']:.0f}%: the hypervisor is taking CPU time",
                           "", [f"{HOST_JSON}#/cpu_modes_percent"]))
    out += _cgroup_findings(host, procs)
    out += _oom_findings(host)
    out += _other_hogs(host, procs)
    return out


def _other_hogs(host: dict, procs: list[dict]) -> list[Finding]:
    """Processes that are not triaged as Python targets but eat a core (a busy
    database, a runaway shell loop ... slows the Python ones down too)."""
    mine = {p["pid"] for p in procs}
    out = []
    for row in (host.get("processes") or {}).get("top_cpu") or []:
        pct = row.get("cpu_percent") or 0
        if pct < CPU_PEG or row.get("pid") in mine:
            continue
        out.append(Finding("busy_process", "warn",
                           f"pid {row['pid']} ({row.get('name', '?')}) uses {pct:.0f}% CPU",
                           f"user {row.get('user') or '?'}; not one of the triaged Python processes.",
                           [f"{HOST_JSON}#/processes/top_cpu"], row["pid"]))
    return out[:5]


def _cgroup_findings(host: dict, procs: list[dict]) -> list[Finding]:
    out = []
    cg = host.get("cgroups") or {}
    by_pid = cg.get("by_pid") or {}
    for key, facts in sorted((cg.get("groups") or {}).items()):
        pids = sorted(int(p) for p, k in by_pid.items() if k == key)
        who = ", ".join(str(p) for p in pids[:8]) + (" …" if len(pids) > 8 else "")
        name = facts.get("cgroup") or "?"
        frac = facts.get("memory_fraction")
        if frac is not None and frac >= CG_MEM_WARN:
            out.append(Finding("cgroup_memory", "high" if frac >= CG_MEM_HIGH else "warn",
                               f"cgroup {name} is at {frac:.0%} of its memory limit (pids {who})",
                               f"{_gib(facts['memory_current'])} of {_gib(facts['memory_limit'])}; at the limit the "
                               "kernel reclaims hard and then OOM-kills.", [f"{HOST_JSON}#/cgroups"]))
        thr = facts.get("nr_throttled_delta")
        per = facts.get("nr_periods_delta")
        if thr:
            share = f" in {thr} of {per} periods" if per else f" {thr} times"
            us = facts.get("throttled_us_delta")
            out.append(Finding("throttling", "warn",
                               f"CPU throttled by its cgroup quota{share} (pids {who})",
                               f"quota {facts.get('cpu_quota_cores')} cores; throttled "
                               f"{(us or 0) / 1e6:.2f} s during triage.", [f"{HOST_JSON}#/cgroups"]))
        if facts.get("oom_kills_delta"):
            out.append(Finding("oom", "high", f"cgroup {name}: {facts['oom_kills_delta']} OOM kills during triage",
                               "", [f"{HOST_JSON}#/cgroups"]))
    return out


def _oom_findings(host: dict) -> list[Finding]:
    oom = host.get("oom") or {}
    events = oom.get("events") or []
    delta = (host.get("vmstat_delta") or {}).get("oom_kill") or 0
    if delta:
        return [Finding("oom", "high", f"{delta} OOM kills during triage", "", [f"{HOST_JSON}#/oom"])]
    if events:
        last = events[-1]
        return [Finding("oom", "warn", f"{len(events)} OOM kill messages in the kernel log",
                        f"latest: {last.get('message', '')[:200]}", [f"{HOST_JSON}#/oom"])]
    if oom.get("since_boot"):
        return [Finding("oom", "info", f"{oom['since_boot']} OOM kills since boot", "", [f"{HOST_JSON}#/oom"])]
    return []




# --------------------------------------------------------------------------- all

def analyse(host: dict, procs: list[dict]) -> list[Finding]:
    """Every finding, most severe first (stable: severity, then kind, then pid)."""
    out = host_findings(host, procs)
    for p in procs:
        out += cpu_findings(p) + lock_findings(p) + fd_findings(p) + state_findings(p)
    return sorted(out, key=lambda f: (SEVERITY_ORDER.get(f.severity, 9), f.kind, f.pid or 0))


__all__ = ["Finding", "analyse", "is_lock_wait", "has_lock_waits", "HOST_JSON", "proc_dir", "proc_json",
           "stacks_txt"]
