"""The resource sampler: cheap reads of /proc (psutil where it is as cheap) for one process.

One :func:`sample` reads, per process:

* ``/proc/PID/stat``          state, thread count, RSS (one small read)
* ``/proc/PID/smaps_rollup``  PSS and USS (only with ``pss=True``; costs ~0.1–1 ms)
* ``/proc/PID/fd``            every fd, classified file / socket / pipe / other by readlink
* ``/proc/PID/net/*``         socket states, only for the socket inodes the process holds,
                              and only when it holds any
* ``/proc/PID/task/*/children`` child processes

Whatever cannot be read (another user's fds, a process that exits mid-read) is recorded
in ``ResourceSample.unavailable`` instead of failing, so a monitor keeps what it had.
This module and ``threads_cpu``/``fd_targets`` are the only code here touching live
processes.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

TCP_STATES = {
    "01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
    "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING",
}
UNIX_STATES = {"01": "UNCONNECTED", "02": "CONNECTING", "03": "CONNECTED", "04": "DISCONNECTING"}
FD_KINDS = ("file", "socket", "pipe", "other")


class Gone(Exception):
    """The process no longer exists (or became a zombie)."""


@dataclass
class ResourceSample:
    t: float  # seconds since the monitor started
    rss: int | None = None
    pss: int | None = None
    uss: int | None = None
    threads: int | None = None
    fds: int | None = None
    fd_kinds: dict[str, int] = field(default_factory=dict)
    sockets: int | None = None
    socket_states: dict[str, int] = field(default_factory=dict)
    children: int | None = None
    cost_s: float = 0.0  # CPU seconds this sample cost perfkit
    unavailable: dict[str, str] = field(default_factory=dict)  # what -> why

    def value(self, resource: str) -> float | None:
        return {"memory": self.rss, "threads": self.threads, "fds": self.fds, "sockets": self.sockets,
                "children": self.children}.get(resource)

    def to_json(self) -> dict:
        return {"t": round(self.t, 3), "rss": self.rss, "pss": self.pss, "uss": self.uss,
                "threads": self.threads, "fds": self.fds, "fd_kinds": self.fd_kinds, "sockets": self.sockets,
                "socket_states": self.socket_states, "children": self.children,
                "unavailable": self.unavailable}


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


def fd_links(pid: int) -> dict[int, str]:
    """fd number -> readlink target; raises PermissionError / Gone."""
    base = f"/proc/{pid}/fd"
    try:
        names = os.listdir(base)
    except FileNotFoundError:
        raise Gone(pid) from None
    out = {}
    for n in names:
        try:
            out[int(n)] = os.readlink(f"{base}/{n}")
        except FileNotFoundError:
            continue  # closed between listdir and readlink
        except ValueError:
            continue
    return out


def fd_kind(link: str) -> str:
    if link.startswith("socket:["):
        return "socket"
    if link.startswith("pipe:["):
        return "pipe"
    if link.startswith("/"):
        return "file"
    return "other"


def _inode(link: str) -> str:
    return link[link.find("[") + 1:-1]


def socket_table(pid: int) -> dict[str, dict]:
    """socket inode -> {proto, state, local, remote} from /proc/PID/net/{tcp,tcp6,udp,udp6,unix}."""
    table: dict[str, dict] = {}
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        try:
            with open(f"/proc/{pid}/net/{proto}") as f:
                next(f, None)
                for line in f:
                    parts = line.split()
                    if len(parts) < 10:
                        continue
                    state = TCP_STATES.get(parts[3], parts[3]) if proto.startswith("tcp") else (
                        "ESTABLISHED" if parts[3] == "01" else "UNCONNECTED")
                    table[parts[9]] = {"proto": proto, "state": state, "local": _addr(parts[1]),
                                       "remote": _addr(parts[2])}
        except OSError:
            continue
    try:
        with open(f"/proc/{pid}/net/unix") as f:
            next(f, None)
            for line in f:
                parts = line.split()
                if len(parts) < 7:
                    continue
                table[parts[6]] = {"proto": "unix", "state": UNIX_STATES.get(parts[5], parts[5]),
                                   "local": parts[7] if len(parts) > 7 else "", "remote": ""}
    except OSError:
        pass
    return table


def _addr(hexaddr: str) -> str:
    ip, _, port = hexaddr.partition(":")
    try:
        p = int(port, 16)
        if len(ip) == 8:
            b = bytes.fromhex(ip)[::-1]
            return f"{'.'.join(str(x) for x in b)}:{p}"
        raw = bytes.fromhex(ip)
        words = [raw[i:i + 4][::-1] for i in range(0, 16, 4)]
        import ipaddress

        return f"[{ipaddress.IPv6Address(b''.join(words))}]:{p}"
    except ValueError:
        return hexaddr


def children(pid: int) -> list[int]:
    return _children_by_task(pid)[0]


class SocketCache:
    """The socket table, re-read only when unknown sockets appear, at most every ``refresh`` s.

    Reading /proc/PID/net/tcp walks the kernel's whole TCP hash (~4 ms here even when
    nearly empty), so a sampler must not do it on every tick.
    """

    def __init__(self, refresh: float = 2.0) -> None:
        self.refresh = refresh
        self.table: dict[str, dict] = {}
        self.read_at = -1e9

    def lookup(self, pid: int, inodes: list[str]) -> dict[str, dict]:
        now = time.monotonic()
        if any(i not in self.table for i in inodes) and now - self.read_at >= self.refresh:
            self.table = socket_table(pid)
            self.read_at = now
        return self.table


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


def _children_by_task(pid: int) -> tuple[list[int], set[str]]:
    kids: list[int] = []
    parents: set[str] = set()
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        raise Gone(pid) from None
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                mine = [int(x) for x in f.read().split()]
        except OSError:
            continue
        if mine:
            parents.add(tid)
            kids.extend(mine)
    return kids, parents


def sample(pid: int, t: float = 0.0, *, pss: bool = False, socket_states: bool = True,
           sockets: SocketCache | None = None, kids: ChildCache | None = None) -> ResourceSample:
    """One cheap reading of ``pid``'s resources; raises :class:`Gone` if it has exited."""
    c0 = time.process_time()
    state, nthreads, rss = read_stat(pid)
    s = ResourceSample(t=t, rss=rss, threads=nthreads)
    if pss:
        try:
            s.pss, s.uss = read_smaps_rollup(pid)
        except PermissionError:
            s.unavailable["pss"] = "permission denied reading /proc/PID/smaps_rollup"
        except FileNotFoundError:
            raise Gone(pid) from None
        except OSError as exc:
            s.unavailable["pss"] = exc.strerror or str(exc)
    try:
        links = fd_links(pid)
    except PermissionError:
        s.unavailable["fds"] = f"permission denied reading /proc/{pid}/fd (another user's process: run as that user or root)"
        s.unavailable["sockets"] = "needs /proc/PID/fd"
    else:
        kinds = {k: 0 for k in FD_KINDS}
        for link in links.values():
            kinds[fd_kind(link)] += 1
        s.fds, s.fd_kinds, s.sockets = len(links), kinds, kinds["socket"]
        if socket_states and kinds["socket"]:
            inodes = [_inode(v) for v in links.values() if v.startswith("socket:[")]
            table = sockets.lookup(pid, inodes) if sockets is not None else socket_table(pid)
            states: dict[str, int] = {}
            for link in links.values():
                if link.startswith("socket:["):
                    info = table.get(_inode(link))
                    key = f"{info['proto']}:{info['state']}" if info else "unknown"
                    states[key] = states.get(key, 0) + 1
            s.socket_states = dict(sorted(states.items()))
    s.children = kids.count(pid) if kids is not None else len(children(pid))
    read_stat(pid)  # still there? (a pid that exited mid-sample must not yield a half sample)
    s.cost_s = time.process_time() - c0
    return s


