"""`perfkit convert`: any readable profile format to any writer (format from the suffix or --format)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)


@app.command()
def convert(
    profile_path: Path = typer.Argument(..., metavar="IN", help="A profile: .perfkit, .pb.gz (pprof), speedscope JSON, collapsed."),
    output: List[Path] = typer.Option(..., "--output", "-o", help="Output file (repeatable); format from the suffix: "
                                      ".perfkit .pb.gz .speedscope.json .collapsed .svg .html"),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="Output format, overriding the suffix "
                                      "(perfkit, pprof, speedscope, collapsed, svg, html)."),
    in_fmt: Optional[str] = typer.Option(None, "--from", help="Input format (default: detected from content, then suffix)."),
    value: Optional[str] = typer.Option(None, "--value", help="Value type for single-valued outputs (collapsed, speedscope, svg)."),
    labels: bool = typer.Option(False, "--labels", help="collapsed: keep pid/thread as a leading [pid=… tid=… thread=…] frame."),
    focus: Optional[str] = typer.Option(None, "--focus", help="Keep only stacks with a frame matching this regex."),
    ignore: Optional[str] = typer.Option(None, "--ignore", help="Drop stacks with a frame matching this regex."),
    thread: Optional[str] = typer.Option(None, "--thread", help="Keep only threads with this id or name (regex)."),
    pid: Optional[List[int]] = typer.Option(None, "--pid", "-p", help="Keep only samples of this process (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print what was written as JSON on stdout."),
) -> None:
    """Convert a profile between formats.

    Examples:  perfkit convert cpu.perfkit -o cpu.pb.gz      perfkit convert py-spy.json -o out.collapsed
    """
    from perfkit.analysis import transforms
    from perfkit.console import err_console, print_json
    from perfkit.fileio import check_writable
    from perfkit.formats import format_for_path, write_profile
    from perfkit.formats import read_profile

    for path in output:
        format_for_path(path, fmt)
        check_writable(path)
    prof = read_profile(profile_path, in_fmt)
    prof = transforms.apply_filters(prof, focus_re=focus, ignore_re=ignore, thread=thread, pids=pid)
    if value is not None:
        prof.value_index(value)  # validate early: one clear error
    written = []
    for path in output:
        name = write_profile(prof, path, fmt, value=value, labels=labels)
        written.append({"path": str(path), "format": name})
    vi = prof.value_index(value)
    if as_json:
        print_json({"command": "convert", "input": str(profile_path), "outputs": written,
                    "samples": len(prof.samples), "frames": len(prof.frames),
                    "value_types": [str(vt) for vt in prof.sample_types], "total": prof.total(vi)})
        return
    for w in written:
        err_console().print(f"wrote {w['path']} ({w['format']})", markup=False, highlight=False)
