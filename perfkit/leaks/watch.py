"""Everything `perfkit leaks` reads from a live process: the resource series (procstat),
and at the start and end of the window what the fds point to and every thread's stack
(py-spy, non-blocking), so new fds and threads can be attributed; the limits each
resource runs into; and, on request, a short memray capture for memory growth.

Whatever cannot be read is recorded as a note (``unavailable``) instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from perfkit.leaks import sampler
from perfkit.procs import proc as procstat
from perfkit.procs.signals import sigterm_as_interrupt


@dataclass
class Watch:
    pid: int
    monitor: sampler.MonitorResult
    fds_start: dict[int, str] | None = None
    fds_end: dict[int, str] | None = None
    new_fds: list[dict] = field(default_factory=list)  # described (path / socket peer)
    threads_start: list | None = None  # pyspy.ThreadStack
    threads_end: list | None = None
    thread_tids_start: set[int] = field(default_factory=set)  # from /proc (always readable)
    thread_names_end: dict[int, str] = field(default_factory=dict)  # tid -> comm, from /proc
    limits: dict[str, tuple[float | None, str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _fds(pid: int, notes: list[str]) -> dict[int, str] | None:
    try:
        return procstat.fd_links(pid)
    except PermissionError:
        notes.append(f"fd attribution unavailable: permission denied reading /proc/{pid}/fd")
    except procstat.Gone:
        pass
    return None


def _stacks(pid: int, notes: list[str], when: str, python: bool):
    if not python:
        return None
    from perfkit.errors import PerfkitError
    from perfkit.tools import pyspy

    try:
        return pyspy.dump(pid, nonblocking=True, timeout=15.0)
    except PerfkitError as exc:
        notes.append(f"thread stacks at {when} unavailable: {exc.message}")
        return None


def _tids(pid: int) -> set[int]:
    try:
        return set(procstat.thread_cpu_times(pid))
    except procstat.Gone:
        return set()


def watch(pid: int, duration: float, interval: float, *, python: bool = True, pss: bool = True,
          on_sample=None) -> Watch:
    notes: list[str] = []
    st = procstat.state(pid)
    if st in ("T", "t"):
        notes.append(f"pid {pid} is {procstat.STATE_NAMES[st]}: it was watched as it is, never resumed "
                     "(a stopped process cannot grow)")
    fds0 = _fds(pid, notes)
    tids0 = _tids(pid)
    st0 = _stacks(pid, notes, "the start", python)
    with sigterm_as_interrupt():
        mon = sampler.monitor(pid, duration, interval, pss=pss, on_sample=on_sample)
    w = Watch(pid=pid, monitor=mon, fds_start=fds0, threads_start=st0, thread_tids_start=tids0, notes=notes)
    w.limits = limits(pid)
    if mon.gone_at is None and not mon.interrupted:
        w.fds_end = _fds(pid, [])
        try:
            w.thread_names_end = {tid: name for tid, (_, name) in procstat.thread_cpu_times(pid).items()}
        except procstat.Gone:
            pass
        w.threads_end = _stacks(pid, notes, "the end", python)
        if fds0 is not None and w.fds_end is not None:
            new = {fd: link for fd, link in w.fds_end.items() if fds0.get(fd) != link}
            try:
                w.new_fds = procstat.describe_fds(pid, new)
            except OSError:
                w.new_fds = [{"fd": fd, "kind": procstat.fd_kind(link), "target": link} for fd, link in new.items()]
    return w


def limits(pid: int) -> dict[str, tuple[float | None, str]]:
    fd = procstat.fd_limit(pid)
    mem = procstat.memory_limit(pid)
    thr = procstat.thread_limit(pid)
    fd_src = "RLIMIT_NOFILE (soft)" if fd is not None else "unlimited"
    return {"memory": mem, "threads": thr, "fds": (fd, fd_src), "sockets": (fd, fd_src)}


def capture_memory(pid: int, seconds: float):
    """A short memray capture; (profile, None) or (None, why not)."""
    from perfkit.errors import PerfkitError

    try:
        from perfkit.target import Target
        from perfkit.tools.memray import MemrayOptions, capture

        res = capture(Target(pid=pid), MemrayOptions(duration=seconds))
        return res.profile, None
    except PerfkitError as exc:
        return None, exc.message
    except ImportError as exc:
        return None, f"memray collector unavailable: {exc}"


def launch(command: list[str]):
    """Start ``command`` for watching (``target.Launched``: its stdout goes to perfkit's stderr)."""
    from perfkit.target import Launched

    return Launched(command)


def settle(launched, seconds: float = 0.5) -> None:
    """Give a launched interpreter a moment to start (so py-spy finds Python in it)."""
    launched.child.wait(seconds)


def stop_launched(launched) -> int | None:
    """Stop a launched command perfkit started (SIGINT, SIGTERM, then SIGKILL); its exit code."""
    return launched.close().returncode
