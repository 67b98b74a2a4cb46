"""The memray collector: the only code that runs memray.

``capture(target, opts)`` tracks heap allocations of a live pid (``memray attach``,
gdb-based on Python < 3.14) or of a launched command (``memray run``), then reads the
capture through memray's Python API (``memray.FileReader``) into a ``Profile`` with
four value types in pprof's naming: alloc_space / alloc_objects (everything allocated
while tracking) and inuse_space / inuse_objects (still alive when tracking stopped).
memray's memory-over-time records become ``profile.series`` (heap and RSS).

Metadata keys: kind="heap", tool="memray", tool_version, target, pid, launched, cmdline,
python, start (epoch s), duration_s (the tracked window), peak_heap_bytes,
peak_rss_bytes, start/end_rss_bytes, end_heap_bytes, totals {alloc_bytes, alloc_count,
inuse_bytes, inuse_count}, peak_top (sites alive at the peak), capture_complete,
interrupted, target_exited, notes, options; attach captures also attach_overhead.
Series: "heap_bytes" and "rss_bytes", ``[[t_seconds_since_start, bytes], ...]``.

Attach never leaves tracking on in the target:
  * tracking is started with ``--duration`` so the target stops it on its own timer
    even if perfkit dies;
  * Ctrl-C / SIGTERM in perfkit, or a capture that does not finish in time, runs
    ``memray detach``;
  * memray's payload registers an atexit hook, so a target that exits while tracked
    still finishes the file; a target killed outright leaves a truncated capture,
    which is read for what it holds;
  * the attach subprocess (and its gdb) runs in its own session with a timeout; if it
    has to be killed the target is sent SIGCONT so it is never left stopped.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from perfkit.errors import (
    InputFormatError,
    NoSuchProcess,
    NotPython,
    PermissionDenied,
    TargetError,
    TargetExited,
    ToolError,
    ToolMissing,
    UsageError,
)
from perfkit.procs.signals import StopRequest
from perfkit.model import ALLOC_OBJECTS, ALLOC_SPACE, INUSE_OBJECTS, INUSE_SPACE, Frame, Labels, Profile, ProfileBuilder
from perfkit.target import PTRACE_HINT, Target, check_pid, cmdline, python_version

SAMPLE_TYPES = [ALLOC_SPACE, ALLOC_OBJECTS, INUSE_SPACE, INUSE_OBJECTS]
INSTALL_HINT = "install it with: pip install memray"
GDB_HINT = ("install gdb (apt-get install gdb · dnf install gdb · apk add gdb), "
            "or launch the program under perfkit instead: perfkit heap -- python app.py")
TARGET_MEMRAY_HINT = ("memray attach runs memray inside the target: install memray into the target's "
                      "environment (same version as perfkit's, {version}), or launch it under perfkit: "
                      "perfkit heap -- python app.py")
NO_STACK = Frame("[no Python frame]")

_MEMRAY_PKG = "/memray/"
_RUNPY_FILES = ("<frozen runpy>", "/runpy.py")


def _strip_launcher(frames: list[Frame]) -> list[Frame]:
    """Drop memray's own launcher frames (``memray run`` → runpy) from the root of a stack.

    A launched program's stacks start in memray/commands/run.py and runpy; they are
    perfkit's plumbing, not the user's code, and would sit under every flame graph.
    """
    i = 0
    while i < len(frames) and _MEMRAY_PKG in frames[i].file:
        i += 1
    if i == 0:
        return frames
    while i < len(frames) and frames[i].file.endswith(_RUNPY_FILES):
        i += 1
    return frames[i:]

ATTACH_TIMEOUT = 60.0  # memray attach: gdb start + injection + memray's own 10 s connect wait
DETACH_TIMEOUT = 60.0
FINISH_GRACE = 20.0  # seconds after the deadline for the target to finish the capture file
STOP_GRACE = 20.0  # launched command: seconds after SIGINT before SIGTERM / SIGKILL
MAX_SERIES_POINTS = 4000

_DEALLOCATORS = {1, 5, 15}  # PYMALLOC_FREE, FREE, MUNMAP (memray.AllocatorType)


@dataclass
class MemrayOptions:
    duration: float | None = None  # None: attach 10 s; launched: until the command exits
    native: bool = False
    trace_python_allocators: bool = False


@dataclass
class HeapResult:
    profile: Profile
    interrupted: bool = False  # stopped by Ctrl-C / SIGTERM
    target_exited: bool = False  # an attached target went away during the capture
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- tools

def _memray():
    try:
        import memray
    except ImportError:
        raise ToolMissing("memray is not installed in perfkit's environment", INSTALL_HINT) from None
    return memray


def memray_version() -> str:
    try:
        from memray._version import __version__

        return __version__
    except Exception:  # pragma: no cover - depends on the install
        return "unknown"


def _memray_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "memray", *args]


def _tool_env() -> dict:
    env = dict(os.environ)
    env["PYTHONWARNINGS"] = "ignore"
    return env


def _rss(pid: int | None) -> int | None:
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        state = data[data.rfind(b")") + 2:data.rfind(b")") + 3]
        return state not in (b"Z", b"X")
    except OSError:
        return False


def _workdir(owner_pid: int | None) -> str:
    """A private directory for the capture; owned by the target's user when it writes there."""
    d = tempfile.mkdtemp(prefix="perfkit-heap-")
    os.chmod(d, 0o700)
    if owner_pid is not None and os.geteuid() == 0:
        try:
            st = os.stat(f"/proc/{owner_pid}")
            if st.st_uid != 0:
                os.chown(d, st.st_uid, st.st_gid)
        except OSError:
            pass
    return d


