"""memray attach: track the heap of a live pid (gdb on Python < 3.14, sys.remote_exec on 3.14+).

Attach never leaves tracking on in the target:
  * tracking is started with ``--duration`` so the target stops it on its own timer
    even if perfkit dies;
  * Ctrl-C / SIGTERM / SIGHUP in perfkit, or a capture that does not finish in time,
    runs ``memray detach``;
  * memray's payload registers an atexit hook, so a target that exits while tracked
    still finishes the file; a target killed outright leaves a truncated capture,
    which is read for what it holds;
  * memray attach (and its gdb) run under the child supervisor with a deadline: if it
    has to be stopped, gdb gets SIGTERM first (it detaches and removes its breakpoints)
    and a target left stopped by a killed debugger is woken (``wake``) — one that was
    stopped before perfkit came is refused up front and never resumed.

memray attach's own control channel is a TCP socket on 127.0.0.1 (an ephemeral port
memray attach listens on while the payload connects back, a few seconds at most).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import signal
import sys
import tempfile
import time

from perfkit.errors import (
    InputFormatError,
    NotPython,
    PermissionDenied,
    TargetError,
    TargetExited,
    ToolError,
    ToolMissing,
    UsageError,
)
from perfkit.formats.memray_capture import INSTALL_HINT, capture_complete, memray_version, read_capture
from perfkit.model import HeapFacts, Profile
from perfkit.procs import proc, supervisor
from perfkit.procs.signals import StopRequest
from perfkit.target import PTRACE_HINT, Target, check_pid, doctor_hint, python_version
from perfkit.tools.memray import HeapResult, MemrayOptions, annotate, memray_cmd, tick, tool_env, workdir

GDB_HINT = ("install gdb (apt-get install gdb · dnf install gdb · apk add gdb), "
            "or launch the program under perfkit instead: perfkit heap -- python app.py")
TARGET_MEMRAY_HINT = ("memray attach runs memray inside the target: install memray into the target's "
                      "environment (same version as perfkit's, {version}), or launch it under perfkit: "
                      "perfkit heap -- python app.py")
ATTACH_TIMEOUT = 60.0  # memray attach: gdb start + injection + memray's own 10 s connect wait
DETACH_TIMEOUT = 60.0
FINISH_GRACE = 20.0  # seconds after the deadline for the target to finish the capture file


def capture_attach(target: Target, opts: MemrayOptions, on_tick) -> HeapResult:
    pid = int(target.pid)  # type: ignore[arg-type]
    check_pid(pid)
    method = _attach_method(pid)
    duration = 10.0 if opts.duration is None else float(opts.duration)
    if duration <= 0:
        raise UsageError("--duration must be positive")
    whole = max(1, math.ceil(duration))  # memray attach takes whole seconds
    lock = _PidLock(pid)  # memray tracks a process once at a time: a second attach would end the first
    wd = workdir(pid)
    out = os.path.join(wd, "capture.bin")
    interrupted = False
    exited = False
    notes: list[str] = []
    started_wall = time.time()
    try:
        with lock, StopRequest() as stop:
            tick(on_tick, phase="attaching", elapsed=0.0, duration=duration, pid=pid)
            _attach(pid, out, opts, whole, method)
            start = time.monotonic()
            deadline = start + whole
            detached = False
            while True:
                now = time.monotonic()
                if not proc.alive(pid):
                    exited = True
                    notes.append("target exited during the capture")
                    time.sleep(0.2)
                    break
                if stop.signal is not None and not detached:
                    interrupted = True
                    notes.append("interrupted: tracking stopped early (memray detach); partial capture")
                    tick(on_tick, phase="stopping", elapsed=now - start, duration=duration, pid=pid)
                    _detach(pid, method, quiet=True)
                    detached = True
                if now >= deadline or detached:
                    if capture_complete(out):
                        break
                    if now - deadline > FINISH_GRACE and not detached:
                        notes.append("tracking did not stop on its own timer; perfkit detached it")
                        _detach(pid, method, quiet=True)
                        detached = True
                    elif detached and now - max(deadline, start) > FINISH_GRACE * 2:
                        notes.append("the capture file was not finished in time; reading what is there")
                        break
                    tick(on_tick, phase="finishing", elapsed=min(now - start, duration), duration=duration, pid=pid)
                    time.sleep(0.25)
                    continue
                tick(on_tick, phase="tracking", elapsed=now - start, duration=duration, pid=pid)
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
        annotate(profile, target, opts, started_wall, pid, interrupted, exited, notes)
        return HeapResult(profile=profile, interrupted=interrupted, target_exited=exited, notes=notes)
    finally:
        shutil.rmtree(wd, ignore_errors=True)


_OVERHEAD_LIMIT = 256 << 10


def drop_attach_overhead(profile: Profile) -> Profile:
    """Remove memray attach's own allocations from an attach capture.

    ``memray attach`` runs its payload in a thread of its own (memray's first thread,
    ``main_thread_id``, since the tracker starts there) and starts a timer thread; both
    allocate a little (thread objects, stacks) that would otherwise show up as "still
    alive".  The injector thread runs no user code.  A timer-like thread (named
    ``Thread-N``) is recognised by allocating only from ``threading.py``, native code or
    with no Python frame at all, and only a little; anything bigger is left alone.
    What was removed is kept in ``recording.heap.attach_overhead``.
    """
    from perfkit.model import rebuild

    heap = profile.recording.heap
    main_tid = heap.memray_main_thread_id if heap else None
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
    rec = profile.recording.copy()
    rec.heap = rec.heap or HeapFacts()
    totals = dict(rec.heap.totals)
    for key, v in zip(("alloc_bytes", "alloc_count", "inuse_bytes", "inuse_count"), gone):
        if key in totals:
            totals[key] -= v
    rec.heap.totals = totals
    rec.heap.attach_overhead = {"threads": sorted(t for t in drop if t is not None), "alloc_bytes": gone[0],
                               "alloc_count": gone[1], "inuse_bytes": gone[2], "inuse_count": gone[3]}
    rec.threads = len(per_tid) - len(drop)
    return rebuild(profile, kept, recording=rec)


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
                          f"(Python {ver or '< 3.14'})", doctor_hint(GDB_HINT, pid))
    return "gdb"


def _run_tool(cmd: list[str], timeout: float, pid: int, what: str) -> supervisor.Outcome:
    """Run memray attach/detach under the supervisor with a deadline.

    On timeout (or when perfkit dies) gdb gets SIGINT, then SIGTERM — it detaches and
    takes its breakpoints out — before SIGKILL; a target it left stopped is woken.
    """
    try:
        res = supervisor.run(cmd, timeout=timeout, env=tool_env(), stderr_to_stdout=True, wake=pid,
                             stop_steps=((signal.SIGINT, 5.0), (signal.SIGTERM, 5.0)))
    except supervisor.SpawnError as exc:
        raise ToolError(f"cannot run memray: {exc.strerror}", INSTALL_HINT) from None
    if res.stopped_by == "timeout":
        raise ToolError(f"memray {what} of pid {pid} timed out after {timeout:.0f} s; the target was left running",
                        "the process may be stuck in a system call, or gdb is slow to load symbols; retry")
    return res


def _attach(pid: int, out: str, opts: MemrayOptions, whole: int, method: str) -> None:
    cmd = memray_cmd("attach", "--method", method, "-o", out, "--no-compress", "--duration", str(whole))
    if opts.native:
        cmd.append("--native")
    if opts.trace_python_allocators:
        cmd.append("--trace-python-allocators")
    cmd.append(str(pid))
    res = _run_tool(cmd, ATTACH_TIMEOUT, pid, "attach")
    if res.returncode != 0:
        _raise_attach_error(res.stdout.decode("utf-8", "replace"), pid)


def _detach(pid: int, method: str, *, quiet: bool = False) -> bool:
    """Stop tracking in ``pid``; True if it was still on.  Never raises when ``quiet``."""
    try:
        res = _run_tool(memray_cmd("detach", "--method", method, str(pid)), DETACH_TIMEOUT, pid, "detach")
    except ToolError:
        if quiet:
            return False
        raise
    if res.returncode == 0:
        return True
    text = res.stdout.decode("utf-8", "replace")
    if "no previous" in text or quiet:
        return False
    raise ToolError(f"memray detach failed for pid {pid}: {_last_lines(text)}")


def _last_lines(text: str, n: int = 2) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip() and not ln.startswith("Traceback")
             and not ln.startswith("  ")]
    return " / ".join(lines[-n:])[:400] or "no output from memray"


def _raise_attach_error(output: str, pid: int) -> None:
    low = output.lower()
    if "no module named 'memray'" in low or "no module named memray" in low or "modulenotfounderror" in low:
        raise ToolMissing(f"memray is not importable in pid {pid}'s Python environment",
                          doctor_hint(TARGET_MEMRAY_HINT.format(version=memray_version()), pid))
    remote = re.search(r"Failed to start tracking in remote process: (.*)", output)
    if remote and "no module named" not in low:
        raise ToolError(f"memray could not start tracking inside pid {pid}: {remote.group(1).strip()[:300]}",
                        "the target's user must be able to import memray (and read its install) and write to "
                        "$TMPDIR; running the target with its own HOME/TMPDIR usually fixes this")
    if "does not exist" in low or not proc.alive(pid):
        raise TargetExited(f"pid {pid} exited before memray could attach")
    if "ptrace" in low or "owned by a different user" in low or "permission to trace" in low:
        raise PermissionDenied(f"permission denied attaching to pid {pid}",
                               doctor_hint(PTRACE_HINT.replace("perfkit cpu", "perfkit heap"), pid))
    if "python 3.7 or newer" in low:
        raise NotPython(f"pid {pid} does not look like a Python 3.7+ process to memray")
    if "cannot find a supported" in low:
        raise ToolMissing("gdb not found: memray attach needs gdb", GDB_HINT)
    if "couldn't open the memray shared library" in low:
        raise ToolError(f"pid {pid} cannot load memray's library (owned by another user?)",
                        "run perfkit as the target's user, or install memray where the target can read it")
    raise ToolError(f"memray attach to pid {pid} failed: {_last_lines(output)}",
                    "rerun with --debug; check that the target is a CPython process you may trace")
