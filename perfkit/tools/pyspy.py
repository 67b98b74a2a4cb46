"""The py-spy collector: the only code that runs py-spy.

``record`` samples a live pid or a launched command and returns a ``Profile`` (read
from py-spy's structured speedscope output: one profile per thread, full paths).
``dump`` returns every thread's current stack (``py-spy dump --json``).

py-spy runs in its own session so a terminal Ctrl-C reaches only perfkit, which then
asks py-spy (SIGINT) to stop and write what it has.  RUST_BACKTRACE is stripped from
its environment; its failures become perfkit errors with a hint.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from perfkit import redact
from perfkit.errors import (
    NoSuchProcess,
    NotPython,
    PermissionDenied,
    TargetExited,
    ToolError,
    ToolMissing,
)
from perfkit.fileio import private_file, private_tempdir
from perfkit.model import CPU_NS, SAMPLES, WALL_NS, Labels, Profile, ProfileBuilder, Recording
from perfkit.procs import proc, supervisor
from perfkit.procs.signals import StopRequest
from perfkit.procs.ticks import TickWatch
from perfkit.target import PTRACE_HINT, Launched, Target, doctor_hint, failure, python_version, shown_cmdline
from perfkit.tools.result import CaptureResult

INSTALL_HINT = "install it with: pip install py-spy   (or set PERFKIT_PYSPY to its path)"
_STOP_GRACE = 20.0  # seconds py-spy gets to write its file after being asked to stop


def find_pyspy() -> str:
    """py-spy next to the running interpreter, then on PATH (PERFKIT_PYSPY overrides)."""
    env = os.environ.get("PERFKIT_PYSPY")
    if env:
        if os.access(env, os.X_OK):
            return env
        raise ToolMissing(f"PERFKIT_PYSPY={env} is not an executable", INSTALL_HINT)
    local = Path(sys.executable).parent / "py-spy"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which("py-spy")
    if found:
        return found
    raise ToolMissing("py-spy not found", doctor_hint(INSTALL_HINT))


@functools.lru_cache(maxsize=8)
def pyspy_version(exe: str | None = None) -> str:
    """py-spy's version (asked once per executable: a long-lived caller records often)."""
    try:
        res = supervisor.run([exe or find_pyspy(), "--version"], timeout=10, env=_env())
        out = res.stdout.decode("utf-8", "replace").strip()
        return out.split()[-1] if out and res.ok else "unknown"
    except (OSError, IndexError, ToolMissing):
        return "unknown"


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "RUST_BACKTRACE" and k != "RUST_LIB_BACKTRACE"}
    env["RUST_BACKTRACE"] = "0"
    env["RUST_LIB_BACKTRACE"] = "0"
    return env


EXIT_GRACE = 2.0  # seconds a launched program gets to finish exiting after py-spy saw it end


@dataclass
class RecordOptions:
    duration: float | None = None  # None: until the launched command exits (or Ctrl-C)
    rate: int = 100
    idle: bool = False
    gil: bool = False
    native: bool = False
    subprocesses: bool = False
    nonblocking: bool = False

    @property
    def window_seconds(self) -> int:
        """A live window's length (``perfkit top``): whole seconds, py-spy's --duration."""
        return int(self.duration or 1)


RecordResult = CaptureResult


def record_argv(exe: str, out: str, pid: int, opts: RecordOptions) -> list[str]:
    """py-spy record's command line for ``opts`` (speedscope into ``out``), also for the live windows."""
    cmd = [exe, "record", "--format", "speedscope", "--output", out, "--rate", str(int(opts.rate))]
    if opts.duration is not None and float(opts.duration).is_integer():
        # py-spy stops itself on whole seconds (so a dead perfkit never leaves it running);
        # perfkit also enforces the deadline.
        cmd += ["--duration", str(int(opts.duration))]
    for flag, on in (("--idle", opts.idle), ("--gil", opts.gil), ("--native", opts.native),
                     ("--subprocesses", opts.subprocesses), ("--nonblocking", opts.nonblocking)):
        if on:
            cmd.append(flag)
    return [*cmd, "--pid", str(pid)]