# --------------------------------------------------------------------------- capture

def capture(target: Target, opts: MemrayOptions, on_tick: Callable[[dict], None] | None = None) -> HeapResult:
    """Track ``target``'s heap with memray and return the profile (partial on interrupt/exit)."""
    _memray()
    if target.pid is not None:
        return _capture_attach(target, opts, on_tick)
    return _capture_launch(target, opts, on_tick)


def _tick(on_tick, **info) -> None:
    """Progress for the caller: phase, elapsed, duration, pid and the target's RSS."""
    if on_tick is not None:
        try:
            info["rss"] = _rss(info.get("pid"))
            on_tick(info)
        except Exception:  # a broken progress line must never break a capture
            pass


def _capture_attach(target: Target, opts: MemrayOptions, on_tick) -> HeapResult:
    pid = int(target.pid)
    check_pid(pid)
    method = _attach_method(pid)
    duration = 10.0 if opts.duration is None else float(opts.duration)
    if duration <= 0:
        raise UsageError("--duration must be positive")
    whole = max(1, math.ceil(duration))  # memray attach takes whole seconds
    lock = _PidLock(pid)  # memray tracks a process once at a time: a second attach would end the first
    workdir = _workdir(pid)
    out = os.path.join(workdir, "capture.bin")
    interrupted = False
    exited = False
    notes: list[str] = []
    started_wall = time.time()
    try:
        with lock, StopRequest() as stop:
            _tick(on_tick, phase="attaching", elapsed=0.0, duration=duration, pid=pid)
            _attach(pid, out, opts, whole, method)
            start = time.monotonic()
            deadline = start + whole
            detached = False
            while True:
                now = time.monotonic()
                if not _alive(pid):
                    exited = True
                    notes.append("target exited during the capture")
                    time.sleep(0.2)
                    break
                if stop.signal is not None and not detached:
                    interrupted = True
                    notes.append("interrupted: tracking stopped early (memray detach); partial capture")
                    _tick(on_tick, phase="stopping", elapsed=now - start, duration=duration, pid=pid)
                    _detach(pid, method, quiet=True)
                    detached = True
                if now >= deadline or detached:
                    if _capture_complete(out):
                        break
                    if now - deadline > FINISH_GRACE and not detached:
                        notes.append("tracking did not stop on its own timer; perfkit detached it")
                        _detach(pid, method, quiet=True)
                        detached = True
                    elif detached and now - max(deadline, start) > FINISH_GRACE * 2:
                        notes.append("the capture file was not finished in time; reading what is there")
                        break
                    _tick(on_tick, phase="finishing", elapsed=min(now - start, duration), duration=duration, pid=pid)
                    time.sleep(0.25)
                    continue
                _tick(on_tick, phase="tracking", elapsed=now - start, duration=duration, pid=pid)
                time.sleep(0.1)
        if not os.path.exists(out) or os.path.getsize(out) == 0:
            if exited:
                raise TargetExited(f"pid {pid} exited before memray captured anything")
            raise ToolError(f"memray wrote no capture for pid {pid}")
        try:
            profile = read_capture(out, source=f"memray capture of pid {pid}")
        except InputFormatError:
            if exited:
                raise TargetExited(f"pid {pid} exited before memray captured anything usable") from None
            raise
        profile = drop_attach_overhead(profile)
        _annotate(profile, target, opts, started_wall, pid, interrupted, exited, notes)
        return HeapResult(profile=profile, interrupted=interrupted, target_exited=exited, notes=notes)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


