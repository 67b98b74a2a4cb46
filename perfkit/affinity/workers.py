"""Live worker processes: the tree of a master and its workers, and their CPU masks.

* ``snapshot(pid, interval)``: master + descendants with allowed CPUs, the CPU each
  last ran on, CPU % over ``interval``, context switches (and their rate), threads.
* ``apply(assignments, ...)``: pin every thread of each worker with
  ``os.sched_setaffinity`` (like ``taskset -a``), saving each thread's original mask
  in a state file (0600) so ``reset`` can restore it.  A worker that is gone, or that
  this user may not touch (EPERM), is reported; the others are applied, or with
  ``all_or_nothing`` everything already applied is rolled back.
* ``reset(state)``: restore the saved masks (skipping pids that exited or were reused).

The only code in perfkit that changes a live process's affinity.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import dataclass, field

from perfkit.affinity.topology import MAX_CPU, allowed_cpus, format_cpulist, parse_cpulist
from perfkit.errors import NoSuchProcess, PermissionDenied, UsageError
from perfkit.procs import proc
from perfkit.target import cmdline as read_cmdline


@dataclass
class WorkerInfo:
    pid: int
    ppid: int
    name: str
    cmdline: list[str]
    role: str  # "master" or "worker"
    allowed: list[int]
    last_cpu: int | None
    cpu_percent: float
    ctx_voluntary: int
    ctx_involuntary: int
    ctx_rate: float  # context switches per second over the interval
    threads: int
    create_time: float
    runq_wait_percent: float = 0.0  # % of the interval spent runnable but waiting for a CPU
    status: str = ""  # pinned / unpinned / restricted (filled by the command)

    @property
    def demand_percent(self) -> float:
        """CPU wanted: on CPU + waiting on the run queue (a starved busy worker is still busy)."""
        return self.cpu_percent + self.runq_wait_percent

    def to_json(self) -> dict:
        return {"pid": self.pid, "ppid": self.ppid, "name": self.name, "cmdline": self.cmdline, "role": self.role,
                "allowed": format_cpulist(self.allowed), "last_cpu": self.last_cpu,
                "cpu_percent": round(self.cpu_percent, 1), "ctx_voluntary": self.ctx_voluntary,
                "ctx_involuntary": self.ctx_involuntary, "ctx_per_s": round(self.ctx_rate, 1),
                "threads": self.threads, "create_time": self.create_time,
                "runq_wait_percent": round(self.runq_wait_percent, 1), "status": self.status}


def _proc(pid: int):
    import psutil

    try:
        p = psutil.Process(pid)
        p.create_time()
        return p
    except psutil.NoSuchProcess:
        raise NoSuchProcess(f"no such process: pid {pid}", "check the pid (ps aux | grep python)") from None
    except psutil.AccessDenied:
        raise PermissionDenied(f"permission denied reading pid {pid}", "run as the process's user or root") from None


def tree(pid: int) -> list:
    """psutil processes: the master then its descendants (by pid)."""
    import psutil

    master = _proc(pid)
    try:
        kids = sorted(master.children(recursive=True), key=lambda p: p.pid)
    except psutil.NoSuchProcess:
        raise NoSuchProcess(f"pid {pid} exited") from None
    return [master] + kids


def _is_helper(p) -> bool:
    """multiprocessing's resource tracker / forkserver are not workers."""
    try:
        cmd = " ".join(p.cmdline())
    except Exception:
        return False
    return "multiprocessing.resource_tracker" in cmd or "multiprocessing.forkserver" in cmd


def worker_pids(pid: int) -> list[int]:
    return [p.pid for p in tree(pid)[1:] if not _is_helper(p)]