def record(target: Target, opts: RecordOptions, *, on_tick: Callable[[dict], None] | None = None,
           should_stop: Callable[[], bool] | None = None) -> RecordResult:
    """Record ``target`` with py-spy and return the profile (partial on interrupt/exit).

    ``should_stop()`` turning true stops the recording like a signal does (for callers
    off the main thread, where no signal reaches ``StopRequest``).

    A launched command is started by perfkit itself (``target.Launched``: its exit
    status is known, its output passes through) and py-spy attaches to it by pid.
    """
    exe = find_pyspy()
    workdir = private_tempdir("cpu")
    out = private_file(workdir, "profile.speedscope.json")  # 0600 before py-spy writes into it
    errpath = private_file(workdir, "py-spy.stderr")
    started_wall = time.time()
    start = time.monotonic()
    interrupted = False
    target_exited = False
    program: Launched | None = None
    program_outcome = None
    notes: list[str] = []
    try:
        with open(errpath, "wb") as errf, StopRequest() as stop:
            if target.launched:
                program = Launched(target.command)
            pid = target.pid if target.pid is not None else program.pid  # type: ignore[union-attr]
            cmd = record_argv(exe, out, pid, opts)
            try:
                # py-spy prints its status on stdout: a relay keeps its lines (parsed for the
                # sample/error counts) so stdout stays clean for data (--json).
                child = supervisor.spawn(cmd, env=_env(), stdout=supervisor.PIPE, stderr=errf)
            except supervisor.SpawnError as exc:
                raise ToolError(f"cannot run py-spy ({exe}): {exc.strerror}", INSTALL_HINT) from None
            ticks = TickWatch(pid, children=opts.subprocesses)  # per-thread /proc CPU over the sampling window
            lines = _PyspyLines(on_sampling=ticks.start)
            relay = supervisor.Relay(child.stdout, consume=lines.take)
            deadline = start + opts.duration if opts.duration is not None else None
            asked_stop = None
            ident = proc.identity(pid) if target.pid is not None else None
            next_check = start
            seen_python = None
            while child.wait(0.1) is None:
                now = time.monotonic()
                if seen_python is None and lines.sampling_started is not None:
                    seen_python = python_version(pid) or ""  # while it runs: a launched one may be gone at the end
                if ident is not None and asked_stop is None and now >= next_check:
                    next_check = now + 0.5
                    how = proc.replaced(ident, pid)
                    if how in ("exec", "reused"):  # py-spy would go on sampling another program (errors only)
                        target_exited = True
                        asked_stop = now
                        child.stopped_by = "target-exit"
                        child.send(signal.SIGINT)
                        new = proc.identity(pid)
                        into = redact.shown(new.describe()) if new is not None else "another program"
                        notes.append(f"pid {pid} exec'd into {into!r} {now - start:.1f} s in: the profile covers "
                                     "the time until then" if how == "exec" else
                                     f"pid {pid} exited {now - start:.1f} s in (the pid now belongs to another "
                                     "process): the profile covers the time until then")
                if (stop.signal is not None or (should_stop is not None and should_stop())) and asked_stop is None:
                    interrupted = True
                    asked_stop = now
                    child.stopped_by = "interrupt"
                    child.send(signal.SIGINT)
                elif deadline is not None and now >= deadline and asked_stop is None:
                    asked_stop = now
                    child.stopped_by = "deadline"
                    child.send(signal.SIGINT)
                elif asked_stop is None and not proc.alive(pid):
                    target_exited = target.pid is not None  # py-spy notices on its own; give it time to write
                    asked_stop = now + 2.0
                if asked_stop is not None and now - asked_stop > _STOP_GRACE:
                    child.kill()
                    break
                if asked_stop is None:
                    ticks.refresh()
                if on_tick:
                    on_tick({"elapsed": now - start, "duration": opts.duration, "pid": pid})
            ticks.stop()
            child.close()
            relay.join(5.0)
            if program is not None:
                ran = time.monotonic() - (lines.sampling_started or start)
                if child.stopped_by is None and program.running() and (
                        _short_of(opts.duration, ran) or not proc.alive(pid)):
                    # py-spy ended on its own before its --duration: the program did, and its
                    # guard is still reporting; stopping it now would call its own exit a "deadline"
                    program.wait(EXIT_GRACE)
                if program.running():
                    program.stop("interrupt" if interrupted else "deadline")
                program_outcome = program.close()
                program = None
        # Rates and durations count from py-spy's "Sampling process ..." line: before it
        # py-spy is still finding the interpreter and cannot take samples.
        sampling_start = lines.sampling_started or start
        elapsed = time.monotonic() - sampling_start
        if program_outcome is not None:  # the program's own end, not py-spy's
            elapsed = min(elapsed, max(0.0, start + program_outcome.wall_s - sampling_start))
        stderr = Path(errpath).read_text(errors="replace") + "\n" + "\n".join(lines.lines)
        if "process exited" in stderr.lower() and target.pid is not None:
            if _short_of(opts.duration, elapsed):
                target_exited = True
        if not os.path.exists(out) or os.path.getsize(out) == 0:
            failed = failure(program_outcome, " ".join(target.command))
            if failed:
                raise TargetExited(f"{failed}, before any sample was taken",
                                   _last_lines(program_outcome.stderr_tail, 2) if program_outcome else None)
            if program_outcome is not None and program_outcome.stopped_by is None:
                raise TargetExited(f"{program_outcome.describe(' '.join(target.command))}, before py-spy could "
                                   "take a sample", "py-spy needs about 0.1 s to attach: profile a longer run")
            _raise_for(stderr, target)
            raise ToolError("py-spy wrote no profile", _last_lines(stderr))
        from perfkit.formats import speedscope

        raw = speedscope.read(Path(out).read_bytes(), "py-spy output")
        profile = _to_cpu_profile(raw, target, opts, elapsed, started_wall, stderr, exe, pid)
        profile.recording.python = profile.recording.python or seen_python or None
        profile.recording.thread_cpu = ticks.to_json()
        profile.recording.interrupted = interrupted
        profile.recording.target_exited = target_exited or bool(program_outcome and program_outcome.stopped_by is None)
        profile.recording.notes.extend(notes)
        if program_outcome is not None:
            profile.recording.program = program_outcome.to_json()
            profile.recording.exit_code = program_outcome.returncode
        return RecordResult(profile=profile, interrupted=interrupted, target_exited=target_exited, stderr=stderr,
                            program=program_outcome, notes=notes)
    finally:
        if program is not None:
            program.close()
        shutil.rmtree(workdir, ignore_errors=True)