_OVERHEAD_LIMIT = 256 << 10


def drop_attach_overhead(profile: Profile) -> Profile:
    """Remove memray attach's own allocations from an attach capture.

    ``memray attach`` runs its payload in a thread of its own (memray's first thread,
    ``main_thread_id``, since the tracker starts there) and starts a timer thread; both
    allocate a little (thread objects, stacks) that would otherwise show up as "still
    alive".  The injector thread runs no user code.  A timer-like thread (named
    ``Thread-N``) is recognised by allocating only from ``threading.py``, native code or
    with no Python frame at all, and only a little; anything bigger is left alone.
    What was removed is kept in ``metadata["attach_overhead"]``.
    """
    from perfkit.model import rebuild

    main_tid = profile.metadata.get("memray_main_thread_id")
    per_tid: dict[int | None, list] = {}
    for smp in profile.samples:
        per_tid.setdefault(smp.labels.tid, []).append(smp)

    def internal_only(samples) -> bool:
        total = sum(x.values[0] for x in samples)
        if total > _OVERHEAD_LIMIT:
            return False
        for x in samples:
            for i in x.stack:
                f = profile.frames[i]
                if f.file.endswith(".py") and not f.file.endswith("/threading.py"):
                    return False  # user (or library) Python code: not memray's
        return True

    drop = {tid for tid, samples in per_tid.items()
            if (tid == main_tid and internal_only(samples)) or
            (tid != main_tid and samples and internal_only(samples) and _thread_named_like_timer(samples))}
    if not drop:
        return profile
    kept, gone = [], [0, 0, 0, 0]
    for smp in profile.samples:
        if smp.labels.tid in drop:
            gone = [a + b for a, b in zip(gone, smp.values)]
        else:
            kept.append((profile.stack_frames(smp), smp.values, smp.labels))
    meta = dict(profile.metadata)
    totals = dict(meta.get("totals") or {})
    for key, v in zip(("alloc_bytes", "alloc_count", "inuse_bytes", "inuse_count"), gone):
        if key in totals:
            totals[key] -= v
    meta["totals"] = totals
    meta["attach_overhead"] = {"threads": sorted(t for t in drop if t is not None), "alloc_bytes": gone[0],
                               "alloc_count": gone[1], "inuse_bytes": gone[2], "inuse_count": gone[3]}
    meta["threads"] = len(per_tid) - len(drop)
    return rebuild(profile, kept, metadata=meta)


def _thread_named_like_timer(samples) -> bool:
    names = {x.labels.thread for x in samples}
    return all(n is None or re.fullmatch(r"Thread-\d+( \(.*\))?", n) for n in names)


