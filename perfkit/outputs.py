"""A command's ``-o`` files: checked before any work, written atomically, reported once.

Usage::

    outs = Outputs(paths, fmt, allowed={"svg", "html"})   # fails now (exit 2) on a bad path or format
    ...record...
    outs.write_profile(profile)                           # every path, 0600, temp + rename
    outs.report(as_json)                                  # "wrote cpu.svg (svg)" on stderr
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable


class Outputs:
    def __init__(self, paths: Iterable[Path] | None, fmt: str | None = None, *, allowed: Iterable[str] | None = None,
                 what: str = "a profile") -> None:
        from perfkit.errors import UsageError
        from perfkit.fileio import check_writable
        from perfkit.formats import format_for_path

        self.fmt = fmt
        self.plan: list[tuple[Path, str]] = []
        self.written: list[dict] = []
        allowed = set(allowed) if allowed is not None else None
        for path in paths or []:
            name = format_for_path(path, fmt)
            if allowed is not None and name not in allowed:
                names = sorted(allowed)
                raise UsageError(f"cannot write {what} as {name} ({path})",
                                 f"use an .{' or .'.join(names)} output (or --format {'|'.join(names)})")
            check_writable(path)
            self.plan.append((Path(path), name))

    def __bool__(self) -> bool:
        return bool(self.plan)

    def __iter__(self):
        return iter(self.plan)

    def write_profile(self, profile, *, choose: Callable[[Path, str], object] | None = None, **options) -> list[dict]:
        """Write ``profile`` (or ``choose(path, format)``'s profile) to every path."""
        from perfkit.formats import write_profile

        for path, _name in self.plan:
            src = choose(path, _name) if choose is not None else profile
            name = write_profile(src, path, self.fmt, **options)
            self.written.append({"path": str(path), "format": name})
        return self.written

    def write_bytes(self, render: Callable[[Path, str], bytes]) -> list[dict]:
        """Write what ``render(path, format)`` returns to every path."""
        from perfkit.fileio import atomic_write

        for path, name in self.plan:
            atomic_write(path, render(path, name))
            self.written.append({"path": str(path), "format": name})
        return self.written

    def report(self) -> None:
        from perfkit.console import err_console

        for w in self.written:
            err_console().print(f"wrote {w['path']} ({w['format']})", markup=False, highlight=False)
