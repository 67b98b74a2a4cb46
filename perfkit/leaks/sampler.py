"""The leak sampler: one cheap reading of a process's resources, and a monitor that
takes them on a fixed schedule.

One :func:`sample` reads, per process (through the /proc reader, ``perfkit.procs.proc``):

* ``/proc/PID/stat``          state, thread count, RSS (one small read)
* ``/proc/PID/smaps_rollup``  PSS and USS (only with ``pss=True``; costs ~0.1–1 ms)
* ``/proc/PID/fd``            every fd, classified file / socket / pipe / other by readlink
* ``/proc/PID/net/*``         socket states, only for the socket inodes the process holds,
                              and only when it holds any (cached, see ``SocketCache``)
* ``/proc/PID/task/*/children`` child processes (cached, see ``ChildCache``)

Whatever cannot be read (another user's fds, a process that exits mid-read) is recorded
in ``ResourceSample.unavailable`` instead of failing, so a monitor keeps what it had.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from perfkit import redact
from perfkit.procs.proc import (
    FD_KINDS,
    ChildCache,
    Gone,
    SocketCache,
    children,
    fd_kind,
    fd_links,
    identity,
    inode,
    read_smaps_rollup,
    read_stat,
    replaced,
    socket_table,
)


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
        s.unavailable["fds"] = (f"permission denied reading /proc/{pid}/fd "
                                "(another user's process: run as that user or root)")
        s.unavailable["sockets"] = "needs /proc/PID/fd"
    else:
        kinds = {k: 0 for k in FD_KINDS}
        for link in links.values():
            kinds[fd_kind(link)] += 1
        s.fds, s.fd_kinds, s.sockets = len(links), kinds, kinds["socket"]
        if socket_states and kinds["socket"]:
            inodes = [inode(v) for v in links.values() if v.startswith("socket:[")]
            table = sockets.lookup(pid, inodes) if sockets is not None else socket_table(pid)
            states: dict[str, int] = {}
            for link in links.values():
                if link.startswith("socket:["):
                    info = table.get(inode(link))
                    key = f"{info['proto']}:{info['state']}" if info else "unknown"
                    states[key] = states.get(key, 0) + 1
            s.socket_states = dict(sorted(states.items()))
    s.children = kids.count(pid) if kids is not None else len(children(pid))
    read_stat(pid)  # still there? (a pid that exited mid-sample must not yield a half sample)
    s.cost_s = time.process_time() - c0
    return s



# ------------------------------------------------------------------ monitoring


@dataclass
class MonitorResult:
    pid: int
    samples: list[ResourceSample]
    interval: float
    duration: float  # requested
    started: float  # wall clock (epoch seconds)
    elapsed: float = 0.0
    gone_at: float | None = None  # seconds after start when the process vanished (or exec'd)
    gone_how: str | None = None  # "exited", "exec" (another program in the same pid), "reused" (a new process)
    gone_into: str | None = None  # what the pid runs now, after an exec
    interrupted: bool = False

    @property
    def unavailable(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for s in self.samples:
            out.update(s.unavailable)
        return out

    def series(self, resource: str) -> list[tuple[float, float]]:
        out = []
        for s in self.samples:
            v = s.value(resource)
            if v is not None:
                out.append((s.t, v))
        return out

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
    ident = identity(pid)
    try:
        while True:
            now = time.monotonic() - t0
            try:
                s = sample(pid, now, pss=pss, sockets=cache, kids=kids)
            except Gone:
                res.gone_at, res.gone_how = now, "exited"
                break
            how = replaced(ident, pid) if ident is not None else None
            if how is not None:  # exec'd into another program, or the pid was reused: not the process we watch
                now_ident = identity(pid)
                res.gone_at, res.gone_how = now, how
                res.gone_into = redact.shown(now_ident.describe()) if now_ident is not None else None
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