def describe_fds(pid: int, fds: dict[int, str]) -> list[dict]:
    """What each fd points to: path, or socket proto/state/peer; for leak attribution."""
    table = socket_table(pid) if any(v.startswith("socket:[") for v in fds.values()) else {}
    out = []
    for fd, link in sorted(fds.items()):
        kind = fd_kind(link)
        item = {"fd": fd, "kind": kind, "target": link}
        if kind == "socket":
            info = table.get(_inode(link))
            if info:
                item.update({"proto": info["proto"], "state": info["state"], "local": info["local"],
                             "remote": info["remote"]})
        out.append(item)
    return out


# ------------------------------------------------------------------ limits


def fd_limit(pid: int) -> int | None:
    """The soft RLIMIT_NOFILE of ``pid``."""
    return _limit(pid, "Max open files")


def _limit(pid: int, name: str) -> int | None:
    try:
        with open(f"/proc/{pid}/limits") as f:
            for line in f:
                if line.startswith(name):
                    soft = line[len(name):].split()[0]
                    return None if soft == "unlimited" else int(soft)
    except (OSError, ValueError):
        return None
    return None


def memory_limit(pid: int) -> tuple[int | None, str]:
    """(bytes, source): the cgroup's memory.max (v2) / memory.limit_in_bytes (v1), else MemTotal."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    for line in lines:
        hid, ctrls, path = line.split(":", 2)
        candidates = []
        if hid == "0" and ctrls == "":
            candidates.append(f"/sys/fs/cgroup{path}/memory.max")
            candidates.append(f"/sys/fs/cgroup/unified{path}/memory.max")
        elif "memory" in ctrls.split(","):
            candidates.append(f"/sys/fs/cgroup/memory{path}/memory.limit_in_bytes")
        for c in candidates:
            try:
                with open(c) as f:
                    raw = f.read().strip()
            except OSError:
                continue
            if raw and raw != "max" and int(raw) < (1 << 60):
                return int(raw), f"cgroup {c}"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024, "MemTotal (no cgroup memory limit)"
    except OSError:
        pass
    return None, "unknown"


def thread_limit(pid: int) -> tuple[int | None, str]:
    """The tightest of kernel.threads-max, the cgroup pids.max and RLIMIT_NPROC (per user)."""
    best: tuple[int | None, str] = (None, "unknown")
    cands = []
    try:
        with open("/proc/sys/kernel/threads-max") as f:
            cands.append((int(f.read()), "kernel.threads-max"))
    except (OSError, ValueError):
        pass
    nproc = _limit(pid, "Max processes")
    if nproc:
        cands.append((nproc, "RLIMIT_NPROC (per user)"))
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            for line in f.read().splitlines():
                hid, ctrls, path = line.split(":", 2)
                for c in ([f"/sys/fs/cgroup/pids{path}/pids.max"] if "pids" in ctrls.split(",") else
                          [f"/sys/fs/cgroup{path}/pids.max"] if hid == "0" else []):
                    try:
                        with open(c) as g:
                            raw = g.read().strip()
                        if raw != "max":
                            cands.append((int(raw), f"cgroup {c}"))
                    except (OSError, ValueError):
                        pass
    except OSError:
        pass
    for v, src in cands:
        if best[0] is None or v < best[0]:
            best = (v, src)
    return best


# ------------------------------------------------------------------ per-thread CPU


def thread_cpu_times(pid: int) -> dict[int, tuple[float, str]]:
    """tid -> (user+system CPU seconds, comm name) from /proc/PID/task/*/stat."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        raise Gone(pid) from None
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        name = data[data.find(b"(") + 1:data.rfind(b")")].decode("utf-8", "replace")
        rest = data[data.rfind(b")") + 2:].split()
        out[int(tid)] = ((int(rest[11]) + int(rest[12])) / tick, name)
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
    """Single-letter state, or None when gone."""
    try:
        return read_stat(pid)[0]
    except Gone:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                data = f.read()
            return data[data.rfind(b")") + 2:data.rfind(b")") + 3].decode()
        except OSError:
            return None


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


# ------------------------------------------------------------------ monitoring


@dataclass
class MonitorResult:
    pid: int
    samples: list[ResourceSample]
    interval: float
    duration: float  # requested
    started: float  # wall clock (epoch seconds)
    elapsed: float = 0.0
    gone_at: float | None = None  # seconds after start when the process vanished
    interrupted: bool = False

    @property
    def unavailable(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for s in self.samples:
            out.update(s.unavailable)
        return out

    def series(self, resource: str) -> list[tuple[float, float]]:
        return [(s.t, s.value(resource)) for s in self.samples if s.value(resource) is not None]

    def cost_per_sample(self) -> float:
        return sum(s.cost_s for s in self.samples) / len(self.samples) if self.samples else 0.0


def monitor(pid: int, duration: float, interval: float = 1.0, *, pss: bool = False,
            on_sample=None, should_stop=None) -> MonitorResult:
    """Sample ``pid`` every ``interval`` s for ``duration`` s (fixed schedule, no drift).

    Stops early, keeping what it has, when the process exits (``gone_at``) or on Ctrl-C
    (``interrupted``).  ``on_sample(sample)`` is called after each sample.
    """
    res = MonitorResult(pid=pid, samples=[], interval=interval, duration=duration, started=time.time())
    t0 = time.monotonic()
    k = 0
    cache = SocketCache()
    kids = ChildCache()
    try:
        while True:
            now = time.monotonic() - t0
            try:
                s = sample(pid, now, pss=pss, sockets=cache, kids=kids)
            except Gone:
                res.gone_at = now
                break
            res.samples.append(s)
            if on_sample:
                on_sample(s)
            k += 1
            nxt = k * interval
            if nxt > duration + 1e-9 or (should_stop and should_stop()):
                break
            time.sleep(max(0.0, nxt - (time.monotonic() - t0)))
    except KeyboardInterrupt:
        res.interrupted = True
    res.elapsed = time.monotonic() - t0
    return res
