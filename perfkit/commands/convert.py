"""`perfkit convert`: any readable profile format to any writer (format from the suffix or --format)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List

import typer

from perfkit import options as o

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)


@app.command()
@o.filters("focus", "ignore", "thread", "pid")
def convert(
    profile_path: o.ProfileIn,
    output: Annotated[List[Path], typer.Option(
        "--output", "-o", metavar="FILE", help="Output file (repeatable); format from the suffix: "
                                               ".perfkit .pb.gz .speedscope.json .trace.json .collapsed .pstats .svg "
                                               ".html; '-' is stdout "
                                               "(with -f)")],
    fmt: o.Format = None,
    in_fmt: o.InFormat = None,
    max_input: o.MaxInput = None,
    value: o.Value = None,
    labels: Annotated[bool, typer.Option("--labels", help="collapsed: keep pid/thread as a leading "
                                                          "[pid=… tid=… thread=…] frame.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was written as JSON on stdout.")] = False,
    *,
    filters: o.Filters,
) -> None:
    """Convert a profile between formats.

    \b
    Examples:
      perfkit convert cpu.perfkit -o cpu.pb.gz
      perfkit convert py-spy.json -o out.collapsed
      perfkit convert cpu.perfkit -o - -f raw | flamegraph.pl > cpu.svg
    """
    from perfkit.console import print_json
    from perfkit.formats import read_profile
    from perfkit.outputs import Outputs

    outputs = Outputs(output, fmt, as_json=as_json)
    prof = filters.apply(read_profile(profile_path, in_fmt))
    vi = prof.value_index(value)  # validate early: one clear error
    outputs.write_profile(prof, value=value, labels=labels)
    if as_json:
        print_json({"command": "convert", "input": str(profile_path), "outputs": outputs.written,
                    "samples": len(prof.samples), "frames": len(prof.frames),
                    "value_types": [str(vt) for vt in prof.sample_types], "total": prof.total(vi)})
        return
    outputs.report()