class _PidLock:
    """One perfkit memray capture per target pid on this host (an flock in $TMPDIR)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.path = os.path.join(tempfile.gettempdir(), f"perfkit-memray-{pid}.lock")
        self.fd = -1

    def __enter__(self):
        import fcntl

        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError:
            return self  # cannot lock (odd $TMPDIR): go on without the guard
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            self.fd = -1
            raise TargetError(f"pid {self.pid} is already being tracked by another perfkit memray capture",
                              "memray tracks a process once at a time: wait for the other run to finish") from None
        return self

    def __exit__(self, *exc) -> None:
        if self.fd >= 0:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            os.close(self.fd)
            self.fd = -1


def _attach_method(pid: int) -> str:
    ver = python_version(pid)
    try:
        major, minor = (int(x) for x in (ver or "3.0").split(".")[:2])
    except ValueError:
        major, minor = 3, 0
    if (major, minor) >= (3, 14) and sys.version_info >= (3, 14):
        return "sys.remote_exec"
    if shutil.which("gdb") is None:
        raise ToolMissing(f"gdb not found: memray attach needs gdb to attach to pid {pid} "
                          f"(Python {ver or '< 3.14'})", GDB_HINT)
    return "gdb"


def _run_tool(cmd: list[str], timeout: float, pid: int, what: str) -> subprocess.CompletedProcess:
    """Run memray attach/detach in its own session; on timeout kill it (and gdb) and wake the target."""
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env=_tool_env(), start_new_session=True)
    except OSError as exc:
        raise ToolError(f"cannot run memray: {exc.strerror}", INSTALL_HINT) from None
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        _wake(pid)
        raise ToolError(f"memray {what} of pid {pid} timed out after {timeout:.0f} s; the target was left running",
                        "the process may be stuck in a system call, or gdb is slow to load symbols; retry") from None
    _wake(pid)
    return subprocess.CompletedProcess(cmd, proc.returncode, out.decode("utf-8", "replace"), "")


def _wake(pid: int) -> None:
    """A target left in ptrace/group stop by a killed debugger gets going again."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        state = data[data.rfind(b")") + 2:data.rfind(b")") + 3]
        if state in (b"T", b"t"):
            os.kill(pid, signal.SIGCONT)
    except OSError:
        pass


def _attach(pid: int, out: str, opts: MemrayOptions, whole: int, method: str) -> None:
    cmd = _memray_cmd("attach", "--method", method, "-o", out, "--no-compress", "--duration", str(whole))
    if opts.native:
        cmd.append("--native")
    if opts.trace_python_allocators:
        cmd.append("--trace-python-allocators")
    cmd.append(str(pid))
    res = _run_tool(cmd, ATTACH_TIMEOUT, pid, "attach")
    if res.returncode != 0:
        _raise_attach_error(res.stdout, pid)


def _detach(pid: int, method: str, *, quiet: bool = False) -> bool:
    """Stop tracking in ``pid``; True if it was still on.  Never raises when ``quiet``."""
    try:
        res = _run_tool(_memray_cmd("detach", "--method", method, str(pid)), DETACH_TIMEOUT, pid, "detach")
    except ToolError:
        if quiet:
            return False
        raise
    if res.returncode == 0:
        return True
    if "no previous" in res.stdout or quiet:
        return False
    raise ToolError(f"memray detach failed for pid {pid}: {_last_lines(res.stdout)}")


def _last_lines(text: str, n: int = 2) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip() and not ln.startswith("Traceback")
             and not ln.startswith("  ")]
    return " / ".join(lines[-n:])[:400] or "no output from memray"


