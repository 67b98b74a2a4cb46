"""perfkit's Python API: what the command line does, callable from a program.

    from perfkit import api

    prof = api.record_cpu(pid=4242, duration=5)            # or command=["python", "app.py"]
    for row in api.top_functions(prof, limit=5):
        print(f"{row.self_pct:5.1f}%  {row.function}  {row.location}")
    api.write(prof, "cpu.svg")                              # format from the suffix, or fmt="raw" ...
    api.convert("cpu.perfkit", "cpu.pb.gz")

Errors are the command line's: every problem raises a :class:`PerfkitError` subclass
with ``.message``, ``.hint`` and ``.exit_code`` (2 usage or input, 3 target, 4 tool,
130 interrupted) — nothing here prints, and nothing calls ``sys.exit``.  Arguments are
validated before any work starts, as the CLI does.  The API never reads
``[tool.perfkit]``: what a program asks for is what it gets.

Guarantees are the CLI's too: every child (py-spy, memray, a launched program) dies
with the calling process, targets are never left stopped or traced, files are written
atomically with mode 0600.  Documented in docs/api.md.
"""

from __future__ import annotations

import os
from typing import Sequence

from perfkit.errors import (
    Finding,
    InputFormatError,
    Interrupted,
    NoSuchProcess,
    NotPython,
    OutputError,
    PerfkitError,
    PermissionDenied,
    TargetError,
    TargetExited,
    TargetStopped,
    ToolError,
    ToolMissing,
    UsageError,
)
from perfkit.model import Frame, HeapFacts, Labels, Profile, Recording, Sample, ValueType

# ------------------------------------------------------------------ recording


def record_cpu(pid: int | None = None, command: Sequence[str] | None = None, *, duration: float | None = None,
               rate: int = 100, idle: bool = False, gil: bool = False, native: bool = False,
               subprocesses: bool = False, nonblocking: bool = False, check: bool = False) -> Profile:
    """Sample CPU stacks of a live ``pid`` or a launched ``command`` with py-spy.

    ``duration``: seconds (default 10 when attaching; until the command exits when
    launching).  The profile carries ``cpu`` and ``samples`` values and a
    :class:`Recording` (rates, sample counts, ``interrupted``, ``target_exited``, and for
    a command its ``exit_code``).  ``check=True`` raises :class:`TargetError` (exit code 3,
    as the CLI) when a launched command fails; the profile is then ``exc.profile``.
    """
    from perfkit.tools import pyspy

    duration = _duration(duration)  # every argument is checked before the target is touched
    _rate(rate)
    if gil and idle:
        raise UsageError("gil and idle cannot be combined")
    target = _target(pid, command)
    if duration is None and target.pid is not None:
        duration = 10.0
    opts = pyspy.RecordOptions(duration=duration, rate=rate, idle=idle, gil=gil, native=native,
                               subprocesses=subprocesses, nonblocking=nonblocking)
    return _checked(pyspy.record(target, opts), target, check, "profile")


def capture_heap(pid: int | None = None, command: Sequence[str] | None = None, *, duration: float | None = None,
                 native: bool = False, trace_python_allocators: bool = False, check: bool = False) -> Profile:
    """Track allocations of a live ``pid`` (memray attach) or a launched Python ``command``.

    The profile's values are alloc_space, alloc_objects, inuse_space, inuse_objects;
    ``profile.recording.heap`` (:class:`HeapFacts`) holds the peak, RSS and totals.
    """
    from perfkit.tools import memray

    duration = _duration(duration)
    target = _target(pid, command)
    result = memray.capture(target, memray.MemrayOptions(duration=duration, native=native,
                                                         trace_python_allocators=trace_python_allocators))
    return _checked(result, target, check, "capture")


