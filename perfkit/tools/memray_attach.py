"""memray attach: track the heap of a live pid (gdb on Python < 3.14, sys.remote_exec on 3.14+).

How memray attaches with gdb (``memray/commands/_attach.gdb``): gdb stops the target,
queues ``Py_AddPendingCall(PyCallable_Check, NULL)`` (a no-op the main thread runs when
it next evaluates Python), sets breakpoints (``int3`` bytes) on malloc, calloc,
realloc, free, PyMem_*, PyErr_CheckSignals and PyCallable_Check, and lets the target
run.  The first thread to hit one has gdb delete the breakpoints, ``dlopen`` memray's
injector and start its client thread, which connects back to ``memray attach`` on a
loopback port and runs the tracking payload.  A target none of whose threads runs
(every thread blocked, e.g. a main thread in a long ``time.sleep``) never hits one.

What perfkit guarantees on top (see docs/safety.md):

* **blocked targets are detected in seconds**: once gdb has the target running under
  its breakpoints, perfkit watches every thread's run count (/proc/PID/task/*/schedstat);
  if none runs for ``BLOCKED_AFTER`` seconds (none runnable or in disk wait either: gdb's
  ``dlopen`` of memray's library may wait for the disk), gdb is stopped and the error says so and
  where the main thread sits (``TargetBlocked``, exit 3);
* **nothing stays armed**: gdb is only ever stopped with SIGINT (on which it removes its
  breakpoints and detaches; SIGTERM and SIGKILL leave the ``int3`` bytes, and the target
  dies of SIGTRAP at its next malloc), with the rest of memray's process tree frozen so
  ``memray attach`` cannot SIGKILL it mid-detach (``supervisor`` / ``guard``); after
  every gdb session the target's code pages are compared with their files and any stray
  breakpoint byte is written back (``procs.codecheck``).  The pending call is the one
  thing a failed attach leaves queued: a NULL check, run once; the next attach works;
* **tracking stops by itself**: memray runs with ``--duration``, so the target stops
  tracking on its own timer even if perfkit dies; Ctrl-C / SIGTERM / SIGHUP (or a
  capture that is not finished in time) runs ``memray detach``;
* **bounded**: ``heap -d N`` ends within N + ``TOTAL_SLACK`` seconds whatever the target
  does (blocks, exits, exec's into another program — noticed from /proc within half a
  second, the capture so far kept);
* **quiet in the target**: memray's payload prints "memray: Deactivating tracking …" on
  the target's stderr when its timer ends; perfkit runs ``memray attach`` with that one
  print taken out of the payload (``QUIET_ATTACH``), so the service's logs stay clean;
* **private files**: the capture file is created by perfkit, 0600, in a 0700 directory
  owned by the target's user (root can track another user's process).

memray attach's own control channel is a TCP socket on 127.0.0.1: ``memray attach``
listens on an ephemeral loopback port until the injected client connects back (a few
seconds at most, one connection), and closes it once the payload is sent.
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

from perfkit import redact
from perfkit.errors import (
    InputFormatError,
    Interrupted,
    NotPython,
    PermissionDenied,
    TargetBlocked,
    TargetError,
    TargetExited,
    TargetReplaced,
    ToolError,
    ToolMissing,
    UsageError,
)
from perfkit.formats.memray_capture import INSTALL_HINT, capture_complete, memray_version, read_capture
from perfkit.procs import codecheck, proc, supervisor
from perfkit.procs.signals import StopRequest
from perfkit.target import PTRACE_HINT, Target, check_pid, doctor_hint, python_version
from perfkit.tools import gdb_xstate
from perfkit.tools.memray import HeapResult, MemrayOptions, annotate, capture_file, tick, tool_env, workdir
from perfkit.tools.memray_overhead import drop_attach_overhead

GDB_HINT = ("install gdb (apt-get install gdb · dnf install gdb · apk add gdb), "
            "or launch the program under perfkit instead: perfkit heap -- python app.py")
TARGET_MEMRAY_HINT = ("memray attach runs memray inside the target: install memray into the target's "
                      "environment (same version as perfkit's, {version}), or launch it under perfkit: "
                      "perfkit heap -- python app.py")
BLOCKED_HINT = ("memray starts tracking when the target next runs Python code or allocates: retry while it is "
                "busy, or launch it under perfkit: perfkit heap -- python app.py")
ATTACH_BUDGET = 10.0  # gdb start + injection + payload (about 1-2 s; more on a loaded box)
DETACH_BUDGET = 8.0
BLOCKED_AFTER = 3.0  # gdb's breakpoints armed and no thread of the target ran for this long
FINISH_WAIT = 3.0  # after the deadline: for memray's own timer to finish the file, before detaching
TOTAL_SLACK = 15.0  # heap -d N ends within N + TOTAL_SLACK seconds
STOP_STEPS = ((signal.SIGINT, 5.0), (signal.SIGTERM, 3.0))  # gdb itself always gets SIGINT alone first
_CHECK_EVERY = 0.5  # seconds between checks that the target is still the same program
_MEMRAY_LIB = "/memray/_memray"

# memray attach with the payload's one print into the target's stderr taken out.  If a
# future memray words it differently, the pattern does not match and memray runs as is.
QUIET_ATTACH = r"""
import re, sys
try:
    import memray.commands.attach as _a
    _a.PAYLOAD = re.sub(r'print\(\s*"memray: Deactivating tracking:".*?file=sys\.stderr,?\s*\)', "pass",
                        _a.PAYLOAD, count=1, flags=re.S)