def _raise_attach_error(output: str, pid: int) -> None:
    low = output.lower()
    if "no module named 'memray'" in low or "no module named memray" in low or "modulenotfounderror" in low:
        raise ToolMissing(f"memray is not importable in pid {pid}'s Python environment",
                          TARGET_MEMRAY_HINT.format(version=memray_version()))
    remote = re.search(r"Failed to start tracking in remote process: (.*)", output)
    if remote and "no module named" not in low:
        raise ToolError(f"memray could not start tracking inside pid {pid}: {remote.group(1).strip()[:300]}",
                        "the target's user must be able to import memray (and read its install) and write to "
                        "$TMPDIR; running the target with its own HOME/TMPDIR usually fixes this")
    if "does not exist" in low or not _alive(pid):
        raise TargetExited(f"pid {pid} exited before memray could attach")
    if "ptrace" in low or "owned by a different user" in low or "permission to trace" in low:
        raise PermissionDenied(f"permission denied attaching to pid {pid}",
                               PTRACE_HINT.replace("perfkit cpu", "perfkit heap"))
    if "python 3.7 or newer" in low:
        raise NotPython(f"pid {pid} does not look like a Python 3.7+ process to memray")
    if "cannot find a supported" in low:
        raise ToolMissing("gdb not found: memray attach needs gdb", GDB_HINT)
    if "couldn't open the memray shared library" in low:
        raise ToolError(f"pid {pid} cannot load memray's library (owned by another user?)",
                        "run perfkit as the target's user, or install memray where the target can read it")
    raise ToolError(f"memray attach to pid {pid} failed: {_last_lines(output)}",
                    "rerun with --debug; check that the target is a CPython process you may trace")


def _capture_complete(path: str) -> bool:
    """True once the tracker in the target has stopped and finished the file's header."""
    try:
        if os.path.getsize(path) == 0:
            return False
        memray = _memray()
        memray.set_log_level(100)  # a file still being written may end mid-record
        with memray.FileReader(path) as r:
            return _finished(r.metadata, list(r.get_memory_snapshots()))
    except Exception:
        return False


def _finished(meta, snaps) -> bool:
    """The tracker stopped and wrote its final header: the end time covers every snapshot.

    (An unfinished file's header carries an end time within a millisecond or so of its
    start, while its memory snapshots run on.)
    """
    start, end = meta.start_time.timestamp(), meta.end_time.timestamp()
    if end <= start:
        return False
    return not snaps or end >= snaps[-1].time / 1000.0 - 0.1


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
    """``python [opts] prog args`` → ``python [opts] -m memray run ... prog args``."""
    interp, prog = split_command(command)
    mem = ["-m", "memray", "run", "-q", "-f", "--no-compress", "-o", out]
    if opts.native:
        mem.append("--native")
    if opts.trace_python_allocators:
        mem.append("--trace-python-allocators")
    return [*interp, *mem, *prog]


