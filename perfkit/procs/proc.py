"""The one /proc reader: every read perfkit makes of a live process's /proc entries.

Cheap, allocation-light reads (psutil only where it is as cheap) that raise
:class:`Gone` when the process has exited, or return ``None`` where the doc says so:

* ``stat``/``state``/``alive``   /proc/PID/stat: state, parent, group, CPU ticks, threads, RSS
* ``cmdline``/``comm``/``exe``/``status_field``
* ``fd_links``/``fd_kind``/``socket_table``/``describe_fds``   what fds point to
* ``children``/``child_pids``/``ChildCache``   process trees (/proc/PID/task/*/children)
* ``thread_cpu_times``/``thread_cpu_percent``  per-thread CPU
* ``fd_limit``/``memory_limit``/``thread_limit``  the limits resources run into
* ``read_smaps_rollup``  PSS and USS
* ``sysctl``/``has_capability``  kernel settings (/proc/sys) and effective capabilities

Whatever cannot be read because of permissions raises ``PermissionError`` for the
caller to record; nothing here starts a process or writes anywhere.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

class Gone(Exception):
    """The process no longer exists (or became a zombie)."""


def read_stat(pid: int) -> tuple[str, int, int]:
    """(state, num_threads, rss_bytes) from /proc/PID/stat; raises Gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        raise Gone(pid) from None
    rest = data[data.rfind(b")") + 2:].split()
    state = rest[0].decode()
    if state in ("Z", "X"):
        raise Gone(pid)
    return state, int(rest[17]), int(rest[21]) * PAGE


@dataclass(frozen=True)
class ProcStat:
    """The fields of /proc/PID/stat perfkit uses."""

    pid: int
    comm: str
    state: str  # R S D T t Z X I ...
    ppid: int
    pgrp: int
    session: int
    utime_s: float
    stime_s: float
    num_threads: int
    starttime_ticks: int
    rss_bytes: int

    @property
    def cpu_s(self) -> float:
        return self.utime_s + self.stime_s


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def stat(pid: int, tid: int | None = None) -> ProcStat:
    """/proc/PID/stat (or a thread's /proc/PID/task/TID/stat); raises Gone.  Zombies are returned."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        with open(path, "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        raise Gone(pid) from None
    close = data.rfind(b")")
    comm = data[data.find(b"(") + 1:close].decode("utf-8", "replace")
    rest = data[close + 2:].split()
    return ProcStat(pid=tid or pid, comm=comm, state=rest[0].decode(), ppid=int(rest[1]), pgrp=int(rest[2]),
                    session=int(rest[3]), utime_s=int(rest[11]) / _TICK, stime_s=int(rest[12]) / _TICK,
                    num_threads=int(rest[17]), starttime_ticks=int(rest[19]), rss_bytes=int(rest[21]) * PAGE)


def state(pid: int) -> str | None:
    """The one-letter scheduler state (Z and X included), or None when the pid is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    i = data.rfind(b")")
    return data[i + 2:i + 3].decode() or None


def alive(pid: int) -> bool:
    """Exists and has not exited (a zombie has)."""
    return state(pid) not in (None, "Z", "X")


STATE_NAMES = {"R": "running", "S": "sleeping", "D": "in uninterruptible wait", "T": "stopped",
               "t": "stopped by a debugger", "Z": "a zombie", "X": "dead", "I": "idle", "P": "parked"}


def is_kernel_thread(pid: int) -> bool:
    """Kernel threads have no command line and no executable; their parent is kthreadd (2)."""
    try:
        st = stat(pid)
    except Gone:
        return False
    return pid == 2 or st.ppid == 2 or (not cmdline(pid) and exe(pid) is None and st.state not in ("Z", "X"))


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            return f.read().decode("utf-8", "replace").strip()
    except OSError:
        return "?"


def exe(pid: int) -> str | None:
    """The executable's path; None when unreadable (kernel thread, permission, gone)."""
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def status_field(pid: int, name: str) -> str | None:
    """One ``Name:`` field of /proc/PID/status (e.g. ``Threads``, ``TracerPid``)."""
    key = name.encode() + b":"
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(key):
                    return line[len(key):].strip().decode("utf-8", "replace")
    except OSError:
        return None
    return None


def maps(pid: int, limit: int | None = None) -> bytes:
    """/proc/PID/maps (at most ``limit`` bytes); raises Gone or PermissionError."""
    try:
        with open(f"/proc/{pid}/maps", "rb") as f:
            return f.read() if limit is None else f.read(limit)
    except (FileNotFoundError, ProcessLookupError):
        raise Gone(pid) from None


def exe_strict(pid: int) -> str:
    """The executable's path; raises Gone or PermissionError ("" when unreadable otherwise)."""
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except (FileNotFoundError, ProcessLookupError):
        raise Gone(pid) from None
    except PermissionError:
        raise
    except OSError:
        return ""


