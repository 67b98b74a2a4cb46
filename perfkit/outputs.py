"""A command's ``-o`` files: checked before any work, written atomically, reported once.

Usage::

    outs = Outputs(paths, fmt, allowed={"svg", "html"})   # fails now (exit 2) on a bad path or format
    ...record...
    outs.write_profile(profile)                           # every path, 0600, temp + rename
    outs.report()                                         # "wrote cpu.svg (svg)" on stderr

``-o -`` writes to stdout (one of them at most, with ``--format``; not with ``--json``);
a command then prints its tables on stderr (:attr:`Outputs.console`).  A relative path
goes under ``[tool.perfkit] output_dir`` when the project sets one (created 0700).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Iterable

STDOUT = "-"

# The format names users bring from py-spy (``record -f``) and memray, mapped onto
# perfkit's own.  Applied wherever a format is named (-f/--format, --from, the API).
FORMAT_ALIASES: dict[str, str] = {
    "raw": "collapsed",          # py-spy -f raw: folded stacks
    "folded": "collapsed",       # inferno / flamegraph.pl
    "flamegraph": "svg",         # py-spy -f flamegraph: an SVG flame graph (memray's is HTML: use -f html)
    "speedscope": "speedscope",  # same name in py-spy
    "chrometrace": "chrometrace",  # py-spy -f chrometrace: Chrome trace events
}


def format_name(name: str) -> str:
    """perfkit's name for a format given by its own name or a py-spy/memray spelling."""
    from perfkit import formats
    from perfkit.errors import UsageError

    lower = name.strip().lower()
    canonical = FORMAT_ALIASES.get(lower, lower)
    known = formats.names()
    if canonical not in known and canonical in formats.ALIASES:
        canonical = formats.ALIASES[canonical]  # the registry's own aliases (pb, trace, native …)
    if canonical not in known:
        spelled = [a for a, c in FORMAT_ALIASES.items() if c in known and a != c]
        what = f"format {name!r} (py-spy's name) is not available here" if lower in FORMAT_ALIASES \
            else f"unknown format {name!r}"
        raise UsageError(what, f"known formats: {', '.join(known)}; also py-spy's {', '.join(spelled)}")
    return canonical


def format_choices() -> list[str]:
    """Every name -f accepts here: perfkit's formats and the aliases of those present."""
    from perfkit import formats

    known = set(formats.names())
    return sorted(known | {a for a, c in FORMAT_ALIASES.items() if c in known})


class Outputs:
    def __init__(self, paths: Iterable[Path | str] | None, fmt: str | None = None, *,
                 allowed: Iterable[str] | None = None, what: str = "a profile", as_json: bool = False,
                 output_dir: str | None = None) -> None:
        from perfkit.errors import UsageError
        from perfkit.fileio import check_writable
        from perfkit.formats import output_format

        self.fmt = format_name(fmt) if fmt else None
        self.as_json = as_json  # the command prints one JSON document on stdout
        self.plan: list[tuple[Path, str]] = []
        self.written: list[dict] = []
        self.to_stdout = False
        allowed = set(allowed) if allowed is not None else None
        given = [p for p in paths or []]
        if output_dir is None and any(str(p) != STDOUT and not Path(p).is_absolute() for p in given):
            from perfkit import config

            output_dir = config.load().output_dir
        for raw in given:
            if str(raw) == STDOUT:
                if self.to_stdout:
                    raise UsageError("-o - (stdout) is given twice", "write one format to stdout, the others to files")
                if as_json:
                    raise UsageError("-o - and --json both write to stdout", "drop one, or write the profile to a file")
                if not self.fmt:
                    raise UsageError("-o - writes to stdout: say which format with -f",
                                     "e.g. -o - -f raw (folded stacks), -f speedscope, -f pprof")
                self.to_stdout = True
                path, name = Path(STDOUT), output_format(STDOUT, self.fmt)
            else:
                path = Path(raw)
                if output_dir and not path.is_absolute():
                    path = Path(output_dir) / path
                name = output_format(path, self.fmt)  # a format with a writer
            if allowed is not None and name not in allowed:
                names = sorted(allowed)
                raise UsageError(f"cannot write {what} as {name} ({raw})",
                                 f"use an .{' or .'.join(names)} output (or --format {'|'.join(names)})")
            if path != Path(STDOUT):
                if output_dir and not path.parent.exists():
                    from perfkit.fileio import private_mkdir

                    private_mkdir(path.parent)
                check_writable(path)
            self.plan.append((path, name))

    def __bool__(self) -> bool:
        return bool(self.plan)

    def __iter__(self):
        return iter(self.plan)

    @property
    def console(self):
        """Where a command prints its human output: stdout, or stderr when stdout carries a profile."""
        from perfkit.console import err_console, out_console

        return err_console() if self.to_stdout else out_console()

    def write_profile(self, profile, *, choose: Callable[[Path, str], object] | None = None, **options) -> list[dict]:
        """Write ``profile`` (or ``choose(path, format)``'s profile) to every path."""
        from perfkit.formats import module, write_profile

        for path, name in self.plan:
            src = choose(path, name) if choose is not None else profile
            if path == Path(STDOUT):
                _stdout(_render(module(name), src, options))
            else:
                name = write_profile(src, path, name, **options)
            self.written.append({"path": str(path), "format": name})
        return self.written

    def write_bytes(self, render: Callable[[Path, str], bytes]) -> list[dict]:
        """Write what ``render(path, format)`` returns to every path."""
        from perfkit.fileio import atomic_write

        for path, name in self.plan:
            data = render(path, name)
            if path == Path(STDOUT):
                _stdout(data)
            else:
                atomic_write(path, data)
            self.written.append({"path": str(path), "format": name})
        return self.written

    def report(self) -> None:
        from perfkit.console import err_console

        for w in self.written:
            where = "stdout" if w["path"] == STDOUT else w["path"]
            err_console().print(f"wrote {where} ({w['format']})", markup=False, highlight=False)


def _render(mod, profile, options: dict) -> bytes:
    """A writer's bytes, passing only the options it takes (as write_profile does)."""
    import inspect

    write = mod.write
    params = inspect.signature(write).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return write(profile, **options)
    return write(profile, **{k: v for k, v in options.items() if k in params})


def _stdout(data: bytes | str) -> None:
    if isinstance(data, str):
        data = data.encode("utf-8")
    out = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else None
    if out is None:  # pragma: no cover - a replaced sys.stdout
        sys.stdout.write(data.decode("utf-8", "replace"))
        sys.stdout.flush()
        return
    sys.stdout.flush()
    out.write(data)
    out.flush()
