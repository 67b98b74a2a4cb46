"""The one way perfkit runs a child process (py-spy, memray, gdb, valgrind, benchmarks,
workloads, launched programs).

Guarantees, whatever happens to perfkit (return, exception, Ctrl-C, SIGTERM, SIGHUP,
SIGKILL, OOM kill):

* every child runs under a guard process (``perfkit/procs/guard.py``) that kills the
  child's whole process group and every descendant it adopted as soon as perfkit's
  end of a pipe closes — and the kernel closes it when perfkit dies;
* the child is in a session of its own (a terminal Ctrl-C reaches only perfkit, which
  then stops the child the way that child wants: SIGINT to py-spy so it writes its
  file, SIGINT to a launched program);
* a debugger (gdb under ``memray attach``) is always stopped first and alone, with
  SIGINT, and waited for: that is the one signal on which gdb takes its breakpoints out
  of the target before detaching (SIGTERM and SIGKILL leave ``int3`` bytes behind, and
  the target dies at its next malloc) — see ``guard.stop_debuggers``;
* every wait has a deadline; :meth:`Child.stop` escalates signal by signal and ends in
  SIGKILL;
* a child that exits leaves nothing behind (its group is emptied by the guard);
* ``on_abandon``: a command the guard runs if perfkit dies without calling
  :meth:`Child.disarm` first (``memray detach``, so a SIGKILLed ``perfkit heap --pid``
  does not leave tracking on in the target until its timer ends).

The result of every run is an :class:`Outcome`: exit status or signal, wall and CPU
time, peak RSS (from ``wait4``), why perfkit stopped it, and the tail of its stderr.

Spawn and wait from the same thread, or from a long-lived one: the parent-death
signal of the guard's child is tied to the guard, not to perfkit's threads.
"""

from __future__ import annotations

import atexit
import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import IO, Any, Callable, Sequence

GUARD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "guard.py")
# The guard runs on perfkit's own interpreter.  When its path is not reachable by this
# user (a root-only pyenv under /root, run as another user), /proc/self/exe still is.
PYTHON = sys.executable if os.access(sys.executable, os.X_OK) else "/proc/self/exe"
DEVNULL = subprocess.DEVNULL
PIPE = subprocess.PIPE
STDOUT = subprocess.STDOUT
START_TIMEOUT = 30.0  # the guard answers in milliseconds; a loaded box may take seconds
GUARD_EXIT_TIMEOUT = 10.0  # the guard ends right after reporting its child's exit
_live: set["Child"] = set()
_live_lock = threading.Lock()


class SpawnError(OSError):
    """The child could not be started (exec failed, bad cwd); ``errno`` says why."""


def signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


@dataclass
class Outcome:
    """How a child ended."""

    argv: list[str]
    pid: int
    returncode: int | None = None  # exit status; -N when killed by signal N; None if unknown
    wall_s: float = 0.0
    cpu_s: float = 0.0  # user + system CPU of the child (and the children it waited for)
    maxrss_bytes: int = 0
    stopped_by: str | None = None  # "deadline", "interrupt", "timeout", "target-exit", "abandon" ...
    escalated: bool = False  # a polite signal did not stop it: SIGKILL was needed
    stdout: bytes = b""  # only from run()
    stderr_tail: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def signal(self) -> int | None:
        return -self.returncode if self.returncode is not None and self.returncode < 0 else None

    def describe(self, what: str | None = None) -> str:
        """``python app.py exited with status 3 after 2.1 s`` / ``was killed by SIGKILL``."""
        name = what or " ".join(self.argv[:3]) + (" …" if len(self.argv) > 3 else "")
        if self.returncode is None:
            how = "ended (status unknown)"
        elif self.returncode >= 0:
            how = f"exited with status {self.returncode}"
        else:
            how = f"was killed by {signal_name(-self.returncode)}"
        return f"{name} {how} after {self.wall_s:.1f} s"

    def to_json(self) -> dict:
        return {"returncode": self.returncode, "signal": signal_name(self.signal) if self.signal else None,
                "wall_s": round(self.wall_s, 3), "cpu_s": round(self.cpu_s, 3), "stopped_by": self.stopped_by,
                "escalated": self.escalated}