def _checked(result, target, check: bool, what: str) -> Profile:
    """The result's profile; with ``check``, a launched program that failed raises (the
    partial profile rides on the error as ``exc.profile``)."""
    from perfkit.target import failure

    failed = failure(result.program, " ".join(target.command))
    if check and failed:
        exc = TargetError(failed, f"the {what} covers its run until then (exc.profile)")
        exc.profile = result.profile  # type: ignore[attr-defined]
        raise exc
    return result.profile


def thread_stacks(pid: int, *, nonblocking: bool = True, native: bool = False, locals_: bool = False,
                  timeout: float = 10.0) -> list:
    """Every thread's current stack (``py-spy dump``): :class:`perfkit.tools.pyspy.ThreadStack` items."""
    from perfkit.target import check_pid
    from perfkit.tools import pyspy

    _pid(pid)
    check_pid(pid, allow_stopped=nonblocking)
    if native and nonblocking:
        raise UsageError("native and nonblocking cannot be combined", "py-spy pauses the target to unwind native code")
    return pyspy.dump(pid, nonblocking=nonblocking, native=native, locals_=locals_, timeout=_duration(timeout))


# ------------------------------------------------------------------ files

def read(path: str | os.PathLike, fmt: str | None = None) -> Profile:
    """Read a profile in any readable format (detected from content, then suffix; or ``fmt``)."""
    from perfkit.formats import read_profile
    from perfkit.outputs import format_name

    return read_profile(path, format_name(fmt) if fmt else None)


def write(profile: Profile, path: str | os.PathLike, fmt: str | None = None, *, value: str | None = None,
          title: str | None = None) -> str:
    """Write ``profile`` (format from the suffix, or ``fmt`` — py-spy's names work); returns the format."""
    from perfkit.outputs import Outputs

    _profile(profile)
    outs = Outputs([os.fspath(path)], fmt, output_dir="")
    if value is not None:
        profile.value_index(value)  # a clear UsageError before anything is written
    return outs.write_profile(profile, value=value, title=title)[0]["format"]


def render(profile: Profile, fmt: str, *, value: str | None = None, title: str | None = None) -> bytes:
    """The bytes ``write`` would put in a file of format ``fmt``."""
    from perfkit.formats import module
    from perfkit.outputs import _render, format_name

    _profile(profile)
    options = {k: v for k, v in (("value", value), ("title", title)) if v is not None}
    data = _render(module(format_name(fmt)), profile, options)
    return data.encode("utf-8") if isinstance(data, str) else data


def convert(src: str | os.PathLike, dst: str | os.PathLike, fmt: str | None = None, *,
            in_fmt: str | None = None) -> str:
    """Read ``src`` and write it to ``dst``; returns the format written."""
    return write(read(src, in_fmt), dst, fmt)


# ------------------------------------------------------------------ transforms (pure: new profiles)

def focus(profile: Profile, pattern: str) -> Profile:
    """Only stacks with a frame matching the regex."""
    from perfkit.analysis import transforms

    return transforms.focus(_profile(profile), _regex(pattern, "focus"))


def ignore(profile: Profile, pattern: str) -> Profile:
    """Without the stacks that have a frame matching the regex."""
    from perfkit.analysis import transforms

    return transforms.ignore(_profile(profile), _regex(pattern, "ignore"))


def only_threads(profile: Profile, spec: str) -> Profile:
    """Only threads whose id is ``spec`` or whose name matches it (regex)."""
    from perfkit.analysis import transforms

    return transforms.only_threads(_profile(profile), _regex(spec, "thread"))


def only_pids(profile: Profile, pids: Sequence[int]) -> Profile:
    from perfkit.analysis import transforms

    for p in pids:
        _pid(p)
    return transforms.only_pids(_profile(profile), set(pids))


def merge_threads(profile: Profile) -> Profile:
    """Samples merged across threads and processes (labels dropped)."""
    from perfkit.analysis import transforms

    return transforms.drop_labels(_profile(profile))


# ------------------------------------------------------------------ analyses

