"""Python processes for triage: find them (and their children), read their facts,
dump every thread's stack and take short CPU profiles -- never pausing a target.

Stacks come from ``pyspy.dump(pid, nonblocking=True)`` and profiles from
``pyspy.record`` with ``RecordOptions(nonblocking=True)``: py-spy reads the target's
memory without stopping it.  Everything else is psutil and /proc.  Each reader
catches its own failure and records it (``problems``) with whether more rights would
have helped, so one unreadable or vanished process never stops the others.
"""

from __future__ import annotations

import linecache
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from perfkit.target import shown_cmdline
from perfkit.triage.host import Problems, read_text
from perfkit.triage.model import (
    FdCounts,
    NofileLimit,
    ProcessFacts,
    SocketFacts,
    StackFrame,
    Stacks,
    ThreadCpu,
    ThreadDump,
)

_PY_NAME = re.compile(r"^(python|pypy)\d?(\.\d+)?[a-z]*$|^(gunicorn|uvicorn|celery|uwsgi)$")


@dataclass
class PyProc:
    """A Python process chosen for triage."""

    pid: int
    ppid: int | None
    name: str
    cmdline: list[str]
    user: str | None
    role: str  # "given" (--pid), "child" (a descendant of a given pid), "found" (host scan)
    parent_target: int | None = None  # the given pid it descends from
    cpu_s0: float | None = None  # process CPU seconds when found
    t0: float = 0.0  # monotonic time when found
    threads0: dict[int, float] = field(default_factory=dict)  # tid -> CPU seconds when found
    python_by_name: bool = False  # decided from the command name only (exe/maps not readable)
    redacted: bool = False  # secrets were taken out of cmdline

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "ppid": self.ppid, "name": self.name, "cmdline": self.cmdline, "user": self.user,
                "role": self.role, "parent_target": self.parent_target, "python_by_name": self.python_by_name}


def _looks_python(pid: int, problems: Problems) -> tuple[bool, bool]:
    """(is python, decided by name only).  Falls back to the command name when the
    executable and memory maps are not readable (another user's process)."""
    from perfkit.errors import NoSuchProcess, PermissionDenied
    from perfkit.target import is_python

    try:
        return is_python(pid), False
    except PermissionDenied:
        pass
    except NoSuchProcess:
        return False, False
    comm = (read_text(f"/proc/{pid}/comm") or "").strip()
    args = (read_text(f"/proc/{pid}/cmdline") or "").split("\0")
    exe = os.path.basename(args[0]) if args and args[0] else ""
    by_name = bool(_PY_NAME.match(comm) or _PY_NAME.match(exe))
    return by_name, True


def _own_tree() -> set[int]:
    import psutil

    me = os.getpid()
    out = {me}
    try:
        out.update(c.pid for c in psutil.Process(me).children(recursive=True))
    except psutil.Error:
        pass
    return out


def thread_cpu(pid: int) -> dict[int, float]:
    import psutil

    try:
        return {t.id: t.user_time + t.system_time for t in psutil.Process(pid).threads()}
    except psutil.Error:
        return {}


def _make(p: Any, role: str, parent_target: int | None, problems: Problems, by_name: bool) -> PyProc | None:
    import psutil

    try:
        with p.oneshot():
            t = p.cpu_times()
            try:
                user = p.username()
            except (psutil.Error, KeyError):
                user = None
            cmdline, redacted = shown_cmdline(p.pid)
            proc = PyProc(pid=p.pid, ppid=p.ppid(), name=p.name(), cmdline=cmdline, user=user, role=role,
                          parent_target=parent_target, cpu_s0=t.user + t.system, t0=time.monotonic(),
                          python_by_name=by_name, redacted=redacted)
    except psutil.NoSuchProcess:
        return None
    except psutil.Error as exc:
        problems.add(f"pid {p.pid}: basic facts", exc)
        return None
    proc.threads0 = thread_cpu(p.pid)
    return proc


