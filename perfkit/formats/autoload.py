"""Reading a profile file for ``flame``/``convert``/``diff``: content sniffing first, then
the format its suffix names (so a file whose content sniffing is inconclusive, e.g. a
``.perfkit`` file whose magic key sits beyond the sniffed prefix, still reads), and a
one-line error naming the file and the expected format otherwise.
"""

from __future__ import annotations

import os

from perfkit.errors import InputFormatError, UsageError


def load(path: str | os.PathLike, fmt: str | None = None):
    """A profile from ``path``; any reader failure becomes a one-line InputFormatError."""
    try:
        return _load(path, fmt)
    except (AttributeError, TypeError, ValueError, KeyError, IndexError, RecursionError, OverflowError,
            EOFError) as exc:  # a reader missed a damaged-file case: still one line, exit 2
        raise InputFormatError(f"{path} is damaged or not a profile ({type(exc).__name__})",
                               "expected one of: perfkit, pprof, speedscope, collapsed") from None


def _load(path: str | os.PathLike, fmt: str | None = None):
    from perfkit.formats import FORMATS, format_for_path, read_profile

    if fmt:
        if fmt not in FORMATS or not FORMATS[fmt][2]:
            raise UsageError(f"perfkit cannot read {fmt!r} files", "readable formats: perfkit, pprof, speedscope, collapsed")
        return read_profile(path, fmt)
    try:
        return read_profile(path)
    except InputFormatError:
        try:
            by_suffix = format_for_path(path)
        except UsageError:
            by_suffix = None
        if by_suffix is None or not FORMATS[by_suffix][2]:
            raise
        return read_profile(path, by_suffix)
