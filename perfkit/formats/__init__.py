"""The format registry: a table of formats that state their facts, modules imported on use.

Each :class:`Format` says what it is — name, suffixes, readable / writable, binary or
text, lossless (a round trip keeps the whole model) or a human view, whether it keeps
sample times — and which keyword options its writer takes.  A command passes its
options once (``write_profile(p, path, value=…, title=…)``); each writer receives only
the options it declares, and an option no format declares is a programming error.

A format module provides some of::

    read(data: bytes, source: str) -> Profile        raise InputFormatError on bad input
    read_path(path, source: str) -> Profile          when the reader opens the file itself
    sniff(data: bytes) -> bool                       cheap content check for auto-detection
    write(profile: Profile, *, <its options>) -> bytes

Readers take their input through :mod:`perfkit.formats.limits` (size, nesting, line
length).  Lossless formats (perfkit, pprof) are round-trip tested; views and other
tools' formats are golden / data tested and read back by their real consumer.

Public entry points: :func:`read_profile`, :func:`write_profile`, :func:`format_for_path`,
:func:`names`.  Aliases (``"pb"`` for pprof …) resolve everywhere a name is accepted.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from perfkit.errors import InputFormatError, UsageError, unreadable


@dataclass(frozen=True)
class Format:
    name: str
    module: str
    suffixes: tuple[str, ...]
    title: str
    reads: bool = False
    writes: bool = False
    binary: bool = False
    lossless: bool = False  # every field of the model survives a round trip
    timeline: bool = False  # keeps when each sample was seen
    options: tuple[str, ...] = ()  # keyword options of write()
    aliases: tuple[str, ...] = ()
    sniff_order: int | None = None  # content sniffing: lower first; None: never sniffed
    magic: bool = False  # its sniff is definitive (a magic header): the suffix alone proves nothing
    reads_path: bool = False  # the reader opens the file itself (memray)

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)

    def write(self, profile, **options) -> bytes:
        """Render ``profile``; options this writer does not declare are not passed to it."""
        kw = {k: v for k, v in options.items() if k in self.options}
        return self.load().write(profile, **kw)


_V, _T = "value", "title"
TABLE: tuple[Format, ...] = (
    Format("perfkit", "perfkit.formats.native", (".perfkit", ".perfkit.gz"),
           "perfkit's own lossless profile (gzipped JSON, sample times included)",
           reads=True, writes=True, binary=True, lossless=True, timeline=True, sniff_order=0, aliases=("native",)),
    Format("memray", "perfkit.formats.memray_capture", (".bin", ".memray"), "memray capture (memray run/attach -o)",
           reads=True, binary=True, sniff_order=1, magic=True, reads_path=True),
    Format("pprof", "perfkit.formats.pprof", (".pb.gz", ".pprof", ".pb", ".prof"),
           "pprof profile.proto (go tool pprof, Pyroscope, Parca, Grafana)",
           reads=True, writes=True, binary=True, lossless=True, options=("extra_labels",), sniff_order=2,
           aliases=("pb", "proto")),
    Format("chrometrace", "perfkit.formats.chrome_trace", (".trace.json", ".chrometrace.json", ".trace"),
           "Chrome trace events (Perfetto, chrome://tracing, speedscope; py-spy -f chrometrace)",
           reads=True, writes=True, timeline=True, options=(_V,), sniff_order=3, aliases=("trace", "chrome")),
    Format("speedscope", "perfkit.formats.speedscope", (".speedscope.json", ".speedscope", ".json"),
           "speedscope JSON (time-ordered when sample times are known)",
           reads=True, writes=True, timeline=True, options=(_V,), sniff_order=4),
    Format("austin", "perfkit.formats.austin", (".austin",), "austin's text output (P…;T…;file:function:line …)",
           reads=True, sniff_order=5),
    Format("collapsed", "perfkit.formats.collapsed", (".collapsed", ".folded", ".txt"),
           "collapsed / folded stacks (flamegraph.pl, inferno; py-spy -f raw)",
           reads=True, writes=True, options=(_V, "labels"), sniff_order=6, aliases=("folded",)),
    Format("pstats", "perfkit.formats.pstats_file", (".pstats",),
           "Python pstats (cProfile's format: pstats.Stats, snakeviz)", writes=True, binary=True, options=(_V,)),
    Format("svg", "perfkit.render.flamegraph_svg", (".svg",), "interactive flame graph (SVG)", writes=True,
           options=(_V, _T, "lines", "inverted")),
    Format("html", "perfkit.render.html_report", (".html", ".htm"), "HTML report with flame graph and tables",
           writes=True, options=(_V, _T)),
)
FORMATS: dict[str, Format] = {f.name: f for f in TABLE}
_ALIASES: dict[str, str] = {a: f.name for f in TABLE for a in f.aliases}
ALIASES = _ALIASES  # read-only view for callers (outputs.format_name)
ALL_OPTIONS = frozenset(o for f in TABLE for o in f.options)


def register_alias(alias: str, name: str) -> None:
    """Another name for a format (e.g. py-spy's own format names)."""
    get(name)
    if alias in FORMATS:
        raise ValueError(f"{alias!r} is already a format")
    _ALIASES[alias] = name


def get(name: str) -> Format:
    """The format called ``name`` (or one of its aliases); UsageError (exit 2) if unknown."""
    fmt = FORMATS.get(name) or FORMATS.get(_ALIASES.get(name, ""))
    if fmt is None:
        raise UsageError(f"unknown format {name!r}", f"known formats: {', '.join(names())}")
    return fmt


def names(readable: bool | None = None, writable: bool | None = None) -> list[str]:
    return [f.name for f in TABLE if (readable is None or f.reads == readable)
            and (writable is None or f.writes == writable)]


def module(name: str) -> ModuleType:
    return get(name).load()


def available(name: str) -> bool:
    """The format is known and its module imports (its optional dependencies are installed)."""
    try:
        get(name).load()
    except (UsageError, ImportError):
        return False
    return True


def format_for_path(path: str | os.PathLike, explicit: str | None = None) -> str:
    """The format for an output path: ``explicit`` (a name or alias) or from the file suffix."""
    if explicit:
        return get(explicit).name
    lower = str(path).lower()
    best = None
    for fmt in TABLE:
        for suffix in fmt.suffixes:
            if lower.endswith(suffix) and (best is None or len(suffix) > best[1]):
                best = (fmt.name, len(suffix))
    if best is None:
        raise UsageError(f"cannot tell the format of {path} from its name",
                         f"use a known suffix or --format ({', '.join(names(writable=True))})")
    return best[0]


def output_format(path: str | os.PathLike, explicit: str | None = None) -> str:
    """Like :func:`format_for_path`, for a file to write: the format must have a writer."""
    name = format_for_path(path, explicit)
    if not FORMATS[name].writes:
        raise UsageError(f"perfkit cannot write {name} files ({path})",
                         f"writable formats: {', '.join(names(writable=True))}")
    return name


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
    except MemoryError:
        raise InputFormatError(f"{path} is too large to read in memory",
                               "lower PERFKIT_MAX_INPUT, or convert a smaller recording") from None


def _sniff_order() -> list[Format]:
    return sorted((f for f in TABLE if f.reads and f.sniff_order is not None), key=lambda f: f.sniff_order or 0)


def _read_profile(path: str | os.PathLike, fmt: str | None):
    from perfkit.formats import limits

    p = Path(path)
    chosen = get(fmt) if fmt else None
    if chosen is not None and not chosen.reads:
        raise UsageError(f"perfkit cannot read {chosen.name} files",
                         f"readable formats: {', '.join(names(readable=True))}")
    try:
        if chosen is not None and chosen.reads_path:
            return _read_with(chosen, p, b"")
        if p.is_dir():
            raise IsADirectoryError
        data = limits.read_file(p, str(p)) if not _is_capture(p) else _head(p)
    except OSError as exc:
        raise unreadable(exc, p, "profile file") from None
    if not data:
        raise InputFormatError(f"{p} is empty", f"expected a profile ({', '.join(names(readable=True))})")
    if chosen is not None:
        return _read_with(chosen, p, data)
    for f in _sniff_order():
        if f.load().sniff(data):
            return _read_with(f, p, data)
    try:
        by_suffix = get(format_for_path(p))
    except UsageError:
        by_suffix = None
    if by_suffix is not None and by_suffix.reads and not by_suffix.magic:
        return _read_with(by_suffix, p, data)
    raise InputFormatError(f"{p} is not a profile perfkit can read",
                           f"expected one of: {', '.join(names(readable=True))}")


_CAPTURE_HEAD = 4096


def _is_capture(p: Path) -> bool:
    """A memray capture (read by memray from the file, streamed): only its head is sniffed here."""
    from perfkit.formats.memray_capture import sniff

    return sniff(_head(p))


def _head(p: Path) -> bytes:
    with open(p, "rb") as f:
        return f.read(_CAPTURE_HEAD)


def _read_with(fmt: Format, path: Path, data: bytes):
    """A format that reads from a file (memray captures) gets the path; the others the bytes."""
    mod = fmt.load()
    if fmt.reads_path:
        return mod.read_path(path, str(path))
    return mod.read(data, str(path))


def write_profile(profile, path: str | os.PathLike, fmt: str | None = None, **options) -> str:
    """Render ``profile`` in ``fmt`` (or the path's suffix) and write it atomically, 0600.

    ``options`` are the union of what the writers take (value, title, labels, lines,
    inverted); each writer gets only its own.  Returns the format's name.
    """
    from perfkit.fileio import atomic_write

    unknown = set(options) - ALL_OPTIONS
    if unknown:
        raise TypeError(f"no format takes the option(s) {', '.join(sorted(unknown))}")
    f = get(format_for_path(path, fmt))
    if not f.writes:
        raise UsageError(f"perfkit cannot write {f.name} files",
                         f"writable formats: {', '.join(names(writable=True))}")
    atomic_write(path, f.write(profile, **options))
    return f.name
