"""Rolling py-spy recordings of a live pid: the sample stream behind ``perfkit top``.

py-spy streams nothing while it records; it writes its file when it stops.  A live
view therefore runs short ``py-spy record`` windows back to back: each next window is
started early by the measured start-up latency (spawn → py-spy's "Sampling process"
line), so its sampling begins as the previous one's ends — no gap, and an overlap of a
few ticks at most.  (benchmarks/bench_top.py compares this with repeated
``py-spy dump`` calls: windows give ~100 evenly spaced samples a second for a few % of
a core; dumps give ~10 a second for several times the CPU.)

Every py-spy runs under the child supervisor: it dies with perfkit, is asked to stop
with SIGINT (so it detaches cleanly) and is killed only if it does not.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from perfkit.errors import PerfkitError, ToolError
from perfkit.model import Profile
from perfkit.procs import supervisor
from perfkit.tools import pyspy

_STOP_GRACE = 3.0


@dataclass
class WindowResult:
    """One finished window: py-spy's own profile (sample counts, thread labels) and its times."""

    profile: Profile | None
    started: float  # monotonic: when sampling began ("Sampling process" line; spawn time if unseen)
    ended: float  # monotonic: when py-spy ended
    rate: int
    samples: int = 0  # traces py-spy kept ("Samples: N")
    errors: int = 0  # samples py-spy failed to take ("Errors: N")
    lag: str | None = None  # py-spy's last "behind in sampling" warning
    failure: str | None = None  # why the window produced nothing (target gone, permission, ...)
    error: PerfkitError | None = None  # the same as the error perfkit cpu would raise
    cpu_s: float = 0.0  # py-spy's own CPU time
    planned_seconds: int = 0
    complete: bool = False  # ran its whole --duration (not stopped early)

    @property
    def seconds(self) -> float:
        return max(0.0, self.ended - self.started)

    @property
    def ticks(self) -> float:
        """Sampling intervals taken.  py-spy stops after ``seconds x rate`` intervals however
        late it runs (the last one is not sampled); a window stopped early counts by time."""
        if self.complete and self.planned_seconds:
            return float(self.planned_seconds * self.rate - 1)
        return self.seconds * self.rate


class Window:
    """One short ``py-spy record`` of ``pid`` (``opts.duration`` whole seconds long), started now."""

    def __init__(self, exe: str, pid: int, opts: pyspy.RecordOptions) -> None:
        self.pid, self.opts = pid, opts
        self.dir = tempfile.mkdtemp(prefix="perfkit-top-")
        os.chmod(self.dir, 0o700)
        self.out = os.path.join(self.dir, "window.speedscope.json")
        self.lines = pyspy._PyspyLines()
        self.requested = time.monotonic()  # start-up latency counts from here (guard + py-spy)
        self._err = open(os.path.join(self.dir, "py-spy.stderr"), "wb")
        try:
            self.child = supervisor.spawn(pyspy.record_argv(exe, self.out, pid, opts), env=pyspy._env(),
                                          stdout=supervisor.PIPE, stderr=self._err, first_signal=signal.SIGINT)
        except supervisor.SpawnError as exc:
            self._cleanup()
            raise ToolError(f"cannot run py-spy ({exe}): {exc.strerror}", pyspy.INSTALL_HINT) from None
        self.spawned = time.monotonic()  # ~ the fork: the guard's wall clock starts here
        self.relay = supervisor.Relay(self.child.stdout, consume=self.lines.take)
        self._result: WindowResult | None = None

    @property
    def sampling_started(self) -> float | None:
        return self.lines.sampling_started

    def done(self) -> bool:
        return self.child.poll() is not None

    def stop(self) -> None:
        """Ask py-spy to stop now (it detaches and writes what it has)."""
        if not self.done():
            self.child.stop(((signal.SIGINT, _STOP_GRACE), (signal.SIGTERM, 1.0)), reason="interrupt")

    def result(self) -> WindowResult:
        """The finished window (stops it first if it is still running); cleans up its files."""
        if self._result is not None:
            return self._result
        early = not self.done()
        self.stop()
        outcome = self.child.close()
        ended = time.monotonic()
        if outcome.wall_s > 0:  # the guard's own clock: exact, where perfkit's polling is late
            ended = min(ended, self.spawned + outcome.wall_s)
        self.relay.join(2.0)
        self._err.close()
        started = self.sampling_started or self.spawned
        text = Path(self._err.name).read_text(errors="replace") + "\n" + "\n".join(self.lines.lines)
        res = WindowResult(profile=None, started=started, ended=ended, rate=self.opts.rate, cpu_s=outcome.cpu_s,
                           planned_seconds=self.opts.window_seconds,
                           complete=not early and outcome.returncode == 0 and self.sampling_started is not None)
        counts = _counts(text)
        if counts:
            res.samples, res.errors = counts
        lag = [ln for ln in text.splitlines() if "behind in sampling" in ln]
        res.lag = lag[-1].strip() if lag else None
        try:
            if os.path.exists(self.out) and os.path.getsize(self.out) > 0:
                from perfkit.formats import speedscope

                res.profile = speedscope.read(Path(self.out).read_bytes(), "py-spy output")
            else:
                res.error = _failure(text, self.pid)
                res.failure = res.error.message
        except Exception as exc:  # a torn file from a killed py-spy: this window is lost, not the view
            res.failure = f"unreadable py-spy output ({type(exc).__name__})"
        finally:
            self._cleanup()
        self._result = res
        return res

    def _cleanup(self) -> None:
        try:
            self._err.close()
        except OSError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


def _counts(text: str) -> tuple[int, int] | None:
    import re

    m = re.search(r"Samples:\s*(\d+)\s+Errors:\s*(\d+)", text)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _failure(text: str, pid: int) -> PerfkitError:
    from perfkit.target import Target

    try:
        pyspy._raise_for(text, Target(pid=pid))
    except PerfkitError as exc:
        return exc
    return ToolError(f"py-spy wrote nothing: {pyspy._last_lines(text)}")


@dataclass
class Stream:
    """Back-to-back windows of one kind; :meth:`poll` returns the windows that finished.

    The next window is spawned ``latency`` seconds before the current one is due to end,
    ``latency`` being the last measured spawn → first-sample time (so sampling has no
    gap; py-spy's own ``--duration`` ends each window even if perfkit is gone).
    """

    pid: int
    opts: pyspy.RecordOptions
    exe: str = field(default_factory=pyspy.find_pyspy)
    latency: float = 0.15
    running: list[Window] = field(default_factory=list)
    spawned: int = 0

    def poll(self, now: float | None = None) -> list[WindowResult]:
        now = time.monotonic() if now is None else now
        finished = [w for w in self.running if w.done()]
        out = []
        for w in finished:
            self.running.remove(w)
            if w.sampling_started is not None:
                self.latency = 0.7 * self.latency + 0.3 * max(0.0, w.sampling_started - w.requested)
            out.append(w.result())
        if not self.running or self._due(self.running[-1], now):
            self.running.append(Window(self.exe, self.pid, self.opts))
            self.spawned += 1
        return out

    def _due(self, w: Window, now: float) -> bool:
        start = w.sampling_started
        if start is None:
            return False  # still starting: never two windows starting at once
        return now >= start + self.opts.window_seconds - self.latency

    def close(self) -> list[WindowResult]:
        """Stop every window (SIGINT: py-spy detaches) and return what they had."""
        out = [w.result() for w in self.running]
        self.running.clear()
        return out


__all__ = ["Stream", "Window", "WindowResult"]