def top_functions(profile: Profile, *, value: str | None = None, limit: int | None = 15, by_line: bool = False,
                  sort: str = "self") -> list:
    """Functions (or lines) by self and total value: :class:`perfkit.analysis.top.TopRow` items."""
    from perfkit.analysis.top import top

    if sort not in ("self", "total"):
        raise UsageError(f"sort {sort!r}: choose self or total")
    p = _profile(profile)
    return top(p, p.value_index(value), by_line=by_line, limit=limit, sort=sort)


def by_thread(profile: Profile, *, value: str | None = None) -> list:
    """The value per thread: :class:`perfkit.analysis.top.ThreadRow` items."""
    from perfkit.analysis.top import by_thread as split

    p = _profile(profile)
    return split(p, p.value_index(value))


def diff(base: Profile, new: Profile, *, value: str | None = None):
    """What grew or shrank from ``base`` to ``new`` (each normalised to its total)."""
    from perfkit.analysis.diff import check_comparable
    from perfkit.analysis.diff import diff as compare

    check_comparable(_profile(base), _profile(new), value)
    return compare(base, new, value)


def heap_summary(profile: Profile, *, limit: int = 10, leaks: bool = False):
    """Peak, totals, top allocating lines and what stayed alive (:class:`perfkit.analysis.heap.HeapSummary`)."""
    from perfkit.analysis.heap import for_leaks, summarize

    p = _profile(profile)
    return summarize(for_leaks(p) if leaks else p, limit=limit)


def doctor(pid: int | None = None, *, probe: bool = True) -> list:
    """``perfkit doctor``'s checks (:class:`perfkit.preflight.Check` items; ``.ok``, ``.detail``, ``.hint``)."""
    from perfkit import preflight

    checks = preflight.host()
    if pid is not None:
        _pid(pid)
        checks += preflight.for_pid(pid, probe=probe)
    return checks


# ------------------------------------------------------------------ validation

def _target(pid, command):
    from perfkit.target import resolve

    if pid is not None:
        _pid(pid)
    if command is not None and (isinstance(command, (str, bytes)) or not all(isinstance(a, str) for a in command)):
        raise UsageError("command must be a list of strings, e.g. [\"python\", \"app.py\"]")
    return resolve(pid, list(command) if command else None)


def _pid(pid) -> int:
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        raise UsageError(f"invalid pid {pid!r}", "pids are positive integers")
    return pid


def _duration(value, default=None):
    from perfkit.options import check_duration

    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"duration must be a number of seconds, not {value!r}")
    return check_duration("duration")(float(value))


def _rate(rate) -> int:
    if isinstance(rate, bool) or not isinstance(rate, int) or not 1 <= rate <= 10000:
        raise UsageError(f"rate must be a whole number of samples per second, 1-10000, not {rate!r}")
    return rate


def _regex(pattern, what: str) -> str:
    from perfkit.options import check_regex

    if not isinstance(pattern, str):
        raise UsageError(f"{what} must be a regex string, not {pattern!r}")
    return check_regex(what)(pattern)


def _profile(profile) -> Profile:
    if not isinstance(profile, Profile):
        raise UsageError(f"expected a perfkit Profile, not {type(profile).__name__}",
                         "read one with perfkit.api.read(path) or record one with perfkit.api.record_cpu(...)")
    return profile


__all__ = [
    "record_cpu", "capture_heap", "thread_stacks", "read", "write", "render", "convert", "focus", "ignore",
    "only_threads", "only_pids", "merge_threads", "top_functions", "by_thread", "diff", "heap_summary", "doctor",
    "Profile", "Frame", "Labels", "Sample", "ValueType", "Recording", "HeapFacts",
    "PerfkitError", "UsageError", "InputFormatError", "OutputError", "TargetError", "NoSuchProcess", "NotPython",
    "PermissionDenied", "TargetExited", "TargetStopped", "ToolError", "ToolMissing", "Finding", "Interrupted",
]