def _check_memray_importable(interp: list[str]) -> None:
    """The launched program's interpreter (with its options) must be able to import memray."""
    probe = "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('memray') else 3)"
    try:
        res = subprocess.run([*interp, "-c", probe], stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    except subprocess.TimeoutExpired:
        return  # let the real launch report whatever is wrong
    except OSError as exc:
        raise NoSuchProcess(f"cannot launch {interp[0]!r}: {exc.strerror}") from None
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


def _reset_sigint() -> None:  # pragma: no cover - runs in the child
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _capture_launch(target: Target, opts: MemrayOptions, on_tick) -> HeapResult:
    _check_memray_importable(split_command(target.command)[0])
    workdir = _workdir(None)
    out = os.path.join(workdir, "capture.bin")
    cmd = run_argv(target.command, out, opts)
    started_wall = time.time()
    interrupted = False
    notes: list[str] = []
    try:
        with StopRequest() as stop:
            try:
                proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=_stderr_fd(), stderr=subprocess.PIPE,
                                        start_new_session=True, preexec_fn=_reset_sigint)
            except OSError as exc:
                raise NoSuchProcess(f"cannot launch {target.command[0]!r}: {exc.strerror}") from None
            relay = _StderrRelay(proc.stderr)
            start = time.monotonic()
            deadline = start + opts.duration if opts.duration is not None else None
            asked = None
            pyver = None
            while proc.poll() is None:
                now = time.monotonic()
                if pyver is None:
                    pyver = python_version(proc.pid)
                if asked is None and (stop.signal is not None or (deadline is not None and now >= deadline)):
                    interrupted = stop.signal is not None
                    if interrupted:
                        notes.append("interrupted: the command got SIGINT; partial capture")
                    else:
                        notes.append(f"stopped the command after {opts.duration:g} s (SIGINT)")
                    asked = now
                    relay.mute = True  # the program's KeyboardInterrupt traceback is our doing: keep it quiet
                    _send(proc, signal.SIGINT)
                elif asked is not None and now - asked > STOP_GRACE:
                    _send(proc, signal.SIGTERM)
                    try:
                        proc.wait(5)
                    except subprocess.TimeoutExpired:
                        _send(proc, signal.SIGKILL)
                    notes.append("the command did not stop on SIGINT; it was terminated")
                    break
                _tick(on_tick, phase="tracking", elapsed=now - start, duration=opts.duration, pid=proc.pid)
                time.sleep(0.1)
            rc = proc.wait()
            relay.join(5.0)
        stderr = "\n".join(relay.lines)
        if not os.path.exists(out) or os.path.getsize(out) == 0:
            low = stderr.lower()
            if "no module named memray" in low or "no module named 'memray'" in low:
                raise ToolMissing(f"memray is not importable by {cmd[0]}",
                                  f"install memray for that interpreter ({cmd[0]} -m pip install memray)")
            raise TargetExited(f"{target.describe()} exited (code {rc}) before memray captured anything",
                               _last_lines(stderr) if stderr.strip() else None)
        profile = read_capture(out, source=f"memray capture of {target.describe()}")
        if rc not in (0, None) and not interrupted and asked is None:
            notes.append(f"the command exited with code {rc}")
        _annotate(profile, target, opts, started_wall, proc.pid, interrupted, False, notes)
        profile.metadata["exit_code"] = rc
        profile.metadata["python"] = pyver
        return HeapResult(profile=profile, interrupted=interrupted, target_exited=False, notes=notes)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _stderr_fd():
    """The launched program's stdout goes to perfkit's stderr: stdout stays clean for --json."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return subprocess.DEVNULL


def _send(proc: subprocess.Popen, sig: int) -> None:
    try:
        proc.send_signal(sig)
    except ProcessLookupError:
        pass


class _StderrRelay(threading.Thread):
    """Forwards the launched program's stderr and keeps its tail for error messages."""

    def __init__(self, stream) -> None:
        super().__init__(daemon=True, name="perfkit-memray-relay")
        self.stream = stream
        self.lines: list[str] = []
        self.mute = False
        self.start()

    def run(self) -> None:
        for raw in iter(self.stream.readline, b""):
            line = raw.decode("utf-8", "replace")
            self.lines.append(line.rstrip("\n"))
            del self.lines[:-50]
            if self.mute:
                continue
            try:
                sys.stderr.write(line)
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
        self.stream.close()


# --------------------------------------------------------------------------- reading

def read_capture(path: str | os.PathLike, *, source: str | None = None, peak_sites: int = 20) -> Profile:
    """A memray capture file as a heap ``Profile`` (raises InputFormatError if unreadable)."""
    memray = _memray()
    src = source or str(path)
    p = Path(path)
    if not p.exists():
        raise UsageError(f"no such file: {p}")
    if p.is_dir():
        raise UsageError(f"{p} is a directory, not a memray capture")
    with _MemrayLog(memray) as log:  # memray's C++ logger reports unreadable records on fd 2
        try:
            reader = memray.FileReader(str(p))
        except (OSError, ValueError, RuntimeError) as exc:
            raise InputFormatError(f"{src} is not a readable memray capture ({_first_line(exc)})",
                                   "expected a file written by memray run / memray attach (-o FILE.bin)") from None
        try:
            with reader:
                profile = _read(reader, src, peak_sites)
        except InputFormatError:
            raise
        except (OSError, ValueError, RuntimeError, MemoryError) as exc:
            raise InputFormatError(f"{src} is corrupt or truncated ({_first_line(exc)})") from None
    if log.errors:
        profile.metadata["capture_complete"] = False
        profile.metadata["reader_errors"] = log.errors[:5]
    return profile