class CpuMeter:
    """CPUs used by each process over a window, from /proc ticks (utime + stime of
    /proc/PID/stat, read through ``procs.proc``): the one way ``affinity show`` and
    ``affinity recommend`` measure CPU.  ``start()`` / ``stop()`` may bracket several
    windows (recommend's three recordings); ``cpus()`` is CPU seconds over the summed
    window seconds, per pid."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = list(pids)
        self.cpu: dict[int, float] = {}
        self.seconds = 0.0
        self._t0: float | None = None
        self._c0: dict[int, float] = {}

    @staticmethod
    def _read(pid: int) -> float | None:
        from perfkit.procs import proc

        try:
            return proc.stat(pid).cpu_s
        except (proc.Gone, OSError):
            return None

    def start(self) -> None:
        self._c0 = {p: c for p in self.pids if (c := self._read(p)) is not None}
        self._t0 = time.monotonic()

    def stop(self) -> None:
        if self._t0 is None:
            return
        self.seconds += max(1e-6, time.monotonic() - self._t0)
        for p, c0 in self._c0.items():
            c1 = self._read(p)
            if c1 is not None:
                self.cpu[p] = self.cpu.get(p, 0.0) + max(0.0, c1 - c0)
        self._t0 = None

    def cpus(self) -> dict[int, float]:
        return {p: c / self.seconds for p, c in self.cpu.items()} if self.seconds else {}


def snapshot(pid: int, interval: float = 1.0) -> list[WorkerInfo]:
    import psutil

    procs = tree(pid)
    first: dict[int, tuple] = {}
    for p in procs:
        try:
            c = p.num_ctx_switches()
            first[p.pid] = (0.0, c.voluntary + c.involuntary)
        except psutil.Error:
            pass
    waits = {p.pid: _runq_wait_ns(p.pid) for p in procs}
    meter = CpuMeter([p.pid for p in procs])
    meter.start()
    t0 = time.monotonic()
    time.sleep(max(0.0, interval))
    meter.stop()
    used = meter.cpus()
    dt = max(1e-6, time.monotonic() - t0)
    out = []
    for p in procs:
        if p.pid not in first or (p.pid != pid and _is_helper(p)):
            continue
        try:
            with p.oneshot():
                c = p.num_ctx_switches()
                _, ctx0 = first[p.pid]
                info = WorkerInfo(
                    pid=p.pid, ppid=p.ppid(), name=p.name(), cmdline=read_cmdline(p.pid),
                    role="master" if p.pid == pid else "worker",
                    allowed=allowed_cpus(p.pid) or sorted(p.cpu_affinity()),
                    last_cpu=p.cpu_num(), cpu_percent=100.0 * used.get(p.pid, 0.0),
                    ctx_voluntary=c.voluntary, ctx_involuntary=c.involuntary,
                    ctx_rate=(c.voluntary + c.involuntary - ctx0) / dt, threads=p.num_threads(),
                    create_time=p.create_time(),
                    runq_wait_percent=100.0 * max(0, _runq_wait_ns(p.pid) - waits.get(p.pid, 0)) / 1e9 / dt)
        except psutil.NoSuchProcess:
            continue
        except psutil.AccessDenied:
            raise PermissionDenied(f"permission denied reading pid {p.pid}", "run as the process's user or "
                                                                             "root") from None
        out.append(info)
    return out


def _runq_wait_ns(pid: int) -> int:
    return proc.schedstat_wait_ns(pid)


def create_time(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


# ----------------------------------------------------------------------------- state file


def state_dir() -> str:
    env = os.environ.get("PERFKIT_STATE_DIR")
    if env:
        return env
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "perfkit", "affinity")


def state_path(master: int, override: str | None = None) -> str:
    return override or os.path.join(state_dir(), f"pid-{master}.json")


def load_state(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        return None
    except PermissionError:
        raise UsageError(f"cannot read affinity state {path}: permission denied",
                         "give --state with a path you own") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read affinity state {path}: {exc}", "delete it if it is corrupt") from None
    if not isinstance(doc, dict) or "processes" not in doc:
        raise UsageError(f"{path} is not a perfkit affinity state file")
    problem = state_problem(doc)
    if problem:
        raise UsageError(f"affinity state {path} is damaged: {problem}",
                         "restore masks by hand (taskset -p -c CPUS PID) and delete the file, or give --state "
                         "with the file perfkit affinity apply wrote")
    return doc


_CPULIST = re.compile(r"^\s*(\d+(-\d+(:\d+(/\d+)?)?)?)?(\s*,\s*\d+(-\d+(:\d+(/\d+)?)?)?)*\s*$")


def cpulist_problem(text) -> str | None:
    """Why ``text`` is not a CPU list perfkit wrote (``"0-3,8"``), or None."""
    if not isinstance(text, str):
        return f"{text!r} is not a CPU list"
    if len(text) > 4096 or not _CPULIST.match(text):
        return f"{text[:40]!r} is not a CPU list like 0-3,8"
    for n in re.findall(r"\d+", text):
        if int(n) > MAX_CPU:
            return f"CPU {n} in {text[:40]!r} is beyond any machine's CPUs"
    return None


def state_problem(doc: dict) -> str | None:
    """What is wrong with a saved-masks document (None: usable).  Checked before anything is applied."""
    procs = doc.get("processes")
    if not isinstance(procs, dict):
        return "'processes' is not a table of pids"
    if doc.get("master") is not None and (isinstance(doc["master"], bool) or not isinstance(doc["master"], int)
                                          or doc["master"] <= 0):
        return f"master {doc['master']!r} is not a pid"
    for key, entry in procs.items():
        if not (isinstance(key, str) and key.isdigit() and 0 < int(key) < 1 << 22):
            return f"{key!r} is not a pid"
        if not isinstance(entry, dict):
            return f"pid {key}: entry is not a table"
        ct = entry.get("create_time")
        if ct is not None and (isinstance(ct, bool) or not isinstance(ct, (int, float)) or not math.isfinite(ct)
                               or ct < 0):
            return f"pid {key}: create_time {ct!r} is not a time"
        for field_ in ("original", "applied"):
            if field_ in entry:
                why = cpulist_problem(entry[field_])
                if why:
                    return f"pid {key}: {field_}: {why}"
        threads = entry.get("threads", {})
        if not isinstance(threads, dict):
            return f"pid {key}: threads is not a table"
        for tid, mask in threads.items():
            if not (isinstance(tid, str) and tid.isdigit()):
                return f"pid {key}: thread {tid!r} is not a thread id"
            why = cpulist_problem(mask)
            if why:
                return f"pid {key} thread {tid}: {why}"
    return None


def save_state(path: str, doc: dict) -> None:
    from perfkit.fileio import atomic_write, private_mkdir

    private_mkdir(os.path.dirname(os.path.abspath(path)))
    atomic_write(path, json.dumps(doc, indent=2, sort_keys=True))


# ----------------------------------------------------------------------------- apply / reset


@dataclass
class ApplyResult:
    applied: list[dict] = field(default_factory=list)  # {"pid", "cpus", "before"}
    gone: list[int] = field(default_factory=list)
    denied: list[int] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)  # {"pid", "cpus", "error"}
    rolled_back: bool = False
    state_file: str | None = None

    @property
    def ok(self) -> bool:
        return not (self.gone or self.denied or self.rejected)

    def to_json(self) -> dict:
        return {"applied": [] if self.rolled_back else self.applied, "gone": self.gone, "denied": self.denied,
                "rejected": self.rejected, "rolled_back": self.rolled_back, "state_file": self.state_file,
                "attempted": self.applied if self.rolled_back else None}


def _tids(pid: int) -> list[int]:
    try:
        return sorted(int(t) for t in proc.task_ids(pid))
    except proc.Gone:
        raise ProcessLookupError(pid) from None


def _set_all_threads(pid: int, cpus: set[int]) -> dict[int, list[int]]:
    """Pin every thread of ``pid``; returns each thread's previous mask."""
    before: dict[int, list[int]] = {}
    for tid in _tids(pid):
        try:
            before[tid] = sorted(os.sched_getaffinity(tid))
            os.sched_setaffinity(tid, cpus)
        except ProcessLookupError:
            if tid == pid:
                raise
            continue  # a thread that just ended
    return before


