"""Targets: an existing process (``--pid N``) or a command perfkit launches (``-- CMD``).

Checks made up front, each with its own error and exit code 3: the pid exists, is not
a zombie, is a Python process, and this user may attach to it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sys
from dataclasses import dataclass, field

from perfkit import redact
from perfkit.errors import NoSuchProcess, NotPython, PermissionDenied, TargetExited, TargetStopped, UsageError
from perfkit.procs import proc, supervisor

PTRACE_HINT = ("run as root (sudo), or grant CAP_SYS_PTRACE; in a container add --cap-add SYS_PTRACE; "
               "or launch the program under perfkit: perfkit cpu -- python app.py")


def doctor_hint(hint: str | None, pid: int | None = None) -> str:
    """A precondition's hint, pointing at ``perfkit doctor`` (which explains every one of them)."""
    tail = f"perfkit doctor --pid {pid} checks every precondition" if pid is not None else \
        "perfkit doctor checks every precondition"
    return f"{hint}; {tail}" if hint else tail


@dataclass
class Target:
    pid: int | None = None
    command: list[str] = field(default_factory=list)

    @property
    def launched(self) -> bool:
        return self.pid is None

    def describe(self) -> str:
        """``pid 4242`` or the launched command (secrets redacted)."""
        if self.pid is not None:
            return f"pid {self.pid}"
        return " ".join(redact.argv(self.command)[0])


def resolve(pid: int | None, command: list[str] | None, *, require_python: bool = True,
            allow_stopped: bool = False) -> Target:
    """Exactly one of --pid / -- CMD; validated (see :func:`check_pid`)."""
    command = list(command or [])
    if pid is not None and command:
        raise UsageError("give either --pid or a command after --, not both")
    if pid is None and not command:
        raise UsageError("no target: give --pid N to attach, or -- CMD ARGS to launch",
                         "e.g. perfkit cpu --pid 4242   or   perfkit cpu -- python app.py")
    if pid is not None:
        check_pid(pid, require_python=require_python, allow_stopped=allow_stopped)
        return Target(pid=pid)
    exe = command[0]
    if os.sep not in exe and shutil.which(exe) is None:
        raise NoSuchProcess(f"cannot launch {exe!r}: command not found", "check the command and your PATH")
    if os.sep in exe and not os.access(exe, os.X_OK):
        raise NoSuchProcess(f"cannot launch {exe!r}: no such executable", "check the path")
    return Target(command=command)


def check_pid(pid: int, *, require_python: bool = True, allow_stopped: bool = False, attach: bool = True) -> None:
    """Look before touching: exists, not a zombie or kernel thread, not stopped, reachable, Python.

    A stopped target (state T/t) is refused unless ``allow_stopped`` (readers that never
    resume it: threads, triage, leaks): attaching tools would resume it, or hang.
    ``attach=False`` (watching from /proc only, as leaks does) needs no ptrace rights.
    """
    if pid <= 0:
        raise UsageError(f"invalid pid {pid}")
    st = proc.state(pid)
    if st is None:
        raise NoSuchProcess(f"no such process: pid {pid}", "check the pid (ps aux | grep python)")
    if st in ("Z", "X"):
        raise TargetExited(f"pid {pid} has exited (zombie): nothing to profile")
    if proc.is_kernel_thread(pid):
        raise NotPython(f"pid {pid} ({proc.comm(pid)}) is a kernel thread, not a program perfkit can profile",
                        "pick the pid of a Python process (ps aux | grep python)")
    if st in ("T", "t") and not allow_stopped:
        how = "by a debugger (tracing stop)" if st == "t" else "(SIGSTOP)"
        raise TargetStopped(f"pid {pid} is stopped {how}: attaching would resume it or hang",
                            f"resume it with kill -CONT {pid}, or read it as it is with perfkit threads --pid {pid}")
    if attach:
        check_reachable(pid)
    if require_python and not is_python(pid):
        raise NotPython(f"pid {pid} ({proc.comm(pid)}) is not a Python process",
                        "perfkit profiles CPython processes; pick the python/gunicorn/uvicorn pid")


def looks_python(pid: int) -> bool:
    """Like :func:`is_python`, but False (not an error) when this user may not look."""
    try:
        return is_python(pid)
    except PermissionDenied:
        return False


def stopped(pid: int) -> bool:
    return proc.state(pid) in ("T", "t")


def check_reachable(pid: int) -> None:
    """Raise PermissionDenied when this user cannot read/attach to ``pid``."""
    _maps(pid, 1)


_PY_MAP = re.compile(rb"/(lib)?python\d(\.\d+)?[^/\n]*(\.so[^/\n]*)?$", re.M)


