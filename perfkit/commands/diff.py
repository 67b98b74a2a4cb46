"""`perfkit diff`: compare two profiles — what grew or shrank, and a differential flame graph."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)

_WRITERS = {"svg": "perfkit.render.flamegraph_svg", "html": "perfkit.render.html_report"}


@app.command()
def diff(
    base_path: Path = typer.Argument(..., metavar="BASE", help="The 'before' profile."),
    new_path: Path = typer.Argument(..., metavar="NEW", help="The 'after' profile."),
    output: Optional[List[Path]] = typer.Option(None, "--output", "-o", help="Differential flame graph: .svg or .html (repeatable)."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="Output format: svg or html (overrides the suffix)."),
    in_fmt: Optional[str] = typer.Option(None, "--from", help="Input format of both files (default: detected)."),
    value: Optional[str] = typer.Option(None, "--value", help="Value type to compare (e.g. cpu, samples, alloc_space)."),
    top_n: int = typer.Option(20, "--top", "-n", min=1, help="Rows in the terminal table."),
    title: Optional[str] = typer.Option(None, "--title", help="Title of the flame graph."),
    focus: Optional[str] = typer.Option(None, "--focus", help="Keep only stacks with a frame matching this regex."),
    ignore: Optional[str] = typer.Option(None, "--ignore", help="Drop stacks with a frame matching this regex."),
    thread: Optional[str] = typer.Option(None, "--thread", help="Keep only threads with this id or name (regex)."),
    pid: Optional[List[int]] = typer.Option(None, "--pid", "-p", help="Keep only samples of this process (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as one JSON document on stdout."),
) -> None:
    """Compare BASE and NEW, each normalised to its total: which functions' share grew or shrank.

    Examples:  perfkit diff before.perfkit after.perfkit      perfkit diff before.pb.gz after.pb.gz -o diff.html
    """
    import importlib

    from perfkit.analysis import transforms
    from perfkit.analysis.diff import diff as compare
    from perfkit.console import err_console, out_console, print_json
    from perfkit.errors import UsageError
    from perfkit.fileio import atomic_write, check_writable
    from perfkit.formats import format_for_path
    from perfkit.formats import read_profile

    outputs = []
    for path in output or []:
        name = format_for_path(path, fmt)
        if name not in _WRITERS:
            raise UsageError(f"cannot write a diff as {name} ({path})", "use an .svg or .html output (or --format svg|html)")
        check_writable(path)
        outputs.append((path, name))
    profiles = []
    for path in (base_path, new_path):
        prof = read_profile(path, in_fmt)
        profiles.append(transforms.apply_filters(prof, focus_re=focus, ignore_re=ignore, thread=thread, pids=pid))
    base, new = profiles
    result = compare(base, new, value)
    result.limit = top_n
    written = []
    for path, name in outputs:
        data = importlib.import_module(_WRITERS[name]).write_diff(base, new, value=value, title=title)
        atomic_write(path, data)
        written.append({"path": str(path), "format": name})
    if as_json:
        doc = {"command": "diff", "base": str(base_path), "new": str(new_path), **result.to_json(), "outputs": written}
        print_json(doc)
        return
    out_console().print(result)
    for w in written:
        err_console().print(f"wrote {w['path']} ({w['format']})", markup=False, highlight=False)