def candidates(pids: list[int] | None, problems: Problems) -> list[tuple[int, str, int | None]]:
    """(pid, role, parent_target) of every process to examine: ``pids`` and their
    descendants, or (no pids) every process on the host except perfkit itself.
    Reads only /proc/*/stat (parent links), which never blocks on a wedged process."""
    import psutil

    exclude = _own_tree()
    if not pids:
        return [(pid, "found", None) for pid in psutil.pids() if pid not in exclude]
    out: dict[int, tuple[int, str, int | None]] = {}
    for pid in pids:
        try:
            root = psutil.Process(pid)
        except psutil.Error:
            problems.add(f"pid {pid}", "no such process")
            continue
        out.setdefault(pid, (pid, "given", None))
        try:
            kids = root.children(recursive=True)
        except psutil.Error as exc:
            problems.add(f"pid {pid}: children", exc)
            kids = []
        for kid in kids:
            if kid.pid not in exclude and kid.pid not in out:
                out[kid.pid] = (kid.pid, "child", pid)
    return sorted(out.values())


def examine(pid: int, role: str, parent_target: int | None, problems: Problems) -> PyProc | None:
    """A ``PyProc`` if ``pid`` runs Python (reads its exe link and memory maps)."""
    import psutil

    is_py, by_name = _looks_python(pid, problems)
    if not is_py:
        return None
    try:
        p = psutil.Process(pid)
    except psutil.Error:
        return None
    return _make(p, role, parent_target, problems, by_name)


def find(pids: list[int] | None, problems: Problems) -> list[PyProc]:
    """The Python processes among :func:`candidates`, examined one after another."""
    found = [examine(pid, role, parent, problems) for pid, role, parent in candidates(pids, problems)]
    return note_by_name([p for p in found if p], problems)


def note_by_name(procs: list[PyProc], problems: Problems) -> list[PyProc]:
    n = sum(1 for p in procs if p.python_by_name)
    if n:
        problems.add("finding Python processes",
                     f"{n} processes recognised by name only (their executable and memory maps "
                     "are not readable by this user); Python processes with other names may be missed",
                     needs_privilege=True)
    return sorted(procs, key=lambda p: p.pid)


def python_in_tree(pid: int) -> bool:
    """True if ``pid`` or one of its descendants is a Python process."""
    import psutil

    problems = Problems()
    if _looks_python(pid, problems)[0]:
        return True
    try:
        kids = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return False
    return any(_looks_python(k.pid, problems)[0] for k in kids)


# --------------------------------------------------------------------------- facts

def _nofile_limit(pid: int, problems: Problems) -> NofileLimit | None:
    text = read_text(f"/proc/{pid}/limits", problems, f"pid {pid}: /proc/{pid}/limits")
    if not text:
        return None
    for line in text.splitlines():
        if line.startswith("Max open files"):
            parts = line.split()
            soft, hard = parts[3], parts[4]
            return NofileLimit(soft=None if soft == "unlimited" else int(soft),
                               hard=None if hard == "unlimited" else int(hard))
    return None


def _fds(pid: int, problems: Problems) -> FdCounts | None:
    """Open fds by kind (file, socket, pipe, anon, other), read from /proc/PID/fd."""
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError as exc:
        problems.add(f"pid {pid}: open file descriptors", exc)
        return None
    kinds = {"file": 0, "socket": 0, "pipe": 0, "anon": 0, "other": 0}
    for n in names:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{n}")
        except OSError:
            kinds["other"] += 1
            continue
        if link.startswith("socket:"):
            kinds["socket"] += 1
        elif link.startswith("pipe:"):
            kinds["pipe"] += 1
        elif link.startswith("anon_inode:"):
            kinds["anon"] += 1
        elif link.startswith("/"):
            kinds["file"] += 1
        else:
            kinds["other"] += 1
    return FdCounts(count=len(names), by_kind=kinds)


def _sockets(p: Any, problems: Problems) -> SocketFacts | None:
    import socket

    import psutil

    try:
        conns = p.net_connections(kind="all")
    except psutil.AccessDenied as exc:
        problems.add(f"pid {p.pid}: sockets", exc)
        return None
    except psutil.Error:
        return None
    by_state: dict[str, int] = {}
    listen = []
    for c in conns:
        kind = {1: "tcp", 2: "udp"}.get(int(c.type), "other")
        if c.family == socket.AF_UNIX:
            kind = "unix"
        key = f"{kind}:{c.status}" if c.status and c.status != "NONE" else kind
        by_state[key] = by_state.get(key, 0) + 1
        if c.status == "LISTEN" and c.laddr:
            listen.append(f"{c.laddr[0]}:{c.laddr[1]}" if isinstance(c.laddr, tuple) else str(c.laddr))
    return SocketFacts(count=len(conns), by_state=by_state, listening=tuple(sorted(listen)[:50]))


