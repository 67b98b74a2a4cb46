"""The format registry: one module per format, imported on use.

Each format module exposes some of:
  ``NAME``                      the format's name
  ``read(data: bytes, source: str) -> Profile``   (raise InputFormatError on bad input)
  ``sniff(data: bytes) -> bool``                   cheap content check for auto-detection
  ``write(profile: Profile, **options) -> bytes``

Lossless formats (perfkit, pprof, speedscope, collapsed) live here; human views
(svg, html) live in ``perfkit.render`` and are registered here as write-only.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

from perfkit.errors import InputFormatError, UsageError

# name -> (module, suffixes, can_read)
FORMATS: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "perfkit": ("perfkit.formats.native", (".perfkit", ".perfkit.gz"), True),
    "pprof": ("perfkit.formats.pprof", (".pb.gz", ".pprof", ".pb", ".prof"), True),
    "speedscope": ("perfkit.formats.speedscope", (".speedscope.json", ".speedscope", ".json"), True),
    "collapsed": ("perfkit.formats.collapsed", (".collapsed", ".folded", ".txt"), True),
    "memray": ("perfkit.formats.memray_capture", (".bin", ".memray"), True),
    "svg": ("perfkit.render.flamegraph_svg", (".svg",), False),
    "html": ("perfkit.render.html_report", (".html", ".htm"), False),
}

# Formats whose sniff is definitive (a magic header): their suffix alone proves nothing.
DEFINITIVE_SNIFF = ("memray",)
# Order in which content sniffing tries readable formats.
SNIFF_ORDER = ("perfkit", "memray", "pprof", "speedscope", "collapsed")


def names(readable: bool | None = None) -> list[str]:
    return [n for n, (_, _, r) in FORMATS.items() if readable is None or r == readable]


def module(name: str) -> ModuleType:
    if name not in FORMATS:
        raise UsageError(f"unknown format {name!r}", f"known formats: {', '.join(names())}")
    return importlib.import_module(FORMATS[name][0])


def format_for_path(path: str | os.PathLike, explicit: str | None = None) -> str:
    """The format for an output path: ``explicit`` or from the file suffix."""
    if explicit:
        module(explicit)  # validates
        return explicit
    lower = str(path).lower()
    best = None
    for name, (_, suffixes, _) in FORMATS.items():
        for suffix in suffixes:
            if lower.endswith(suffix) and (best is None or len(suffix) > best[1]):
                best = (name, len(suffix))
    if best is None:
        raise UsageError(f"cannot tell the format of {path} from its name",
                         f"use a known suffix or --format ({', '.join(names())})")
    return best[0]


def read_profile(path: str | os.PathLike, fmt: str | None = None):
    """Read a profile file in any readable format.

    Without ``fmt`` the format is sniffed from the content, then taken from the
    suffix when sniffing is inconclusive.  Any failure of a reader on a damaged file
    becomes a one-line InputFormatError (exit 2) naming the file and what was expected.
    """
    try:
        return _read_profile(path, fmt)
    except (AttributeError, TypeError, ValueError, KeyError, IndexError, RecursionError, OverflowError,
            EOFError) as exc:  # a reader missed a damaged-file case: still one line, exit 2
        raise InputFormatError(f"{path} is damaged or not a profile ({type(exc).__name__})",
                               f"expected one of: {', '.join(names(readable=True))}") from None


def _read_profile(path: str | os.PathLike, fmt: str | None):
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"no such file: {p}") from None
    except IsADirectoryError:
        raise UsageError(f"{p} is a directory, not a profile file") from None
    except OSError as exc:
        raise UsageError(f"cannot read {p}: {exc.strerror}") from None
    if not data:
        raise InputFormatError(f"{p} is empty", f"expected a profile ({', '.join(names(readable=True))})")
    if fmt:
        mod = module(fmt)
        if not FORMATS[fmt][2]:
            raise UsageError(f"perfkit cannot read {fmt} files",
                             f"readable formats: {', '.join(names(readable=True))}")
        return _read_with(mod, p, data)
    for name in SNIFF_ORDER:
        if module(name).sniff(data):
            return _read_with(module(name), p, data)
    try:
        by_suffix = format_for_path(p)
    except UsageError:
        by_suffix = None
    if by_suffix is not None and FORMATS[by_suffix][2] and by_suffix not in DEFINITIVE_SNIFF:
        return _read_with(module(by_suffix), p, data)
    raise InputFormatError(f"{p} is not a profile perfkit can read",
                           f"expected one of: {', '.join(names(readable=True))}")


def _read_with(mod: ModuleType, path: Path, data: bytes):
    """A format that reads from a file (memray captures) gets the path; the others the bytes."""
    read_path = getattr(mod, "read_path", None)
    if read_path is not None:
        return read_path(path, str(path))
    return mod.read(data, str(path))


def write_profile(profile, path: str | os.PathLike, fmt: str | None = None, **options) -> str:
    """Render ``profile`` in ``fmt`` (or the path's suffix) and write it atomically, 0600."""
    from perfkit.fileio import atomic_write

    name = format_for_path(path, fmt)
    data = module(name).write(profile, **options)
    atomic_write(path, data)
    return name