except Exception:
    pass
from memray.commands import main
sys.exit(main(sys.argv[1:]))
"""


def attach_cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", QUIET_ATTACH, *args]


def capture_attach(target: Target, opts: MemrayOptions, on_tick) -> HeapResult:
    pid = int(target.pid)  # type: ignore[arg-type]
    check_pid(pid)
    method = _attach_method(pid)
    duration = 10.0 if opts.duration is None else float(opts.duration)
    if duration <= 0:
        raise UsageError("--duration must be positive")
    whole = max(1, math.ceil(duration))  # memray attach takes whole seconds
    t0 = time.monotonic()
    hard_end = t0 + duration + TOTAL_SLACK - 1.5  # leave time to read the capture and render
    ident = proc.identity(pid)
    lock = _PidLock(pid)  # memray tracks a process once at a time: a second attach would end the first
    wd = workdir(pid)
    out = capture_file(wd, pid)
    interrupted = False
    exited = False
    notes: list[str] = []
    started_wall = time.time()
    sentinel = None
    settled = False
    try:
        with lock, StopRequest() as stop:
            tick(on_tick, phase="attaching", elapsed=0.0, duration=duration, pid=pid)
            gdb = _Gdb(pid, notes, ident, wd, method)
            _attach(gdb, out, opts, whole, method, stop, budget=min(ATTACH_BUDGET, hard_end - time.monotonic() - whole))
            sentinel = _sentinel(pid, method, gdb.env)
            start = time.monotonic()
            deadline = start + whole
            detached = False
            next_check = start
            while True:
                now = time.monotonic()
                if now >= next_check:
                    next_check = now + _CHECK_EVERY
                    why = _gone(ident, pid)
                    if why:
                        exited = True
                        notes.append(_gone_note(why, ident, pid, now - start))
                        time.sleep(0.2)
                        break
                if stop.signal is not None and not detached:
                    interrupted = True
                    notes.append("interrupted: tracking stopped early (memray detach); partial capture")
                    tick(on_tick, phase="stopping", elapsed=now - start, duration=duration, pid=pid)
                    detached = True
                    if not _detach(gdb, method, budget=min(DETACH_BUDGET, hard_end - now)):
                        notes.append(f"memray detach could not reach pid {pid}: tracking ends on memray's own "
                                     f"timer, {max(0.0, deadline - now):.0f} s from now")
                        break
                if now >= deadline or detached:
                    if capture_complete(out):
                        break
                    if now >= hard_end:
                        notes.append("the capture file was not finished in time; reading what is there")
                        break
                    if not detached and now - deadline > FINISH_WAIT:
                        notes.append("tracking did not stop on its own timer; perfkit detached it")
                        detached = True
                        _detach(gdb, method, budget=min(DETACH_BUDGET, hard_end - now))
                        continue
                    tick(on_tick, phase="finishing", elapsed=min(now - start, duration), duration=duration, pid=pid)
                    time.sleep(0.25)
                    continue
                tick(on_tick, phase="tracking", elapsed=now - start, duration=duration, pid=pid)
                time.sleep(0.1)
            settled = True
        if not os.path.exists(out) or os.path.getsize(out) == 0:
            if exited:
                raise _gone_error(ident, pid, "before memray captured anything")
            raise ToolError(f"memray wrote no capture for pid {pid}")
        try:
            profile = read_capture(out, source=f"memray capture of pid {pid}")
        except InputFormatError:
            if exited:
                raise _gone_error(ident, pid, "before memray captured anything usable") from None
            raise
        profile = drop_attach_overhead(profile)
        annotate(profile, target, opts, started_wall, pid, interrupted, exited, notes)
        return HeapResult(profile=profile, interrupted=interrupted, target_exited=exited, notes=notes)
    finally:
        if sentinel is not None:
            if settled:
                sentinel.disarm()  # tracking is over (finished, detached, or the target went away)
                sentinel.close()
            else:
                sentinel.kill()  # an error mid-tracking: the guard runs memray detach
        shutil.rmtree(wd, ignore_errors=True)


def scratch_env(scratch: str | None) -> dict:
    """memray's environment, its TMPDIR inside perfkit's private scratch directory (whatever
    memray attach creates there goes away with it, even if memray is killed)."""
    env = tool_env()
    if scratch:
        env["TMPDIR"] = scratch
    return env


def _sentinel(pid: int, method: str, env: dict) -> supervisor.Child | None:
    """A placeholder child whose guard runs ``memray detach`` if perfkit dies while memray tracks
    ``pid`` (SIGKILL, OOM): tracking then stops within seconds, not at the end of ``--duration``."""
    try:
        return supervisor.spawn([sys.executable, "-I", "-S", "-c", "import signal; signal.pause()"],
                                env=env, stdout=supervisor.DEVNULL, stderr=supervisor.DEVNULL,
                                on_abandon=attach_cmd("detach", "--method", method, str(pid)), abandon_timeout=15.0)
    except supervisor.SpawnError:
        return None


def _gone(ident: proc.Identity | None, pid: int) -> str | None:
    """"exited", "exec", "reused" when the target stopped being the program memray tracks."""
    if ident is None:
        return "exited" if not proc.alive(pid) else None
    why = proc.replaced(ident, pid)
    if why is None and proc.maps_mention(pid, _MEMRAY_LIB) is False:
        why = "exec"  # same command line, new image (a re-exec): memray's library is gone with the old one
    return why


def _gone_note(why: str, ident: proc.Identity | None, pid: int, t: float) -> str:
    if why == "exec":
        now = proc.identity(pid)
        into = redact.shown(now.describe()) if now else "another program"
        return (f"pid {pid} exec'd into {into!r} {t:.1f} s into the capture: memray's tracking ended with the "
                "old program; this is what was captured until then")
    if why == "reused":
        return f"pid {pid} exited {t:.1f} s into the capture (the pid now belongs to another process)"
    return "target exited during the capture"


def _gone_error(ident: proc.Identity | None, pid: int, when: str) -> TargetExited:
    why = _gone(ident, pid) or "exited"
    if why == "exec":
        now = proc.identity(pid)
        into = redact.shown(now.describe()) if now else "another program"
        return TargetReplaced(f"pid {pid} exec'd into {into!r} {when}",
                              "profile the new program with a new perfkit run, if it is Python")
    return TargetExited(f"pid {pid} exited {when}")


class _Gdb:
    """Runs ``memray attach`` / ``memray detach`` (and so gdb) against one target, watched.

    While gdb has the target running under its breakpoints (TracerPid set, no thread in
    a tracing stop), every thread's run count is read each 0.1 s; none changing for
    ``BLOCKED_AFTER`` s means no thread will ever hit a breakpoint: gdb is stopped
    (SIGINT, alone: it detaches cleanly).  After each session the target's code is
    checked for stray breakpoint bytes (and repaired).
    """

    def __init__(self, pid: int, notes: list[str], ident: proc.Identity | None = None,
                 scratch: str | None = None, method: str = "gdb") -> None:
        self.pid = pid
        self.env = scratch_env(scratch)
        if method == "gdb":  # gdb < 14 on an AMX CPU kills the target without this (tools.gdb_xstate)
            ours = scratch is not None and os.stat(scratch).st_uid == os.geteuid()
            self.env = gdb_xstate.gdb_env(self.env, shutil.which("gdb") or "gdb", pid, scratch if ours else None)
        self.notes = notes
        self.ident = ident
        self.left_behind: str | None = None  # what a session left in the target, if anything

    def run(self, cmd: list[str], budget: float,
            stop: StopRequest | None = None) -> tuple[supervisor.Outcome, str | None]:
        pid = self.pid
        try:
            child = supervisor.spawn(cmd, env=self.env, stdout=supervisor.PIPE, stderr=supervisor.STDOUT, wake=pid)
        except supervisor.SpawnError as exc:
            raise ToolError(f"cannot run memray: {exc.strerror}", INSTALL_HINT) from None
        output = supervisor.Capture(child.stdout, 1 << 20)
        reason = None
        end = time.monotonic() + max(1.0, budget)
        last = None
        quiet_since = 0.0
        traced = False
        try:
            while child.wait(0.1) is None:
                now = time.monotonic()
                try:
                    runs, cpu, states = proc.thread_activity(pid)
                except proc.Gone:
                    reason = "exited"
                    break
                if not proc.alive(pid):
                    reason = "exited"
                    break
                if self.ident is not None and proc.replaced(self.ident, pid):
                    reason = "exec"  # gdb follows the exec; memray's injection belongs to the old program
                    break
                tr = proc.tracer(pid)
                traced = traced or bool(tr)
                if stop is not None and stop.signal is not None and (tr or not traced):
                    reason = "interrupt"  # gdb not done yet: stop it, nothing was injected
                    break
                if now >= end:
                    reason = "timeout"
                    break
                if tr and "t" not in states:  # the target runs under gdb's breakpoints
                    # a thread in D (disk wait: dlopen of memray's library from a cold page
                    # cache) or R (runnable, waiting for a CPU on a loaded box) will go on:
                    # only threads that all sleep (S) without running are blocked
                    if (runs, cpu) != last or "D" in states or "R" in states:
                        last, quiet_since = (runs, cpu), now
                    elif now - quiet_since >= BLOCKED_AFTER:
                        reason = "blocked"
                        break
                else:
                    last = None
        finally:
            if reason is not None or child.poll() is None:
                child.stop(STOP_STEPS, reason=reason or "abandon")
            outcome = child.close()
            outcome.stdout = output.result()
            self._check_code()
        return outcome, reason

    def _check_code(self) -> None:
        if not proc.alive(self.pid) or proc.tracer(self.pid):
            return
        found, restored, why = codecheck.check_and_repair(self.pid)
        if found:
            if restored == found:
                self.notes.append(f"gdb left {found} breakpoint byte(s) in pid {self.pid}'s code; perfkit restored "
                                  "the original instructions")
            else:
                self.left_behind = (f"gdb left {found} breakpoint byte(s) in pid {self.pid}'s code and perfkit could "
                                    f"restore only {restored}: the target may crash (SIGTRAP) at its next malloc")
                self.notes.append(self.left_behind)

    def where(self) -> str:
        """Where the target's main thread sits (py-spy dump, non-blocking), for messages."""
        try:
            from perfkit.tools import pyspy

            stacks = pyspy.dump(self.pid, nonblocking=True, timeout=5.0)
        except Exception:
            return ""
        main = next((t for t in stacks if t.os_thread_id == self.pid or t.name == "MainThread"), None)
        if main is None or not main.frames:
            return ""
        f = main.frames[0]
        return f"main thread waiting in {f.get('name')} ({os.path.basename(str(f.get('filename')))}:{f.get('line')})"


