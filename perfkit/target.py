"""Targets: an existing process (``--pid N``) or a command perfkit launches (``-- CMD``).

Checks made up front, each with its own error and exit code 3: the pid exists, is not
a zombie, is a Python process, and this user may attach to it.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field

from perfkit.errors import NoSuchProcess, NotPython, PermissionDenied, TargetExited, UsageError

PTRACE_HINT = ("run as root (sudo), or grant CAP_SYS_PTRACE; in a container add --cap-add SYS_PTRACE; "
               "or launch the program under perfkit: perfkit cpu -- python app.py")


@dataclass
class Target:
    pid: int | None = None
    command: list[str] = field(default_factory=list)

    @property
    def launched(self) -> bool:
        return self.pid is None

    def describe(self) -> str:
        if self.pid is not None:
            return f"pid {self.pid}"
        return " ".join(self.command)


def resolve(pid: int | None, command: list[str] | None, *, require_python: bool = True) -> Target:
    """Exactly one of --pid / -- CMD; validated."""
    command = list(command or [])
    if pid is not None and command:
        raise UsageError("give either --pid or a command after --, not both")
    if pid is None and not command:
        raise UsageError("no target: give --pid N to attach, or -- CMD ARGS to launch",
                         "e.g. perfkit cpu --pid 4242   or   perfkit cpu -- python app.py")
    if pid is not None:
        check_pid(pid, require_python=require_python)
        return Target(pid=pid)
    exe = command[0]
    if os.sep not in exe and shutil.which(exe) is None:
        raise NoSuchProcess(f"cannot launch {exe!r}: command not found", "check the command and your PATH")
    if os.sep in exe and not os.access(exe, os.X_OK):
        raise NoSuchProcess(f"cannot launch {exe!r}: no such executable", "check the path")
    return Target(command=command)


def _proc(pid: int):
    import psutil

    if pid <= 0:
        raise UsageError(f"invalid pid {pid}")
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        raise NoSuchProcess(f"no such process: pid {pid}", "check the pid (ps aux | grep python)") from None


def check_pid(pid: int, *, require_python: bool = True) -> None:
    import psutil

    proc = _proc(pid)
    try:
        status = proc.status()
    except psutil.NoSuchProcess:
        raise NoSuchProcess(f"no such process: pid {pid}") from None
    if status == psutil.STATUS_ZOMBIE:
        raise TargetExited(f"pid {pid} has exited (zombie): nothing to profile")
    check_reachable(pid)
    if require_python and not is_python(pid):
        name = _name(pid)
        raise NotPython(f"pid {pid} ({name}) is not a Python process",
                        "perfkit profiles CPython processes; pick the python/gunicorn/uvicorn pid")


def _name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def check_reachable(pid: int) -> None:
    """Raise PermissionDenied when this user cannot read/attach to ``pid``."""
    try:
        with open(f"/proc/{pid}/maps", "rb") as f:
            f.read(1)
    except FileNotFoundError:
        raise NoSuchProcess(f"no such process: pid {pid}") from None
    except PermissionError:
        raise PermissionDenied(f"permission denied attaching to pid {pid}", PTRACE_HINT) from None


_PY_MAP = re.compile(rb"/(lib)?python\d(\.\d+)?[^/\n]*(\.so[^/\n]*)?$", re.M)


def is_python(pid: int) -> bool:
    """True if the process runs a CPython interpreter (executable or libpython mapped)."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except PermissionError:
        raise PermissionDenied(f"permission denied attaching to pid {pid}", PTRACE_HINT) from None
    except FileNotFoundError:
        raise NoSuchProcess(f"no such process: pid {pid}") from None
    except OSError:
        exe = ""
    if re.search(r"python\d?(\.\d+)?[^/]*$", os.path.basename(exe)):
        return True
    try:
        with open(f"/proc/{pid}/maps", "rb") as f:
            maps = f.read()
    except FileNotFoundError:
        raise NoSuchProcess(f"no such process: pid {pid}") from None
    except PermissionError:
        raise PermissionDenied(f"permission denied attaching to pid {pid}", PTRACE_HINT) from None
    return b"libpython" in maps or bool(_PY_MAP.search(maps))


def python_version(pid: int) -> str | None:
    """Best effort 'X.Y' of the target's interpreter (from its executable or libpython)."""
    candidates = []
    try:
        candidates.append(os.path.basename(os.readlink(f"/proc/{pid}/exe")))
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/maps", "rb") as f:
            for m in re.finditer(rb"libpython(\d\.\d+)", f.read()):
                return m.group(1).decode()
    except OSError:
        pass
    for c in candidates:
        m = re.search(r"python(\d\.\d+)", c)
        if m:
            return m.group(1)
    return None


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []
