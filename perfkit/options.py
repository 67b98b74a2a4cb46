"""Command-line options shared by several commands, declared once, validated at parse time.

Every value is checked before any work starts (a bad ``--focus`` regex must not be
reported after a 30 s recording): regexes compile, durations are finite and bounded,
pids are positive.  A bad value raises :class:`perfkit.errors.UsageError` (exit 2,
one line, and a hint).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Callable, List, Optional

import typer

from perfkit.outputs import Outputs, format_choices, format_name

MAX_DURATION = 7 * 24 * 3600.0  # a week: long enough for any watch, short of "forever"


def _usage(message: str, hint: str | None = None):
    from perfkit.errors import UsageError

    return UsageError(message, hint)


def check_regex(flag: str):
    def callback(value: Optional[str]) -> Optional[str]:
        if value is None:
            return value
        try:
            re.compile(value)
        except re.error as exc:
            raise _usage(f"invalid {flag} regex {value!r}: {exc}",
                         "escape special characters, e.g. --focus 'handler\\(' or use a plain word") from None
        return value

    return callback


def check_duration(flag: str = "--duration", *, low: float = 0.1, high: float = MAX_DURATION):
    def callback(value: Optional[float]) -> Optional[float]:
        if value is None:
            return value
        if not math.isfinite(value):
            raise _usage(f"{flag} must be a finite number of seconds, not {value}",
                         f"give seconds between {low:g} and {high:g}")
        if not low <= value <= high:
            raise _usage(f"{flag} {value:g} is out of range", f"give seconds between {low:g} and {high:g}")
        return value

    return callback


def finite(flag: str, low: float, high: float, unit: str = ""):
    """A callback: the value is a finite number within [low, high] (typer's own range checks let inf through)."""

    def callback(value: Optional[float]) -> Optional[float]:
        if value is None:
            return value
        if not math.isfinite(value) or not low <= value <= high:
            raise _usage(f"{flag} {value:g} is out of range", f"give a number between {low:g} and {high:g}{unit}")
        return value

    return callback


def check_pids(value: Optional[List[int]]) -> Optional[List[int]]:
    for p in value or []:
        if p <= 0:
            raise _usage(f"invalid pid {p}", "pids are positive integers (ps aux | grep python)")
    return value


def check_pid(value: Optional[int]) -> Optional[int]:
    if value is not None and value <= 0:
        raise _usage(f"invalid pid {value}", "pids are positive integers (ps aux | grep python)")
    return value


# ------------------------------------------------------------- formats and their aliases
# (the alias table itself lives in perfkit.outputs, beside the writers)

def check_format(value: Optional[str]) -> Optional[str]:
    return format_name(value) if value is not None else None


def complete_formats(incomplete: str) -> list[str]:
    return [n for n in format_choices() if n.startswith(incomplete.lower())]


# ------------------------------------------------------------- project defaults

def project():
    """The project's ``[tool.perfkit]`` defaults (see :mod:`perfkit.config`)."""
    from perfkit import config

    return config.load()


def attach_duration(duration: Optional[float], attached: bool, fallback: Optional[float] = 10.0) -> Optional[float]:
    """``--duration`` as given; else, when attaching, ``[tool.perfkit] duration`` or ``fallback``.

    A launched program is recorded until it exits unless --duration says otherwise.
    """
    if duration is not None or not attached:
        return duration
    configured = project().duration
    return configured if configured is not None else fallback


def check_max_input(value: Optional[str]) -> Optional[str]:
    """--max-input SIZE: the reader input limit for this run (perfkit.formats.limits)."""
    if value is None:
        return value
    from perfkit.formats import limits

    limits.configure(max_input=limits.parse_size(value, "--max-input"))
    return value


def set_redaction(value: bool) -> bool:
    from perfkit import redact

    redact.set_enabled(not value)
    return value


def set_user_code(value: Optional[List[str]]) -> Optional[List[str]]:
    """--user-code: globs of files that count as yours (``!GLOB``: not yours), after the
    project's ``[tool.perfkit] user_code``."""
    from perfkit import paths

    paths.configure(list(project().user_code) + list(value or []))
    return value


# ----------------------------------------------------------------------- the options

NoRedact = Annotated[bool, typer.Option(
    "--no-redact", callback=set_redaction,
    help="Keep secrets (--token=…, PASSWORD=…, URL credentials, Authorization headers) found in the target's "
         "command line; by default they are written as REDACTED.")]

Command = Annotated[Optional[List[str]], typer.Argument(metavar="-- CMD ARGS", help="Command to launch (after --).",
                                                        show_default=False)]
Pid = Annotated[Optional[int], typer.Option("--pid", "-p", metavar="PID", callback=check_pid,
                                            help="Attach to this running process.", show_default=False)]
Duration = Annotated[Optional[float], typer.Option(
    "--duration", "-d", metavar="SECONDS", callback=check_duration(),
    help="Seconds to record [default: 10 with --pid, or [tool.perfkit] duration; until exit when launching].",
    show_default=False)]
Rate = Annotated[int, typer.Option("--rate", "-r", metavar="HZ", min=1, max=10000,
                                   help="Samples per second ([tool.perfkit] rate sets the default).")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
Output = Annotated[Optional[List[Path]], typer.Option(
    "--output", "-o", metavar="FILE",
    help="Write the profile (repeatable); format from the suffix: .perfkit .pb.gz .speedscope.json "
         ".trace.json .collapsed .pstats .svg .html; '-' is stdout (with -f)", show_default=False)]
Format = Annotated[Optional[str], typer.Option("--format", "-f", metavar="FORMAT", callback=check_format,
                                               autocompletion=complete_formats,
                                               help="Format for every -o file (overrides the suffix); py-spy's "
                                                    "raw, flamegraph, speedscope, chrometrace work too.",
                                               show_default=False)]
InFormat = Annotated[Optional[str], typer.Option("--from", metavar="FORMAT", callback=check_format,
                                                 autocompletion=complete_formats,
                                                 help="Input format (default: detected from content, then suffix).",
                                                 show_default=False)]
MaxInput = Annotated[Optional[str], typer.Option(
    "--max-input", metavar="SIZE", callback=check_max_input,
    help="Largest input read, decompressed (default 256M, or PERFKIT_MAX_INPUT); e.g. 2G.", show_default=False)]
Value = Annotated[Optional[str], typer.Option("--value", metavar="TYPE",
                                              help="Value type to weigh by (e.g. cpu, samples, alloc_space).",
                                              show_default=False)]
Focus = Annotated[Optional[str], typer.Option("--focus", metavar="REGEX", callback=check_regex("--focus"),
                                              help="Keep only stacks with a frame matching this regex.",
                                              show_default=False)]
Ignore = Annotated[Optional[str], typer.Option("--ignore", metavar="REGEX", callback=check_regex("--ignore"),
                                               help="Drop stacks with a frame matching this regex.",
                                               show_default=False)]
Thread = Annotated[Optional[str], typer.Option("--thread", metavar="ID|REGEX", callback=check_regex("--thread"),
                                               help="Keep only threads with this id or name (regex).",
                                               show_default=False)]
UserCode = Annotated[Optional[List[str]], typer.Option(
    "--user-code", metavar="GLOB", callback=set_user_code,
    help="Files that count as your code (repeatable; !GLOB: not yours), e.g. 'mypkg/*'. Default: everything "
         "outside the standard library, site-packages and perfkit/py-spy/memray; also [tool.perfkit] user_code.",
    show_default=False)]
ShowImports = Annotated[bool, typer.Option("--show-imports",
                                           help="Also list allocations made while importing modules (hidden by "
                                                "default; the footer says how much).")]
PidFilter = Annotated[Optional[List[int]], typer.Option("--pid", "-p", metavar="PID", callback=check_pids,
                                                        help="Keep only samples of this process (repeatable).",
                                                        show_default=False)]
ProfileIn = Annotated[Path, typer.Argument(metavar="IN", help="A profile: .perfkit, .pb.gz (pprof), speedscope "
                                           "JSON, Chrome trace, collapsed / py-spy raw, austin, memray capture "
                                           "(.bin).")]
Native = Annotated[bool, typer.Option("--native", "-n", help="Include native (C/C++/Cython) frames.")]
Top = Annotated[int, typer.Option("--top", metavar="N", min=1, help="Rows in the top table.")]


class Filters:
    """--focus / --ignore / --thread / --pid, applied to a profile in one place."""

    def __init__(self, focus: str | None = None, ignore: str | None = None, thread: str | None = None,
                 pids: list[int] | None = None) -> None:
        self.focus, self.ignore, self.thread, self.pids = focus, ignore, thread, pids

    def apply(self, profile):
        from perfkit.analysis import transforms

        return transforms.apply_filters(profile, focus_re=self.focus, ignore_re=self.ignore, thread=self.thread,
                                        pids=self.pids)

    @property
    def active(self) -> bool:
        return bool(self.focus or self.ignore or self.thread or self.pids)


# ------------------------------------------------------------------ shared option groups

def group(name: str, make: Callable[..., Any], options: dict[str, tuple[Any, Any]]):
    """Decorator: declares a group of options once for every command that takes it.

    ``options`` maps a parameter name to its (annotation, default).  Typer sees each
    option as a keyword-only parameter of the command; the command itself declares one
    keyword-only parameter ``name`` (no default needed) and receives
    ``make(**values)``, built before its body runs (so a bad value fails first).
    """
    import functools
    import inspect
    from typing import get_type_hints

    def wrap(func):
        hints = get_type_hints(func, include_extras=True)
        sig = inspect.signature(func)
        params = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in sig.parameters.values()
                  if p.name != name]
        params += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
                   for n, (annotation, default) in options.items()]

        @functools.wraps(func)
        def command(*args, **kwargs):
            values = {n: kwargs.pop(n) for n in options if n in kwargs}
            return func(*args, **{name: make(**values)}, **kwargs)

        command.__signature__ = sig.replace(parameters=params)
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return wrap


_FILTER_OPTIONS = {"focus": Focus, "ignore": Ignore, "thread": Thread, "pid": PidFilter}


def filters(*names: str):
    """--focus / --ignore / --thread / --pid (those named), passed as one :class:`Filters`
    argument ``filters``."""
    def make(focus=None, ignore=None, thread=None, pid=None) -> Filters:
        return Filters(focus, ignore, thread, pid)

    return group("filters", make, {n: (_FILTER_OPTIONS[n], None) for n in names})


def recording_outputs():
    """-o / -f / --json / --user-code / --no-redact of a command that records a profile,
    passed as one :class:`perfkit.outputs.Outputs` argument ``outputs``: the paths and
    format are checked before the target is touched."""
    def make(output=None, fmt=None, as_json=False, user_code=None, no_redact=False):
        return Outputs(output, fmt, as_json=as_json)  # user_code / no_redact act through their callbacks

    return group("outputs", make, {"output": (Output, None), "fmt": (Format, None), "user_code": (UserCode, None),
                                   "as_json": (Json, False), "no_redact": (NoRedact, False)})
