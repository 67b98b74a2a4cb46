"""`perfkit flame`: render a saved profile as a flame graph (SVG/HTML) or a terminal call tree."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from perfkit import options as o

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)


@app.command()
@o.filters("focus", "ignore", "thread", "pid")
def flame(
    profile_path: o.ProfileIn,
    output: Annotated[Optional[List[Path]], typer.Option(
        "--output", "-o", metavar="FILE", help="Write a flame graph (repeatable): .svg or .html "
                                               "(any other format suffix converts).", show_default=False)] = None,
    fmt: o.Format = None,
    in_fmt: o.InFormat = None,
    max_input: o.MaxInput = None,
    tree: Annotated[bool, typer.Option("--tree", help="Print a top-down call tree in the terminal "
                                                            "(default without -o).")] = False,
    value: o.Value = None,
    title: Annotated[Optional[str], typer.Option("--title", metavar="TEXT", help="Title of the flame graph.",
                                                 show_default=False)] = None,
    min_pct: Annotated[float, typer.Option("--min-pct", metavar="PCT", min=0.0, max=100.0,
                                           help="--tree: hide frames under this % of the total.")] = 1.0,
    depth: Annotated[int, typer.Option("--depth", metavar="N", min=1, help="--tree: deepest level shown.")] = 40,
    lines: Annotated[bool, typer.Option("--lines", help="One box per line instead of per function.")] = False,
    inverted: Annotated[bool, typer.Option("--inverted", help="SVG: icicle (root on top).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a summary (and the tree with --tree) as JSON "
                                                         "on stdout.")] = False,
    *,
    filters: o.Filters,
) -> None:
    """Render a profile as an interactive flame graph or a call tree.

    \b
    Examples:
      perfkit flame cpu.perfkit -o cpu.svg
      perfkit flame cpu.pb.gz -o report.html
      perfkit flame cpu.perfkit --tree
    """
    from pathlib import Path

    from perfkit.console import print_json, warn
    from perfkit.formats import read_profile
    from perfkit.outputs import Outputs
    from perfkit.render.tree import CallTree

    outputs = Outputs([Path(p) for p in output or []], fmt, as_json=as_json)
    prof = filters.apply(read_profile(profile_path, in_fmt))
    vi = prof.value_index(value)
    vt = prof.sample_types[vi]
    if prof.total(vi) == 0:
        warn(f"{profile_path}: no {vt.type} left to draw (empty profile or filters matched nothing)")
    outputs.write_profile(prof, value=value, title=title, lines=lines, inverted=inverted)
    call_tree = (CallTree.of(prof, value, min_pct=min_pct, max_depth=depth, lines=lines)
                 if (tree or not outputs) else None)
    if as_json:
        doc = {"command": "flame", "input": str(profile_path), "value_type": str(vt), "total": prof.total(vi),
               "outputs": outputs.written}
        if call_tree is not None:
            doc["tree"] = call_tree.to_json()
        print_json(doc)
        return
    if call_tree is not None:
        outputs.console.print(call_tree)
    outputs.report()