def _short_of(duration: float | None, seconds: float) -> bool:
    """py-spy stopped before its --duration (none given: any end is its own): the target ended."""
    return duration is None or seconds < duration - 0.5


class _PyspyLines:
    """py-spy's own ``py-spy>`` status lines (kept, not forwarded) and when sampling began."""

    def __init__(self, on_sampling: Callable[[], None] | None = None) -> None:
        self.lines: list[str] = []
        self.sampling_started: float | None = None  # monotonic time of "Sampling process ..."
        self.on_sampling = on_sampling

    def take(self, line: str) -> bool:
        if line.startswith("py-spy> "):
            if self.sampling_started is None and line[8:].startswith("Sampling process"):
                self.sampling_started = time.monotonic()
                if self.on_sampling:
                    self.on_sampling()
            self.lines.append(line[8:].rstrip("\n"))
            return True
        return not line.strip()  # py-spy pads its messages with blank lines


def _last_lines(text: str, n: int = 3) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip() and not ln.lstrip()[:1].isdigit()
             and "backtrace" not in ln.lower()]
    return " / ".join(ln.strip() for ln in lines[-n:])[:500] or "no output from py-spy"


def _raise_for(stderr: str, target: Target) -> None:
    """Map py-spy's failure text to a perfkit error (raises) or return for a generic one."""
    low = stderr.lower()
    who = target.describe()
    if "permission denied" in low or "operation not permitted" in low:
        raise PermissionDenied(f"permission denied attaching to {who}", doctor_hint(PTRACE_HINT, target.pid))
    if "no such process" in low or "failed to find process" in low:
        raise NoSuchProcess(f"no such process: {who}")
    if "failed to find python version" in low or "doesn't appear to be a python" in low or \
            "failed to get process executable name" in low:
        raise NotPython(f"{who} does not look like a Python process (py-spy: {_last_lines(stderr, 1)})")
    if "process exited" in low or "failed to suspend process" in low:
        raise TargetExited(f"{who} exited before any sample was taken")


