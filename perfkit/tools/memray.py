"""The memray driver: finding memray, launching a program under ``memray run``, and the
one entry point :func:`capture` (attach lives in ``tools.memray_attach``).

``capture(target, opts)`` tracks heap allocations of a live pid (``memray attach``) or
of a launched command (``memray run``, under the child supervisor: its output passes
through, its exit status is reported), then reads the capture with
``formats.memray_capture`` into a heap ``Profile``.  On top of the capture's own
recording facts it sets target, launched, cmdline, python, options, interrupted,
target_exited, notes, program/exit_code (launched) and, for attach, attach_overhead.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from typing import Callable

from perfkit.errors import NoSuchProcess, NotPython, TargetExited, ToolMissing, UsageError
from perfkit.fileio import private_file, private_tempdir
from perfkit.formats.memray_capture import _memray, incomplete_note, read_capture
from perfkit.model import Profile
from perfkit.procs import proc, supervisor
from perfkit.procs.signals import StopRequest
from perfkit.target import Launched, Target, failure, python_version, shown_cmdline
from perfkit.tools.result import CaptureResult

STOP_GRACE = 20.0  # launched command: seconds after SIGINT before SIGTERM / SIGKILL


@dataclass
class MemrayOptions:
    duration: float | None = None  # None: attach 10 s; launched: until the command exits
    native: bool = False
    trace_python_allocators: bool = False


HeapResult = CaptureResult


def memray_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "memray", *args]


def tool_env() -> dict:
    env = dict(os.environ)
    env["PYTHONWARNINGS"] = "ignore"
    return env


def _owner(pid: int | None) -> tuple[int, int] | None:
    if pid is None:
        return None
    try:
        st = os.stat(f"/proc/{pid}")
    except OSError:
        return None
    return st.st_uid, st.st_gid


def workdir(owner_pid: int | None) -> str:
    """A private (0700) directory for the capture; owned by the target's user when it writes there."""
    return private_tempdir("heap", owner=_owner(owner_pid))


def capture_file(wd: str, owner_pid: int | None) -> str:
    """The capture's path, created empty and 0600 (memray is run with ``-f`` and keeps the mode)."""
    return private_file(wd, "capture.bin", owner=_owner(owner_pid))


def capture(target: Target, opts: MemrayOptions, on_tick: Callable[[dict], None] | None = None,
            while_running: Callable[[], None] | None = None) -> HeapResult:
    """Track ``target``'s heap with memray and return the profile (partial on interrupt/exit).

    ``while_running`` (launched commands): called once the command runs — the caller's
    own preparation (imports of its report) overlaps the command instead of following it.
    """
    if target.pid is not None:
        _memray()
        from perfkit.tools.memray_attach import capture_attach

        return capture_attach(target, opts, on_tick)
    _memray_installed()
    return _capture_launch(target, opts, on_tick, while_running)


def _memray_installed() -> None:
    """memray is in perfkit's environment (found, not imported: its import overlaps the child)."""
    import importlib.util

    if importlib.util.find_spec("memray") is None:
        _memray()  # raises ToolMissing with its hint


def tick(on_tick, **info) -> None:
    """Progress for the caller: phase, elapsed, duration, pid and the target's RSS."""
    if on_tick is not None:
        try:
            info["rss"] = proc.rss(info.get("pid"))
            on_tick(info)
        except Exception:  # a broken progress line must never break a capture
            pass


# --------------------------------------------------------------------------- launch

_PY_NAME = re.compile(r"^(python|pypy)\d*(\.\d+)?[a-z]?$")
_PY_OPTS_WITH_ARG = {"-X", "-W", "--check-hash-based-pycs"}


def split_command(command: list[str]) -> tuple[list[str], list[str]]:
    """``python [opts] prog args`` → (``[python, opts...]``, ``[prog, args...]``); scripts via their shebang."""
    exe = command[0]
    resolved = shutil.which(exe) or exe
    if _PY_NAME.match(os.path.basename(resolved)) or _PY_NAME.match(os.path.basename(exe)):
        interp, rest = [exe], list(command[1:])
    else:
        bang = _shebang(resolved)
        if not bang or not any(_PY_NAME.match(os.path.basename(p)) for p in bang):
            raise NotPython(f"{exe} is not a Python interpreter or a Python script",
                            "memray tracks Python programs: perfkit heap -- python app.py ARGS")
        interp, rest = bang, [resolved, *command[1:]]
    i = 0
    while i < len(rest) and rest[i].startswith("-") and rest[i] not in ("-m", "-c", "-"):
        interp.append(rest[i])
        if rest[i] in _PY_OPTS_WITH_ARG and i + 1 < len(rest):
            interp.append(rest[i + 1])
            i += 1
        i += 1
    prog = rest[i:]
    if not prog or prog[0] == "-" or (prog[0] in ("-m", "-c") and len(prog) < 2):
        raise UsageError("no Python program to run", "e.g. perfkit heap -- python app.py   or   -- python -m pkg")
    return interp, prog


def run_argv(command: list[str], out: str, opts: MemrayOptions) -> list[str]:
    """``python [opts] prog args`` → ``python [opts] -m memray run ... prog args``.

    The capture is compressed (memray's default, unlike attach's): memray's readers go
    through an LZ4 capture about twice as fast as through the raw file (open and the
    leaked pass 0.23 → 0.12 s on 2M records, every-record pass −20 %), which is most of
    what a launch costs after the job.  memray compresses into ``capture.bin.lz4.tmp``
    and renames it over the capture, so a job killed meanwhile leaves the raw capture
    whole; both live in perfkit's private (0700) work directory, removed afterwards.
    """
    interp, prog = split_command(command)
    mem = ["-m", "memray", "run", "-q", "-f", "-o", out]
    if opts.native:
        mem.append("--native")
    if opts.trace_python_allocators:
        mem.append("--trace-python-allocators")
    return [*interp, *mem, *prog]


