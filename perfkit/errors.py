"""Error types and the exit codes they carry.

Library code raises these; exactly one boundary (``perfkit.cli.main``) turns them
into a one- or two-line message on stderr and the process exit code.  Anything
else that escapes is a bug and shows a traceback only with ``--debug``.

Exit codes (documented in README):
  0   done
  1   a finding the user asked to fail on (gate regression, --fail-on-leak)
  2   usage error: bad flag, bad config, unreadable/corrupt input, unwritable output
  3   target problem: no such pid, not Python, exited, permission denied
  4   a required tool is missing or failed (py-spy, memray, gdb, valgrind)
  130 interrupted (partial results still written)
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FINDING = 1
EXIT_USAGE = 2
EXIT_TARGET = 3
EXIT_TOOL = 4
EXIT_INTERRUPTED = 130


class PerfkitError(Exception):
    """Base class: a message, an optional hint (how to fix it) and an exit code."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, hint: str | None = None, *, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message if not self.hint else f"{self.message}\n{self.hint}"


class UsageError(PerfkitError):
    exit_code = EXIT_USAGE


class InputFormatError(UsageError):
    """An input file is corrupt, truncated, empty or of the wrong format."""


class OutputError(UsageError):
    """An output path cannot be written (missing dir, permission, disk full)."""


class TargetError(PerfkitError):
    exit_code = EXIT_TARGET


class NoSuchProcess(TargetError):
    pass


class NotPython(TargetError):
    pass


class PermissionDenied(TargetError):
    pass


class TargetExited(TargetError):
    pass


class TargetStopped(TargetError):
    """The target is stopped (SIGSTOP or a debugger): perfkit never resumes it."""


class TargetBlocked(TargetError):
    """The target runs no code (every thread blocked), so nothing can be injected into it."""


class TargetReplaced(TargetExited):
    """The pid exec'd into another program (or now belongs to another process)."""


class ToolError(PerfkitError):
    exit_code = EXIT_TOOL


class ToolMissing(ToolError):
    pass


class Finding(PerfkitError):
    """The user asked to fail on this finding (regression, leak)."""

    exit_code = EXIT_FINDING


class Interrupted(PerfkitError):
    exit_code = EXIT_INTERRUPTED


def unreadable(exc: OSError, path: object, what: str) -> UsageError:
    """One line for a file perfkit could not open: ``what`` names its role ("config file", "profile")."""
    if isinstance(exc, FileNotFoundError):
        return UsageError(f"no such file: {path} (the {what} does not exist)")
    if isinstance(exc, IsADirectoryError):
        return UsageError(f"{path} is a directory, not a {what}")
    return UsageError(f"cannot read {what} {path}: {exc.strerror or exc}")