def _restore_threads(pid: int, saved: dict[int, list[int]], fallback: list[int]) -> None:
    for tid in _tids(pid):
        mask = saved.get(tid, fallback)
        try:
            os.sched_setaffinity(tid, set(mask))
        except ProcessLookupError:
            continue
        except OSError:
            # the saved mask may no longer be allowed (cpuset changed): fall back
            os.sched_setaffinity(tid, set(fallback) or set(os.sched_getaffinity(tid)))


def apply(assignments, *, master: int, state_file: str, all_or_nothing: bool = False,
          strategy: str | None = None) -> ApplyResult:
    """Pin each assignment (``.pid``, ``.cpus``, optional ``.create_time``)."""
    res = ApplyResult(state_file=state_file)
    previous = load_state(state_file) or {"master": master, "processes": {}}
    saved: dict[str, dict] = dict(previous.get("processes", {}))
    done: list[tuple[int, dict[int, list[int]], list[int]]] = []
    for a in assignments:
        ct = create_time(a.pid)
        if ct is None or (a.create_time is not None and abs(ct - a.create_time) > 0.05):
            res.gone.append(a.pid)  # exited, or the pid now belongs to another process
            if all_or_nothing:
                break
            continue
        try:
            main_before = allowed_cpus(a.pid)
            before = _set_all_threads(a.pid, set(a.cpus))
        except ProcessLookupError:
            res.gone.append(a.pid)
            if all_or_nothing:
                break
            continue
        except PermissionError:
            res.denied.append(a.pid)
            if all_or_nothing:
                break
            continue
        except OSError as exc:  # EINVAL: CPUs not allowed by the cgroup / offline
            res.rejected.append({"pid": a.pid, "cpus": format_cpulist(a.cpus), "error": exc.strerror or str(exc)})
            if all_or_nothing:
                break
            continue
        orig = before.get(a.pid) or main_before or []
        done.append((a.pid, before, orig))
        res.applied.append({"pid": a.pid, "cpus": format_cpulist(a.cpus), "before": format_cpulist(orig)})
        key = str(a.pid)
        if key not in saved:  # keep the very first original across repeated applies
            saved[key] = {"create_time": ct, "original": format_cpulist(orig),
                          "threads": {str(t): format_cpulist(m) for t, m in before.items()}}
        saved[key]["applied"] = format_cpulist(a.cpus)
    if all_or_nothing and not res.ok:
        for pid, before, orig in reversed(done):
            try:
                _restore_threads(pid, before, orig)
            except (ProcessLookupError, PermissionError):
                pass
        res.rolled_back = True
        res.state_file = None
        return res
    if done:
        save_state(state_file, {"master": master, "strategy": strategy, "saved_at": time.time(),
                                "processes": saved})
    elif not previous.get("processes"):
        res.state_file = None
    return res