def _own_interpreter(interp: list[str]) -> bool:
    """``interp`` is perfkit's own interpreter with no options: it imports what perfkit imports."""
    if len(interp) != 1:
        return False
    found = shutil.which(interp[0])
    return found is not None and os.path.abspath(found) == os.path.abspath(sys.executable)


def _check_memray_importable(interp: list[str]) -> None:
    """The launched program's interpreter (with its options) must be able to import memray.

    Skipped for perfkit's own interpreter, which just found memray (a probe is an
    interpreter start-up: ~5-10 % of a short job's run).
    """
    if _own_interpreter(interp):
        return
    probe = "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('memray') else 3)"
    try:
        res = supervisor.run([*interp, "-c", probe], timeout=30)
    except supervisor.SpawnError as exc:
        raise NoSuchProcess(f"cannot launch {interp[0]!r}: {exc.strerror}") from None
    if res.stopped_by == "timeout":
        return  # let the real launch report whatever is wrong
    if res.returncode == 3:
        raise ToolMissing(f"memray is not importable by {' '.join(interp)}",
                          f"install memray for that interpreter ({interp[0]} -m pip install memray)")


def _shebang(path: str) -> list[str]:
    try:
        with open(path, "rb") as f:
            head = f.read(256)
    except OSError:
        return []
    if not head.startswith(b"#!"):
        return []
    return head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").split()


def _capture_launch(target: Target, opts: MemrayOptions, on_tick, while_running=None) -> HeapResult:
    _check_memray_importable(split_command(target.command)[0])
    wd = workdir(None)
    out = capture_file(wd, None)
    cmd = run_argv(target.command, out, opts)
    started_wall = time.time()
    interrupted = False
    notes: list[str] = []
    try:
        with StopRequest() as stop, Launched(cmd, traceable=False) as program:
            start = time.monotonic()
            deadline = start + opts.duration if opts.duration is not None else None
            pyver = None
            _prepare(while_running)
            while program.child.wait(0.1) is None:
                now = time.monotonic()
                if pyver is None:
                    pyver = python_version(program.pid)
                if stop.signal is not None or (deadline is not None and now >= deadline):
                    interrupted = stop.signal is not None
                    notes.append("interrupted: the command got SIGINT; partial capture" if interrupted else
                                 f"stopped the command after {opts.duration:g} s (SIGINT)")
                    got = program.stop("interrupt" if interrupted else "deadline")
                    if got.escalated or (got.signal in (signal.SIGTERM, signal.SIGKILL)):
                        notes.append("the command did not stop on SIGINT; it was terminated")
                    break
                tick(on_tick, phase="tracking", elapsed=now - start, duration=opts.duration, pid=program.pid)
            outcome = program.close()
        stderr = outcome.stderr_tail
        if not os.path.exists(out) or os.path.getsize(out) == 0:
            low = stderr.lower()
            if "no module named memray" in low or "no module named 'memray'" in low:
                raise ToolMissing(f"memray is not importable by {cmd[0]}",
                                  f"install memray for that interpreter ({cmd[0]} -m pip install memray)")
            raise TargetExited(f"{outcome.describe(' '.join(target.command))}, before memray captured anything",
                               _last_lines(stderr) if stderr.strip() else None)
        profile = read_capture(out, source=f"memray capture of {target.describe()}")
        failed = failure(outcome, " ".join(target.command))
        if failed:
            notes.append(failed)
        annotate(profile, target, opts, started_wall, program.pid, interrupted, False, notes)
        profile.recording.exit_code = outcome.returncode
        profile.recording.program = outcome.to_json()
        profile.recording.python = pyver
        return HeapResult(profile=profile, interrupted=interrupted, target_exited=False, notes=notes,
                          program=outcome)
    finally:
        shutil.rmtree(wd, ignore_errors=True)


def _prepare(while_running) -> None:
    """While the command runs: import memray's reader, then whatever the caller prepares."""
    _memray()
    if while_running is not None:
        while_running()


def _last_lines(text: str, n: int = 2) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip() and not ln.startswith("Traceback")
             and not ln.startswith("  ")]
    return " / ".join(lines[-n:])[:400] or "no output from memray"


def annotate(profile: Profile, target: Target, opts: MemrayOptions, started: float, pid: int | None,
              interrupted: bool, exited: bool, notes: list[str]) -> None:
    rec = profile.recording
    if rec.heap is not None and not rec.heap.capture_complete:
        notes.append(incomplete_note(rec.heap))
    rec.target = target.describe()
    rec.pid = pid if pid is not None else rec.pid
    rec.launched = target.launched
    rec.attached = target.pid is not None
    attached = bool(pid and target.pid is not None)
    rec.cmdline, redacted = shown_cmdline(pid if attached else None, None if attached else list(target.command))
    rec.redacted = rec.redacted or redacted
    rec.python = (python_version(pid) if pid and target.pid is not None else None) or rec.python
    rec.options = {"duration": opts.duration, "native": opts.native,
                   "trace_python_allocators": opts.trace_python_allocators}
    rec.interrupted = interrupted
    rec.target_exited = exited
    rec.notes = list(notes)
    # a capture perfkit made cannot start before perfkit began it, nor span longer than
    # perfkit ran it: an interrupted attach once read back 28,684 s for a 1 s capture
    if rec.start is None or rec.start < started - 1.0:
        rec.start = started
    observed = max(0.0, time.time() - started)
    if rec.duration_s is None or rec.duration_s > observed + 1.0:
        rec.duration_s = round(observed, 3)