class _MemrayLog:
    """Collects what memray's native logger writes to fd 2 while a capture is read."""

    def __init__(self, memray) -> None:
        self.memray = memray
        self.errors: list[str] = []
        self._saved = -1
        self._tmp = None

    def __enter__(self):
        try:
            sys.stderr.flush()
            self._tmp = tempfile.TemporaryFile()
            self._saved = os.dup(2)
            os.dup2(self._tmp.fileno(), 2)
            self.memray.set_log_level(40)
        except OSError:
            self._restore()
            self.memray.set_log_level(100)
        return self

    def _restore(self) -> None:
        if self._saved >= 0:
            os.dup2(self._saved, 2)
            os.close(self._saved)
            self._saved = -1

    def __exit__(self, *exc) -> None:
        self.memray.set_log_level(100)
        self._restore()
        if self._tmp is not None:
            self._tmp.seek(0)
            text = self._tmp.read(65536).decode("utf-8", "replace")
            self._tmp.close()
            self.errors = [ln.strip() for ln in text.splitlines() if "memray" in ln.lower() and ln.strip()]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _read(reader, src: str, peak_sites: int) -> Profile:
    meta = reader.metadata
    native = bool(meta.has_native_traces)
    pid = int(meta.pid) if meta.pid else None
    b = ProfileBuilder(SAMPLE_TYPES)
    labels_cache: dict[tuple[int, str], Labels] = {}
    stack_cache: dict[tuple, tuple[int, ...]] = {}

    def labels_of(rec) -> Labels:
        key = (rec.tid, rec.thread_name)
        lab = labels_cache.get(key)
        if lab is None:
            lab = labels_cache[key] = Labels(pid, int(rec.tid), rec.thread_name or None)
        return lab

    def stack_of(rec) -> tuple[int, ...]:
        key = (rec.stack_id, rec.native_stack_id, rec.native_segment_generation) if native else rec.stack_id
        ids = stack_cache.get(key)
        if ids is None:
            raw = rec.hybrid_stack_trace() if native else rec.stack_trace()
            frames = _strip_launcher([Frame(str(fn), str(fl), int(ln or 0)) for fn, fl, ln in reversed(raw)])
            ids = stack_cache[key] = tuple(b.frame_id(f) for f in frames or [NO_STACK])
        return ids

    # Everything allocated while tracking, aggregated per (stack, thread).
    acc: dict[tuple, list[int]] = {}
    first: dict[tuple, object] = {}
    alloc_bytes = alloc_count = 0
    records = 0
    for rec in reader.get_allocation_records():
        records += 1
        if rec.allocator in _DEALLOCATORS:
            continue
        key = ((rec.stack_id, rec.native_stack_id, rec.native_segment_generation) if native else rec.stack_id,
               rec.tid)
        size, n = rec.size, rec.n_allocations
        slot = acc.get(key)
        if slot is None:
            acc[key] = [size, n]
            first[key] = rec
        else:
            slot[0] += size
            slot[1] += n
        alloc_bytes += size
        alloc_count += n
    for key, (size, n) in acc.items():
        rec = first[key]
        b.add_ids(stack_of(rec), (size, n, 0, 0), labels_of(rec))
    del first, acc

    # Still alive when tracking stopped.
    inuse_bytes = inuse_count = 0
    for rec in reader.get_leaked_allocation_records(merge_threads=False):
        b.add_ids(stack_of(rec), (0, 0, rec.size, rec.n_allocations), labels_of(rec))
        inuse_bytes += rec.size
        inuse_count += rec.n_allocations

    # What was alive at the high-water mark.
    peak_acc: dict[tuple, list[int]] = {}
    for rec in reader.get_high_watermark_allocation_records(merge_threads=True):
        raw = rec.hybrid_stack_trace() if native else rec.stack_trace()
        leaf = raw[0] if raw else (NO_STACK.function, "", 0)
        k = (str(leaf[0]), str(leaf[1]), int(leaf[2] or 0))
        slot = peak_acc.setdefault(k, [0, 0])
        slot[0] += rec.size
        slot[1] += rec.n_allocations
    peak_top = sorted(peak_acc.items(), key=lambda kv: (-kv[1][0], kv[0]))[:peak_sites]

    start = meta.start_time.timestamp()
    end = meta.end_time.timestamp()
    snaps = list(reader.get_memory_snapshots())
    heap_series = _downsample([[round(s.time / 1000.0 - start, 3), int(s.heap)] for s in snaps])
    rss_series = _downsample([[round(s.time / 1000.0 - start, 3), int(s.rss)] for s in snaps])
    b.series = {"heap_bytes": heap_series, "rss_bytes": rss_series}
    profile = b.build()
    profile.metadata.update({
        "kind": "heap",
        "tool": "memray",
        "tool_version": memray_version(),
        "perfkit_version": _perfkit_version(),
        "source": src,
        "pid": pid,
        "memray_command_line": meta.command_line,
        "start": start,
        "duration_s": round(max(0.0, end - start), 3),
        "capture_complete": _finished(meta, snaps) and records >= int(meta.total_allocations),
        "records_read": records,
        "peak_heap_bytes": int(meta.peak_memory),
        "peak_rss_bytes": max((int(s.rss) for s in snaps), default=None),
        "end_heap_bytes": int(snaps[-1].heap) if snaps else None,
        "end_rss_bytes": int(snaps[-1].rss) if snaps else None,
        "start_rss_bytes": int(snaps[0].rss) if snaps else None,
        "totals": {"alloc_bytes": alloc_bytes, "alloc_count": alloc_count,
                   "inuse_bytes": inuse_bytes, "inuse_count": inuse_count},
        "memray_total_allocations": int(meta.total_allocations),
        "memray_main_thread_id": int(meta.main_thread_id),
        "python_allocator": meta.python_allocator,
        "native": native,
        "trace_python_allocators": bool(meta.trace_python_allocators),
        "peak_top": [{"function": f, "file": fl, "line": ln, "bytes": v[0], "count": v[1]}
                     for (f, fl, ln), v in peak_top],
        "threads": len({lab.tid for lab in labels_cache.values()}),
    })
    if not _finished(meta, snaps):
        profile.metadata["duration_s"] = round(max(0.0, (snaps[-1].time / 1000.0 - start) if snaps else 0.0), 3)
    return profile