@dataclass
class ResetResult:
    restored: list[dict] = field(default_factory=list)
    gone: list[int] = field(default_factory=list)
    denied: list[int] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"restored": self.restored, "gone": self.gone, "denied": self.denied}


def reset(state_file: str) -> ResetResult:
    doc = load_state(state_file)
    if doc is None:
        raise UsageError(f"nothing to reset: no saved masks at {state_file}",
                         "perfkit affinity apply saves them; give --state if you used another path")
    res = ResetResult()
    remaining = {}
    for key, entry in sorted(doc["processes"].items(), key=lambda kv: int(kv[0])):
        pid = int(key)
        ct = create_time(pid)
        if ct is None or abs(ct - float(entry.get("create_time", ct))) > 0.05:
            res.gone.append(pid)
            continue
        orig = parse_cpulist(entry.get("original", ""))
        threads = {int(t): parse_cpulist(m) for t, m in entry.get("threads", {}).items()}
        try:
            _restore_threads(pid, threads, orig)
        except ProcessLookupError:
            res.gone.append(pid)
            continue
        except PermissionError:
            res.denied.append(pid)
            remaining[key] = entry
            continue
        res.restored.append({"pid": pid, "cpus": format_cpulist(orig)})
    if remaining:
        doc["processes"] = remaining
        save_state(state_file, doc)
    else:
        try:
            os.unlink(state_file)
        except FileNotFoundError:
            pass
    return res