def is_python(pid: int) -> bool:
    """True if the process runs a CPython interpreter (executable or libpython mapped)."""
    try:
        exe = proc.exe_strict(pid)
    except PermissionError:
        raise PermissionDenied(f"permission denied attaching to pid {pid}", doctor_hint(PTRACE_HINT, pid)) from None
    except proc.Gone:
        raise NoSuchProcess(f"no such process: pid {pid}") from None
    if re.search(r"python\d?(\.\d+)?[^/]*$", os.path.basename(exe)):
        return True
    maps = _maps(pid)
    return b"libpython" in maps or bool(_PY_MAP.search(maps))


def _maps(pid: int, limit: int | None = None) -> bytes:
    try:
        return proc.maps(pid, limit)
    except proc.Gone:
        raise NoSuchProcess(f"no such process: pid {pid}") from None
    except PermissionError:
        raise PermissionDenied(f"permission denied attaching to pid {pid}", doctor_hint(PTRACE_HINT, pid)) from None


def python_version(pid: int) -> str | None:
    """Best effort 'X.Y' of the target's interpreter (from its executable or libpython)."""
    exe = proc.exe(pid)
    candidates = [os.path.basename(exe)] if exe else []
    try:
        for mb in re.finditer(rb"libpython(\d\.\d+)", proc.maps(pid)):
            return mb.group(1).decode()
    except (OSError, proc.Gone):
        pass
    for c in candidates:
        m = re.search(r"python(\d\.\d+)", c)
        if m:
            return str(m.group(1))
    return None


def cmdline(pid: int) -> list[str]:
    """The command line as perfkit shows and writes it: secrets redacted (unless --no-redact)."""
    return redact.argv(proc.cmdline(pid))[0]


def shown_cmdline(pid: int | None, command: list[str] | None = None) -> tuple[list[str], bool]:
    """(command line as written, whether something was redacted) of ``pid`` or of a launched ``command``."""
    return redact.argv(proc.cmdline(pid) if pid is not None and command is None else list(command or []))


class Launched:
    """A program perfkit launched (``-- CMD``), under the child supervisor.

    Its stdout goes to perfkit's stderr (stdout stays clean for ``--json``); its stderr
    passes through a relay that keeps the tail for error messages and can be muted
    once perfkit itself interrupts the program (its KeyboardInterrupt traceback is
    perfkit's doing).  Other processes of the user may ptrace it, so a sampler that is
    its sibling can attach under Yama ``ptrace_scope=1``.
    """

    STOP_STEPS = ((signal.SIGINT, 5.0), (signal.SIGTERM, 3.0))

    def __init__(self, command: list[str], *, env: dict | None = None, cwd: str | None = None,
                 traceable: bool = True, output=None) -> None:
        """``output``: a text file that receives the program's stdout and stderr instead
        of perfkit's stderr (a full-screen view must not be scribbled over)."""
        self.command = list(command)
        try:
            self.child = supervisor.spawn(self.command, env=env, cwd=cwd,
                                          stdout=output.fileno() if output is not None else _stderr_fd(),
                                          stderr=supervisor.PIPE, ptracer_any=traceable)
        except supervisor.SpawnError as exc:
            raise NoSuchProcess(f"cannot launch {self.command[0]!r}: {exc.strerror}",
                                "check the command and your PATH") from None
        self.relay = supervisor.Relay(self.child.stderr, sink=output)
        self.pid = self.child.pid

    def poll(self) -> supervisor.Outcome | None:
        return self.child.poll()

    def running(self) -> bool:
        return self.child.poll() is None

    def wait(self, timeout: float) -> supervisor.Outcome | None:
        """Up to ``timeout`` s for it to end on its own; its outcome, or None if it still runs."""
        return self.child.wait(timeout)

    def stop(self, reason: str) -> supervisor.Outcome:
        """Stop it the way a user would (SIGINT, then SIGTERM, then SIGKILL)."""
        if self.child.poll() is None:
            self.relay.mute = True
        return self.child.stop(self.STOP_STEPS, reason=reason)

    def close(self) -> supervisor.Outcome:
        if self.child.poll() is None:
            self.relay.mute = True
        out = self.child.close(self.STOP_STEPS)
        self.relay.join(2.0)
        out.stderr_tail = self.relay.tail()
        return out

    def describe(self) -> str:
        shown = redact.argv(self.command)[0]
        return " ".join(shown[:4]) + (" …" if len(shown) > 4 else "")

    def __enter__(self) -> "Launched":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def failure(outcome: supervisor.Outcome | None, what: str) -> str | None:
    """"python app.py exited with status 3 after 2.1 s" when a launched program failed on its own."""
    if outcome is None or outcome.stopped_by is not None or outcome.returncode in (0, None):
        return None
    return outcome.describe(redact.shown(what))


def _stderr_fd() -> int:
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return supervisor.DEVNULL