def _downsample(points: list[list[float]]) -> list[list[float]]:
    """At most MAX_SERIES_POINTS points, keeping each bucket's maximum (peaks survive)."""
    if len(points) <= MAX_SERIES_POINTS:
        return points
    step = math.ceil(len(points) / MAX_SERIES_POINTS)
    return [max(points[i:i + step], key=lambda p: p[1]) for i in range(0, len(points), step)]


def _annotate(profile: Profile, target: Target, opts: MemrayOptions, started: float, pid: int | None,
              interrupted: bool, exited: bool, notes: list[str]) -> None:
    m = profile.metadata
    if not m.get("capture_complete"):
        notes.append(_incomplete_note(m))
    m.update({
        "target": target.describe(),
        "pid": pid if pid is not None else m.get("pid"),
        "launched": target.launched,
        "cmdline": cmdline(pid) if (pid and target.pid is not None) else list(target.command),
        "python": (python_version(pid) if pid and target.pid is not None else None) or m.get("python"),
        "options": {"duration": opts.duration, "native": opts.native,
                    "trace_python_allocators": opts.trace_python_allocators},
        "interrupted": interrupted,
        "target_exited": exited,
        "notes": list(notes),
    })
    m.setdefault("start", started)


def _incomplete_note(meta: dict) -> str:
    total = meta.get("memray_total_allocations") or 0
    read = meta.get("records_read") or 0
    if total > read:
        return f"the capture file is incomplete (truncated: {read:,} of {total:,} records); totals cover what was read"
    return "the capture file is incomplete (the tracker did not finish it); totals cover what was written"


def _perfkit_version() -> str:
    from perfkit import __version__

    return __version__