def _attach(gdb: _Gdb, out: str, opts: MemrayOptions, whole: int, method: str, stop: StopRequest,
            budget: float) -> None:
    pid = gdb.pid
    # uncompressed, unlike a launch: memray compresses in the tracked process when it
    # stops, and that is work perfkit would add to a live service's thread
    cmd = attach_cmd("attach", "--method", method, "-o", out, "-f", "--no-compress", "--duration", str(whole))
    if opts.native:
        cmd.append("--native")
    if opts.trace_python_allocators:
        cmd.append("--trace-python-allocators")
    cmd.append(str(pid))
    res, reason = gdb.run(cmd, budget, stop)
    clean = "" if gdb.left_behind else "; the target was left as it was"
    if gdb.left_behind:
        raise ToolError(f"memray attach to pid {pid} failed and {gdb.left_behind[0].lower()}{gdb.left_behind[1:]}",
                        f"restart pid {pid} when you can")
    if reason == "blocked":
        threads = proc.status_field(pid, "Threads") or "?"
        where = gdb.where()
        raise TargetBlocked(f"pid {pid} is blocked: none of its {threads} thread(s) ran for {BLOCKED_AFTER:g} s "
                            f"while gdb waited to inject memray{' (' + where + ')' if where else ''}{clean}",
                            BLOCKED_HINT)
    if reason == "interrupt":
        raise Interrupted(f"interrupted while memray was attaching to pid {pid}{clean}")
    if reason == "exited":
        raise TargetExited(f"pid {pid} exited before memray could attach")
    if reason == "exec":
        raise _gone_error(gdb.ident, pid, f"while memray was attaching{clean}")
    if reason == "timeout":
        raise ToolError(f"memray attach to pid {pid} did not finish in {budget:.0f} s{clean}",
                        "the target may hold the GIL in native code, or gdb is slow to load symbols on a busy "
                        "machine; retry, or launch it under perfkit: perfkit heap -- python app.py")
    if res.returncode != 0:
        _raise_attach_error(res.stdout.decode("utf-8", "replace"), pid)


def _detach(gdb: _Gdb, method: str, *, budget: float) -> bool:
    """Stop tracking in the target; False when memray detach could not reach it.  Never raises."""
    if budget < 1.0:
        return False
    try:
        res, reason = gdb.run(attach_cmd("detach", "--method", method, str(gdb.pid)), budget)
    except ToolError:
        return False
    if reason is None and res.returncode == 0:
        return True
    return "no previous" in res.stdout.decode("utf-8", "replace")


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
