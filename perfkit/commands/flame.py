"""`perfkit flame`: render a saved profile as a flame graph (SVG/HTML) or a terminal call tree."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)


@app.command()
def flame(
    profile_path: Path = typer.Argument(..., metavar="IN", help="A profile: .perfkit, .pb.gz (pprof), speedscope JSON, collapsed."),
    output: Optional[List[Path]] = typer.Option(None, "--output", "-o", help="Write a flame graph (repeatable): .svg or .html "
                                                "(any other format suffix converts)."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="Output format, overriding the suffix (svg, html, ...)."),
    in_fmt: Optional[str] = typer.Option(None, "--from", help="Input format (default: detected from content, then suffix)."),
    tree: bool = typer.Option(False, "--tree", "-t", help="Print a top-down call tree in the terminal (default without -o)."),
    value: Optional[str] = typer.Option(None, "--value", help="Value type to weight by (e.g. cpu, samples, alloc_space)."),
    title: Optional[str] = typer.Option(None, "--title", help="Title of the flame graph."),
    min_pct: float = typer.Option(1.0, "--min-pct", min=0.0, max=100.0, help="--tree: hide frames under this % of the total."),
    depth: int = typer.Option(40, "--depth", min=1, help="--tree: deepest level shown."),
    lines: bool = typer.Option(False, "--lines", help="One box per line instead of per function."),
    inverted: bool = typer.Option(False, "--inverted", help="SVG: icicle (root on top)."),
    focus: Optional[str] = typer.Option(None, "--focus", help="Keep only stacks with a frame matching this regex."),
    ignore: Optional[str] = typer.Option(None, "--ignore", help="Drop stacks with a frame matching this regex."),
    thread: Optional[str] = typer.Option(None, "--thread", help="Keep only threads with this id or name (regex)."),
    pid: Optional[List[int]] = typer.Option(None, "--pid", "-p", help="Keep only samples of this process (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print a summary (and the tree with --tree) as JSON on stdout."),
) -> None:
    """Render a profile as an interactive flame graph or a call tree.

    Examples:  perfkit flame cpu.perfkit -o cpu.svg      perfkit flame cpu.pb.gz -o report.html      perfkit flame cpu.perfkit --tree
    """
    from perfkit.analysis import transforms
    from perfkit.console import err_console, out_console, print_json, warn
    from perfkit.fileio import check_writable
    from perfkit.formats import format_for_path, write_profile
    from perfkit.formats import read_profile
    from perfkit.render.tree import CallTree

    outputs = list(output or [])
    for path in outputs:
        format_for_path(path, fmt)
        check_writable(path)
    prof = read_profile(profile_path, in_fmt)
    prof = transforms.apply_filters(prof, focus_re=focus, ignore_re=ignore, thread=thread, pids=pid)
    vi = prof.value_index(value)
    vt = prof.sample_types[vi]
    if prof.total(vi) == 0:
        warn(f"{profile_path}: no {vt.type} left to draw (empty profile or filters matched nothing)")
    written = []
    for path in outputs:
        name = write_profile(prof, path, fmt, value=value, title=title, lines=lines, inverted=inverted)
        written.append({"path": str(path), "format": name})
    call_tree = CallTree.of(prof, value, min_pct=min_pct, max_depth=depth, lines=lines) if (tree or not outputs) else None
    if as_json:
        doc = {"command": "flame", "input": str(profile_path), "value_type": str(vt), "total": prof.total(vi),
               "outputs": written}
        if call_tree is not None:
            doc["tree"] = call_tree.to_json()
        print_json(doc)
        return
    if call_tree is not None:
        out_console().print(call_tree)
    for w in written:
        err_console().print(f"wrote {w['path']} ({w['format']})", markup=False, highlight=False)