class Child:
    """A child process under a guard.  Use as a context manager, or call :meth:`close`."""

    def __init__(self, argv: Sequence[str], *, env: dict | None = None, cwd: str | None = None,
                 stdin: int | IO | None = DEVNULL, stdout: int | IO | None = None, stderr: int | IO | None = None,
                 grace: float = 3.0, first_signal: int = signal.SIGTERM, wake: int | None = None,
                 ptracer_any: bool = False, on_abandon: Sequence[str] | None = None,
                 abandon_timeout: float = 20.0) -> None:
        self.argv = [str(a) for a in argv]
        self.pid = -1
        self.outcome: Outcome | None = None
        self.stopped_by: str | None = None
        self.escalated = False
        self._started = time.monotonic()
        ctrl_r, self._ctrl = os.pipe()
        rep_r, rep_w = os.pipe()
        cmd = [PYTHON, "-I", "-S", GUARD, str(ctrl_r), str(rep_w), "--grace", f"{grace:g}",
               "--first-signal", str(int(first_signal))]
        if wake:
            cmd += ["--wake", str(int(wake))]
        if ptracer_any:
            cmd.append("--ptracer-any")
        if on_abandon:
            import json

            cmd += ["--on-abandon", json.dumps([str(a) for a in on_abandon]),
                    "--abandon-timeout", f"{abandon_timeout:g}"]
        cmd += ["--", *self.argv]
        try:
            self._guard = subprocess.Popen(cmd, stdin=stdin, stdout=stdout, stderr=stderr, env=env, cwd=cwd,
                                           pass_fds=(ctrl_r, rep_w), close_fds=True)
        except OSError as exc:
            for fd in (ctrl_r, self._ctrl, rep_r, rep_w):
                os.close(fd)
            raise SpawnError(exc.errno, exc.strerror or str(exc), cwd) from None
        finally:
            if getattr(self, "_guard", None) is not None:
                os.close(ctrl_r)
                os.close(rep_w)
        self._report: Any = os.fdopen(rep_r, "rb", buffering=0)
        self._buf = b""
        first = self._read_line(START_TIMEOUT)
        if first.startswith(b"pid "):
            self.pid = int(first.split()[1])
            with _live_lock:
                _live.add(self)
            return
        self._close_fds()
        self._guard.wait()
        if first.startswith(b"error "):
            err = int(first.split()[1])
            raise SpawnError(err, os.strerror(err), self.argv[0])
        raise SpawnError(0, "the child guard did not start", self.argv[0])

    # ----------------------------------------------------------------- plumbing
    def _read_line(self, timeout: float) -> bytes:
        end = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = end - time.monotonic()
            if left <= 0:
                return b""
            ready, _, _ = select.select([self._report], [], [], left)
            if not ready:
                continue
            chunk = self._report.read(4096)
            if not chunk:
                break
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def _close_fds(self) -> None:
        for f in ("_ctrl",):
            fd = getattr(self, f, -1)
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
                setattr(self, f, -1)
        rep = getattr(self, "_report", None)
        if rep is not None:
            rep.close()
            self._report = None

    def _finish(self) -> Outcome:
        if self.outcome is not None:
            return self.outcome
        line = self._read_line(2.0) if self._report is not None else b""
        out = Outcome(argv=self.argv, pid=self.pid, wall_s=time.monotonic() - self._started,
                      stopped_by=self.stopped_by, escalated=self.escalated)
        parts = line.split()
        if parts[:1] == [b"exit"] and len(parts) == 6:
            status = int(parts[1])
            out.returncode = os.waitstatus_to_exitcode(status)
            out.cpu_s = float(parts[2]) + float(parts[3])
            out.maxrss_bytes = int(parts[4]) * 1024
            out.wall_s = float(parts[5])
        self._close_fds()
        with _live_lock:
            _live.discard(self)
        self.outcome = out
        return out

    # ----------------------------------------------------------------- API
    @property
    def stdout(self) -> IO[bytes] | None:
        """The child's stdout when spawned with ``stdout=PIPE``."""
        return self._guard.stdout

    @property
    def stderr(self) -> IO[bytes] | None:
        return self._guard.stderr

    def poll(self) -> Outcome | None:
        """The outcome once the child (and its guard) ended, else None."""
        if self.outcome is not None:
            return self.outcome
        if self._guard.poll() is None:
            return None
        return self._finish()

    def running(self) -> bool:
        return self.poll() is None

    def wait(self, timeout: float | None = None) -> Outcome | None:
        """Wait up to ``timeout`` s (None: forever); the outcome, or None on timeout.

        The guard writes its ``exit`` line the moment the child has ended and then ends
        itself, so the wait is on that line (``select`` on the report pipe): the outcome
        comes within microseconds.  ``Popen.wait(timeout)`` sleeps in a loop whose steps
        grow to 50 ms, which added ~10 ms to every short child (a py-spy dump).
        """
        if self.outcome is not None:
            return self.outcome
        if self._report is not None and not self._exit_reported(timeout):
            return None
        try:
            self._guard.wait(GUARD_EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:  # pragma: no cover - the guard ends right after its exit line
            self._guard.kill()
            self._guard.wait()
        return self._finish()

    def _exit_reported(self, timeout: float | None) -> bool:
        """True once the guard's exit line is in (or its report pipe closed); False on timeout."""
        end = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                return False
            ready, _, _ = select.select([self._report], [], [], left)
            if not ready:
                return False
            chunk = self._report.read(4096)
            if not chunk:  # the guard is gone without a word (killed): its status tells the rest
                return True
            self._buf += chunk
        return True

    def send(self, sig: int) -> None:
        """Send ``sig`` to the child's process group (the child and what it started)."""
        if self.outcome is not None or self._guard.poll() is not None:
            return
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(self.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def stop(self, steps: Sequence[tuple[int, float]] = ((signal.SIGTERM, 3.0),), *,
             reason: str | None = None) -> Outcome:
        """Ask the child to stop, signal by signal, each with a deadline; SIGKILL last."""
        if reason and self.stopped_by is None:
            self.stopped_by = reason
        frozen = self._debuggers_first()
        for sig, wait in steps:
            if self.poll() is not None:
                return self.outcome  # type: ignore[return-value]
            self.send(sig)
            for p in frozen:  # frozen while its debugger detached: now let it take the signal
                _signal(p, sig)
                _signal(p, signal.SIGCONT)
            frozen = []
            if self.wait(wait) is not None:
                return self.outcome  # type: ignore[return-value]
        return self.kill()

    def _debuggers_first(self) -> list[int]:
        """A gdb in the child's tree detaches (SIGINT, waited for) before anything else is signalled."""
        if self.outcome is not None or self._guard.poll() is not None:
            return []
        from perfkit.procs import guard

        return guard.stop_debuggers(self.pid)

    def kill(self) -> Outcome:
        """SIGKILL the group (a debugger in it detaches first) and let the guard sweep every descendant."""
        if self.poll() is not None:
            return self.outcome  # type: ignore[return-value]
        self.escalated = True
        self._debuggers_first()
        self.send(signal.SIGKILL)
        self._abandon()
        got = self.wait(30.0)
        if got is None:  # the guard itself is stuck: end it too
            self._guard.kill()
            self._guard.wait()
            return self._finish()
        return got

    def disarm(self) -> None:
        """The work an ``on_abandon`` command would undo is done: the guard will not run it."""
        if self._ctrl >= 0:
            try:
                os.write(self._ctrl, b"disarm\n")
            except OSError:
                pass

    def _abandon(self) -> None:
        if self._ctrl >= 0:
            os.close(self._ctrl)
            self._ctrl = -1

    def close(self, steps: Sequence[tuple[int, float]] = ((signal.SIGTERM, 3.0),)) -> Outcome:
        """Make sure the child is gone (stopping it if needed) and return its outcome."""
        if self.poll() is None:
            self.stop(steps, reason=self.stopped_by or "abandon")
        return self._finish()

    def __enter__(self) -> "Child":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def spawn(argv: Sequence[str], **kw) -> Child:
    """Start ``argv`` under a guard (see :class:`Child` for the options)."""
    return Child(argv, **kw)


def run(argv: Sequence[str], *, timeout: float, env: dict | None = None, cwd: str | None = None,
        stdin: int | IO | None = DEVNULL, stderr_to_stdout: bool = False, max_output: int = 64 << 20,
        stop_steps: Sequence[tuple[int, float]] = ((signal.SIGTERM, 3.0),), wake: int | None = None,
        should_stop: Callable[[], bool] | None = None) -> Outcome:
    """Run to completion, capturing stdout (bytes, at most ``max_output``) and stderr's tail.

    On ``timeout`` (or when ``should_stop()`` turns true) the child is stopped with
    ``stop_steps`` and ``Outcome.stopped_by`` says why.
    """
    child = Child(argv, env=env, cwd=cwd, stdin=stdin, stdout=PIPE,
                  stderr=subprocess.STDOUT if stderr_to_stdout else PIPE, wake=wake)
    out = Capture(child.stdout, max_output)
    err = Capture(child.stderr, 256 << 10, tail=True) if not stderr_to_stdout else None
    end = time.monotonic() + timeout
    try:
        while child.wait(0.05) is None:
            if time.monotonic() >= end:
                child.stop(stop_steps, reason="timeout")
                break
            if should_stop is not None and should_stop():
                child.stop(stop_steps, reason="interrupt")
                break
    finally:
        outcome = child.close()
    outcome.stdout = out.result()
    outcome.stderr_tail = err.text() if err is not None else ""
    return outcome


class Capture(threading.Thread):
    """Reads a stream to its end in the background, keeping at most ``limit`` bytes."""

    def __init__(self, stream, limit: int, *, tail: bool = False) -> None:
        super().__init__(daemon=True, name="perfkit-capture")
        self.stream, self.limit, self.tail = stream, limit, tail
        self.data = bytearray()
        self.start()

    def run(self) -> None:
        _drain(self.stream, lambda: self.stream.read1(65536), self._take)

    def _take(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > self.limit:
            if self.tail:
                del self.data[:len(self.data) - self.limit]
            else:
                del self.data[self.limit:]

    def result(self, timeout: float = 5.0) -> bytes:
        self.join(timeout)
        return bytes(self.data)

    def text(self, timeout: float = 5.0) -> str:
        return self.result(timeout).decode("utf-8", "replace")


class Relay(threading.Thread):
    """Forwards a child's output line by line to perfkit's stderr and keeps its tail.

    ``consume(line) -> bool`` sees each decoded line first; True keeps it from being
    forwarded (py-spy's own ``py-spy>`` lines, say).  ``mute`` stops forwarding (the
    program's KeyboardInterrupt traceback after perfkit's own SIGINT).
    """

    def __init__(self, stream, *, consume: Callable[[str], bool] | None = None, keep: int = 50,
                 sink: IO[str] | None = None) -> None:
        super().__init__(daemon=True, name="perfkit-relay")
        self.stream, self.consume, self.keep = stream, consume, keep
        self.sink = sink
        self.lines: list[str] = []
        self.mute = False
        self.start()

    def run(self) -> None:
        _drain(self.stream, self.stream.readline, self._take)

    def _take(self, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace")
        if self.consume is not None and self.consume(line):
            return
        self.lines.append(line.rstrip("\n"))
        del self.lines[:-self.keep]
        if self.mute:
            return
        try:
            sink = self.sink or sys.stderr
            sink.write(line)
            sink.flush()
        except (OSError, ValueError):
            pass

    def tail(self) -> str:
        return "\n".join(self.lines)


def _drain(stream, read: Callable[[], bytes], take: Callable[[bytes], None]) -> None:
    """Feed ``take`` every chunk ``read`` returns until end of file; always close ``stream``."""
    try:
        for chunk in iter(read, b""):
            take(chunk)
    except (OSError, ValueError):
        pass
    finally:
        try:
            stream.close()
        except OSError:
            pass


def stop_all() -> None:
    """Stop every child still running (normal interpreter exit; the guards cover the rest)."""
    with _live_lock:
        children = list(_live)
    for child in children:
        try:
            child.kill()
        except Exception:  # pragma: no cover - best effort at exit
            pass


def live_children() -> list[int]:
    with _live_lock:
        return [c.pid for c in _live]


atexit.register(stop_all)
