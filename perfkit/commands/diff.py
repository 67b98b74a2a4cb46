"""`perfkit diff`: compare two profiles — what grew or shrank, and a differential flame graph."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from perfkit import options as o

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)

_WRITERS = {"svg": "perfkit.render.flamegraph_svg", "html": "perfkit.render.html_report"}


def _check_sort(value: str) -> str:
    from perfkit.analysis.diff import SORTS
    from perfkit.errors import UsageError

    if value not in SORTS:
        raise UsageError(f"unknown --sort {value!r}", f"use one of: {', '.join(SORTS)}")
    return value


@app.command()
@o.filters("focus", "ignore", "thread", "pid")
def diff(
    base_path: Annotated[Path, typer.Argument(metavar="BASE", help="The 'before' profile.")],
    new_path: Annotated[Path, typer.Argument(metavar="NEW", help="The 'after' profile.")],
    output: Annotated[Optional[List[Path]], typer.Option(
        "--output", "-o", metavar="FILE", help="Differential flame graph: .svg or .html (repeatable).",
        show_default=False)] = None,
    fmt: Annotated[Optional[str], typer.Option("--format", "-f", metavar="FORMAT", callback=o.check_format,
                                               autocompletion=o.complete_formats,
                                               help="Output format: svg or html (overrides the suffix).",
                                               show_default=False)] = None,
    in_fmt: o.InFormat = None,
    max_input: o.MaxInput = None,
    value: Annotated[Optional[str], typer.Option(
        "--value", metavar="TYPE", help="Value type to compare; both profiles must have it "
                                        "(e.g. cpu, samples, alloc_space).", show_default=False)] = None,
    top_n: Annotated[int, typer.Option("--top", metavar="N", min=1, help="Rows in the terminal table.")] = 20,
    sort: Annotated[str, typer.Option("--sort", metavar="ORDER", callback=_check_sort,
                                      help="change (the larger of |self Δ| and |total Δ|), self, total, abs "
                                           "(per-second change) or name.")] = "change",
    title: Annotated[Optional[str], typer.Option("--title", metavar="TEXT", help="Title of the flame graph.",
                                                 show_default=False)] = None,
    user_code: o.UserCode = None,
    as_json: o.Json = False,
    *,
    filters: o.Filters,
) -> None:
    """Compare BASE and NEW: what changed most (self or total), per second and as shares, beyond noise.

    \b
    Examples:
      perfkit diff before.perfkit after.perfkit
      perfkit diff before.pb.gz after.pb.gz -o diff.html
    """
    import importlib

    from perfkit.analysis.diff import check_comparable
    from perfkit.analysis.diff import diff as compare
    from perfkit.console import print_json
    from perfkit.formats import read_profile
    from perfkit.outputs import Outputs
    from perfkit.render.diff_view import DiffView

    outputs = Outputs(output, fmt, allowed=_WRITERS, what="a diff", as_json=as_json)
    base, new = (filters.apply(read_profile(path, in_fmt)) for path in (base_path, new_path))
    check_comparable(base, new, value)
    result = compare(base, new, value, sort=sort)
    result.limit = top_n
    outputs.write_bytes(lambda path, name: importlib.import_module(_WRITERS[name]).write_diff(
        base, new, value=value, title=title))
    if as_json:
        print_json({"command": "diff", "base": str(base_path), "new": str(new_path), **result.to_json(),
                    "outputs": outputs.written})
        return
    outputs.console.print(DiffView(result))
    outputs.report()