def thread_cpu_rows(proc: PyProc, window: float) -> dict[str, ThreadCpu]:
    """Each thread's CPU seconds, and its CPU % since ``proc`` was found (over ``window`` s)."""
    rows = {}
    for tid, secs in sorted(thread_cpu(proc.pid).items()):
        before = proc.threads0.get(tid)
        pct = round(100.0 * (secs - before) / window, 1) if before is not None and window > 0.2 else None
        rows[str(tid)] = ThreadCpu(cpu_seconds=round(secs, 3), cpu_percent=pct)
    return rows


def facts(proc: PyProc, problems: Problems) -> ProcessFacts:
    """RSS, CPU %, threads (with per-thread CPU %), fds vs RLIMIT_NOFILE, sockets, status."""
    import psutil

    p = psutil.Process(proc.pid)
    with p.oneshot():
        status = p.status()
        t = p.cpu_times()
        now = time.monotonic()
        cpu_s = t.user + t.system
        window = now - proc.t0
        cpu_pct = cpu_window = None
        if proc.cpu_s0 is not None and window > 0.2:
            cpu_pct = round(100.0 * (cpu_s - proc.cpu_s0) / window, 1)
            cpu_window = round(window, 2)
        mem = p.memory_info()
        num_threads, create_time = p.num_threads(), p.create_time()
        try:
            nice: int | None = p.nice()
        except psutil.Error:
            nice = None
    threads = thread_cpu_rows(proc, window)
    fds = _fds(proc.pid, problems)
    limit = _nofile_limit(proc.pid, problems)
    soft = limit.soft if limit else None
    return ProcessFacts(pid=proc.pid, status=status, cpu_seconds=round(cpu_s, 3), cpu_percent=cpu_pct,
                        cpu_window_s=cpu_window, rss=mem.rss, vms=mem.vms, num_threads=num_threads,
                        create_time=create_time, nice=nice, threads=threads, fds=fds, nofile_limit=limit,
                        fd_fraction=round(fds.count / soft, 4) if fds and soft else None,
                        sockets=_sockets(p, problems))


# --------------------------------------------------------------------------- stacks

def stacks(pid: int, *, locals_: bool = False, timeout: float = 10.0) -> Stacks:
    """Every thread's stack (non-blocking), leaf first, with the leaf's source line."""
    from perfkit.tools import pyspy

    out = []
    for t in pyspy.dump(pid, nonblocking=True, locals_=locals_, timeout=timeout):
        frames = tuple(StackFrame.from_pyspy(f) for f in t.frames)
        out.append(ThreadDump(pid=t.pid, thread_id=t.thread_id, os_thread_id=t.os_thread_id, name=t.name,
                              active=t.active, owns_gil=t.owns_gil, frames=frames,
                              leaf_source=_source_line(frames[0]) if frames else None))
    return tuple(out)


def _source_line(frame: StackFrame) -> str | None:
    fn, line = frame.filename, frame.line
    if not fn or not line or not os.path.isfile(fn):
        return None
    try:
        text = linecache.getline(fn, int(line))
    except Exception:
        return None
    return text.strip()[:300] or None


def gil_holder(threads: Sequence[ThreadDump]) -> ThreadDump | None:
    """The thread that held the GIL in the dump, if any."""
    return next((t for t in threads if t.owns_gil), None)


def profile(pid: int, duration: int, *, rate: int = 100) -> Any:
    """A short non-blocking CPU profile (a ``RecordResult``)."""
    from perfkit.target import Target
    from perfkit.tools import pyspy

    return pyspy.record(Target(pid=pid), pyspy.RecordOptions(duration=float(int(duration)), rate=rate,
                                                             nonblocking=True))


__all__ = ["PyProc", "find", "candidates", "examine", "note_by_name", "thread_cpu", "thread_cpu_rows", "facts",
           "stacks", "gil_holder", "profile"]