def _to_cpu_profile(raw: Profile, target: Target, opts: RecordOptions, elapsed: float, started: float,
                    stderr: str, exe: str, child_pid: int | None) -> Profile:
    period_ns = int(round(1e9 / opts.rate))
    time_type = WALL_NS if opts.idle else CPU_NS
    b = ProfileBuilder([SAMPLES, time_type])
    pid_default = target.pid if target.pid is not None else child_pid
    new_index = []
    for s in raw.samples:
        n = s.values[0]
        labels = s.labels if s.labels.pid is not None else Labels(pid_default, s.labels.tid, s.labels.thread)
        new_index.append(b.add([raw.frames[i] for i in s.stack], (n, n * period_ns), labels))
    prof = b.build()
    # py-spy's speedscope output keeps each thread's samples in order (not their times):
    # the reader put them on the "ticks" clock, sample k of a thread at k x period.
    timeline = raw.live_timeline()
    if timeline is not None:
        prof.with_timeline(timeline.remap(new_index))
    samples = prof.total(0)
    per_thread: dict[tuple, int] = {}
    per_pid: dict[int | None, int] = {}
    for s in prof.samples:
        k = (s.labels.pid, s.labels.tid)
        per_thread[k] = per_thread.get(k, 0) + s.values[0]
        per_pid[s.labels.pid] = per_pid.get(s.labels.pid, 0) + s.values[0]
    busiest = max(per_pid.values()) if per_pid else 0
    lag = [ln for ln in stderr.splitlines() if "behind in sampling" in ln]
    m = re.search(r"Samples:\s*(\d+)\s+Errors:\s*(\d+)", stderr)
    errors = int(m.group(2)) if m else None
    attached = pid_default is not None and target.pid is not None
    shown, redacted = shown_cmdline(pid_default if attached else None, None if attached else list(target.command))
    prof.recording = Recording(
        kind="cpu", tool="py-spy", tool_version=pyspy_version(exe), perfkit_version=_perfkit_version(),
        target=target.describe(), pid=pid_default, launched=target.launched, attached=target.pid is not None,
        cmdline=shown, redacted=redacted,
        python=python_version(pid_default) if pid_default else None,
        start=started, duration_s=round(elapsed, 3), requested_rate=opts.rate,
        # py-spy does not report its tick count.  A busy process yields about one
        # on-CPU sample per tick (threads take turns on the GIL), so the busiest
        # process's samples per second, capped at the requested rate, estimates the
        # achieved rate; a partly idle target shows less.  py-spy's own "behind in
        # sampling" warnings are kept in sampling_lag.
        achieved_rate=round(min(busiest / elapsed, float(opts.rate)), 2) if elapsed > 0 else 0.0,
        sampling_lag=lag[-1] if lag else None, samples=samples, sampling_errors=errors, period_ns=period_ns,
        period_type=time_type.type,
        options={"idle": opts.idle, "gil": opts.gil, "native": opts.native,
                 "subprocesses": opts.subprocesses, "nonblocking": opts.nonblocking},
        threads=len(per_thread), processes=len({p for p, _ in per_thread}))
    prof.default_index = 1
    return prof


def _perfkit_version() -> str:
    from perfkit import __version__

    return __version__


# --------------------------------------------------------------------------- dump

@dataclass
class ThreadStack:
    pid: int
    thread_id: int
    os_thread_id: int | None
    name: str | None
    active: bool
    owns_gil: bool
    frames: list[dict]  # leaf first, as py-spy gives them: name, filename, line, locals

    def to_json(self) -> dict:
        return {"pid": self.pid, "thread_id": self.thread_id, "os_thread_id": self.os_thread_id,
                "name": self.name, "active": self.active, "owns_gil": self.owns_gil, "frames": self.frames}


def dump(pid: int, *, nonblocking: bool = True, locals_: bool = False, native: bool = False,
         timeout: float = 10.0) -> list[ThreadStack]:
    """Every thread's current Python stack (``py-spy dump --json``)."""
    exe = find_pyspy()
    cmd = [exe, "dump", "--json", "--pid", str(pid)]
    if nonblocking:
        cmd.append("--nonblocking")
    if locals_:
        cmd.append("--locals")
    if native:
        cmd.append("--native")
    try:
        res = supervisor.run(cmd, timeout=timeout, env=_env())
    except supervisor.SpawnError as exc:
        raise ToolError(f"cannot run py-spy ({exe}): {exc.strerror}", INSTALL_HINT) from None
    if res.stopped_by == "timeout":
        raise ToolError(f"py-spy dump of pid {pid} timed out after {timeout:.0f} s")
    stderr = res.stderr_tail
    if res.returncode != 0:
        _raise_for(stderr, Target(pid=pid))
        if not proc.alive(pid):
            raise TargetExited(f"pid {pid} exited during the dump")
        raise ToolError(f"py-spy dump failed for pid {pid}: {_last_lines(stderr)}")
    try:
        doc = json.loads(res.stdout)
    except ValueError:
        raise ToolError(f"py-spy dump gave unreadable output for pid {pid}") from None
    threads = []
    for t in doc:
        threads.append(ThreadStack(pid=int(t.get("pid", pid)), thread_id=int(t.get("thread_id", 0)),
                                   os_thread_id=t.get("os_thread_id"), name=t.get("thread_name"),
                                   active=bool(t.get("active")), owns_gil=bool(t.get("owns_gil")),
                                   frames=list(t.get("frames") or [])))
    return threads


__all__ = ["record", "dump", "RecordOptions", "RecordResult", "ThreadStack", "find_pyspy", "pyspy_version"]