def schedstat_wait_ns(pid: int) -> int:
    """Nanoseconds all threads of ``pid`` spent runnable but not running (schedstat)."""
    total = 0
    try:
        tids = task_ids(pid)
    except Gone:
        return 0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total


def rss(pid: int | None) -> int | None:
    """Resident set size in bytes (/proc/PID/statm), None when unreadable."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return None


def first_child(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = f.read().split()
        return int(kids[0]) if kids else None
    except (OSError, ValueError):
        return None


def read_smaps_rollup(pid: int) -> tuple[int, int]:
    """(pss, uss) bytes; raises OSError when unreadable."""
    pss = uss = 0
    with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
        for line in f:
            if line.startswith(b"Pss:"):
                pss = int(line.split()[1]) * 1024
            elif line.startswith(b"Private_Clean:") or line.startswith(b"Private_Dirty:"):
                uss += int(line.split()[1]) * 1024
    return pss, uss


def children(pid: int) -> list[int]:
    return _children_by_task(pid)[0]


class ChildCache:
    """Children without reading every thread's ``children`` file on every sample.

    A full scan (one read per thread) runs at most every ``refresh`` s; in between only
    the main thread and the threads that had children at the last scan are read.  With
    hundreds of threads this keeps a sample cheap.
    """

    def __init__(self, refresh: float = 5.0) -> None:
        self.refresh = refresh
        self.parents: set[str] = set()
        self.scanned_at = -1e9

    def count(self, pid: int) -> int:
        now = time.monotonic()
        if now - self.scanned_at >= self.refresh:
            self.scanned_at = now
            kids, self.parents = _children_by_task(pid)
            return len(kids)
        total = 0
        for tid in self.parents | {str(pid)}:
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    total += len(f.read().split())
            except OSError:
                continue
        return total


def task_ids(pid: int) -> list[str]:
    """The thread ids of ``pid`` (as listed in /proc/PID/task); raises Gone."""
    try:
        return os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        raise Gone(pid) from None


def _children_by_task(pid: int) -> tuple[list[int], set[str]]:
    kids: list[int] = []
    parents: set[str] = set()
    for tid in task_ids(pid):
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                mine = [int(x) for x in f.read().split()]
        except OSError:
            continue
        if mine:
            parents.add(tid)
            kids.extend(mine)
    return kids, parents


# ------------------------------------------------------------------ per-thread CPU


def thread_cpu_times(pid: int, *, precise: bool = False) -> dict[int, tuple[float, str]]:
    """tid -> (user+system CPU seconds, comm name) from /proc/PID/task/*/stat; ``precise``:
    CPU from ``schedstat`` (ns, where kept) instead of 10 ms ticks, for short windows."""
    tick = _TICK
    out = {}
    for tid in task_ids(pid):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        name = data[data.find(b"(") + 1:data.rfind(b")")].decode("utf-8", "replace")
        rest = data[data.rfind(b")") + 2:].split()
        cpu = (int(rest[11]) + int(rest[12])) / tick
        if precise:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
                    cpu = int(f.read().split()[0]) / 1e9
            except (OSError, ValueError, IndexError):
                pass
        out[int(tid)] = (cpu, name)
    return out


def thread_cpu_percent(pid: int, interval: float) -> dict[int, dict]:
    """tid -> {cpu_pct, name} measured over ``interval`` seconds (100 = one full core)."""
    a = thread_cpu_times(pid)
    t0 = time.monotonic()
    time.sleep(max(0.0, interval))
    b = thread_cpu_times(pid)
    dt = max(time.monotonic() - t0, 1e-6)
    out = {}
    for tid, (cpu, name) in b.items():
        before = a.get(tid, (cpu, name))[0] if tid in a else 0.0
        out[tid] = {"cpu_pct": round(max(0.0, (cpu - before) / dt * 100.0), 1), "name": name,
                    "new": tid not in a}
    return out


def process_status(pid: int) -> str | None:
    """Single-letter state, or None when gone (same as :func:`state`)."""
    return state(pid)


def child_pids(pid: int, recursive: bool = True) -> list[int]:
    """Children (and grandchildren) of ``pid``, in order found."""
    seen: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop(0)
        try:
            kids = children(p)
        except Gone:
            continue
        for k in kids:
            if k not in seen:
                seen.append(k)
                if recursive:
                    todo.append(k)
    return seen


def sysctl(name: str) -> str | None:
    """A kernel setting from /proc/sys (``kernel.yama.ptrace_scope``); None when absent or unreadable."""
    try:
        with open("/proc/sys/" + name.replace(".", "/"), "rb") as f:
            return f.read().decode("utf-8", "replace").strip()
    except OSError:
        return None


def has_capability(bit: int, pid: int | None = None) -> bool:
    """Whether the process (default: this one) has capability ``bit`` in its effective set."""
    caps = status_field(pid or os.getpid(), "CapEff")
    try:
        return bool(int(caps or "0", 16) >> bit & 1)
    except ValueError:
        return False


# ------------------------------------------------------------------ counters for metrics


def status_fields(pid: int, names: tuple[str, ...]) -> dict[str, str]:
    """Several ``Name:`` fields of /proc/PID/status in one read; raises Gone."""
    keys = {n.encode() + b":": n for n in names}
    out: dict[str, str] = {}
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                k = line[:line.find(b":") + 1]
                if k in keys:
                    out[keys[k]] = line[len(k):].strip().decode("utf-8", "replace")
    except (FileNotFoundError, ProcessLookupError):
        raise Gone(pid) from None
    return out


def context_switches(pid: int) -> tuple[int, int]:
    """(voluntary, involuntary) context switches of the whole process; raises Gone."""
    f = status_fields(pid, ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"))
    return int(f.get("voluntary_ctxt_switches", 0)), int(f.get("nonvoluntary_ctxt_switches", 0))


_BOOT: list[float] = []


def start_time(pid: int) -> float:
    """When the process started, epoch seconds; raises Gone."""
    if not _BOOT:
        with open("/proc/stat") as f:
            _BOOT.append(float(next(ln.split()[1] for ln in f if ln.startswith("btime"))))
    return _BOOT[0] + stat(pid).starttime_ticks / _TICK


# The fd and limit readers live in their own modules; importing them from here keeps
# one name for "the /proc reader" (``from perfkit.procs import proc``).
from perfkit.procs.fds import (  # noqa: E402,F401
    FD_KINDS,
    TCP_STATES,
    UNIX_STATES,
    SocketCache,
    describe_fds,
    fd_kind,
    fd_links,
    inode,
    socket_table,
)
from perfkit.procs.limits import fd_limit, memory_limit, thread_limit  # noqa: E402,F401

# ------------------------------------------------------------------ identity and activity


@dataclass(frozen=True)
class Identity:
    """What a pid *is*: a new process (pid reuse) changes ``starttime``; an exec changes
    ``exe`` or ``cmdline`` (and ``comm``) while the pid and start time stay."""

    pid: int
    starttime_ticks: int
    exe: str | None
    cmdline: tuple[str, ...]
    comm: str

    def describe(self) -> str:
        return " ".join(self.cmdline)[:120] or self.comm


def identity(pid: int) -> Identity | None:
    """The pid's identity now, or None when it is gone (or a zombie)."""
    try:
        st = stat(pid)
    except Gone:
        return None
    if st.state in ("Z", "X"):
        return None
    return Identity(pid=pid, starttime_ticks=st.starttime_ticks, exe=exe(pid), cmdline=tuple(cmdline(pid)),
                    comm=comm(pid))


def replaced(before: Identity, pid: int) -> str | None:
    """How ``pid`` stopped being ``before``: "exited", "reused" (another process now has the
    pid), "exec" (it exec'd into another program), or None when it is still the same."""
    now = identity(pid)
    if now is None:
        return "exited"
    if now.starttime_ticks != before.starttime_ticks:
        return "reused"
    if now.exe != before.exe or now.cmdline != before.cmdline or now.comm != before.comm:
        return "exec"
    return None


def thread_activity(pid: int) -> tuple[int, int, str]:
    """(timeslices run, CPU ns, thread states) summed over every thread of ``pid``.

    From /proc/PID/task/*/schedstat (falls back to the CPU ticks of each thread's stat):
    two equal readings mean no thread of the process ran in between.  ``states`` holds
    each thread's one-letter state (``t``: stopped by a debugger).  Raises Gone.
    """
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except (FileNotFoundError, ProcessLookupError):
        raise Gone(pid) from None
    runs = cpu = 0
    states = []
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        rest = data[data.rfind(b")") + 2:].split()
        states.append(rest[0].decode())
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
                fields = f.read().split()
            cpu += int(fields[0])
            runs += int(fields[2])
        except (OSError, ValueError, IndexError):
            cpu += (int(rest[11]) + int(rest[12])) * (1_000_000_000 // _TICK)
    return runs, cpu, "".join(states)


def tracer(pid: int) -> int:
    """The pid ptrace-attached to ``pid`` (0: none)."""
    v = status_field(pid, "TracerPid")
    try:
        return int(v) if v else 0
    except ValueError:
        return 0


def maps_mention(pid: int, needle: str) -> bool | None:
    """Whether any mapping of ``pid`` names a file containing ``needle``; None if unreadable."""
    try:
        with open(f"/proc/{pid}/maps", "rb") as f:
            return needle.encode() in f.read()
    except OSError:
        return None
