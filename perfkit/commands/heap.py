"""`perfkit heap`: which lines allocate, what stays alive, and the peak (memray)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)

JSON_SERIES_POINTS = 500


@app.command(context_settings={"allow_interspersed_args": False})
def heap(
    command: Optional[List[str]] = typer.Argument(None, help="Command to launch and track (after --)."),
    pid: Optional[int] = typer.Option(None, "--pid", "-p", help="Attach to this running process (memray attach, gdb)."),
    duration: Optional[float] = typer.Option(None, "--duration", "-d", min=0.1,
                                             help="Seconds to track [default: 10 with --pid (rounded up to whole "
                                                  "seconds); until exit when launching, else SIGINT at the end]."),
    native: bool = typer.Option(False, "--native", help="Also record native (C/C++) frames of each allocation."),
    trace_python_allocators: bool = typer.Option(False, "--trace-python-allocators",
                                                 help="Record every pymalloc allocation (exact counts, slower)."),
    leaks: bool = typer.Option(False, "--leaks", help="Focus on what stayed alive: outputs weigh by inuse_space."),
    from_file: Optional[Path] = typer.Option(None, "--from", help="Read an existing memray capture (FILE.bin) "
                                                                  "instead of tracking a process."),
    top_n: int = typer.Option(10, "--top", "-n", min=1, help="Rows in each table."),
    output: Optional[List[Path]] = typer.Option(None, "--output", "-o",
                                                help="Write the profile (repeatable); format from the suffix: "
                                                     ".perfkit .collapsed .speedscope.json .pb.gz .svg .html"),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="Format for every -o file (overrides the suffix)."),
    focus: Optional[str] = typer.Option(None, "--focus", help="Keep only stacks with a frame matching this regex."),
    ignore: Optional[str] = typer.Option(None, "--ignore", help="Drop stacks with a frame matching this regex."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON document on stdout."),
) -> None:
    """Track heap allocations with memray: top allocating lines, what stays alive, the peak.

    Examples:  perfkit heap --pid 4242 -d 30 -o heap.pb.gz      perfkit heap --leaks -o heap.svg -- python job.py
    """
    from perfkit.analysis import transforms
    from perfkit.analysis.heap import for_leaks, summarize
    from perfkit.formats import memray_capture
    from perfkit.tools import memray
    from perfkit.console import err_console, live_status, out_console, print_json, warn
    from perfkit.errors import EXIT_INTERRUPTED, UsageError
    from perfkit.fileio import check_writable
    from perfkit.formats import format_for_path, write_profile
    from perfkit.render.heap_view import HeapView
    from perfkit.target import resolve

    outputs = list(output or [])
    for path in outputs:  # fail before tracking, not after
        format_for_path(path, fmt)
        check_writable(path)

    if from_file is not None:
        if pid is not None or command:
            raise UsageError("--from reads a saved capture: give no --pid or command with it")
        profile = memray_capture.read_capture(from_file)
        rec = profile.recording
        rec.target = rec.target or str(from_file)
        result = memray.HeapResult(profile=profile, notes=list(rec.notes))
        if rec.heap is not None and not rec.heap.capture_complete:
            result.notes.append(memray_capture.incomplete_note(rec.heap))
            rec.notes = list(result.notes)
    else:
        target = resolve(pid, command)
        opts = memray.MemrayOptions(duration=duration, native=native, trace_python_allocators=trace_python_allocators)
        shown = duration if duration is not None else (10.0 if target.pid is not None else None)
        state = {"elapsed": 0.0, "phase": "starting", "pid": target.pid, "rss": None}

        def tick(info: dict) -> None:
            state.update(info)

        def line() -> str:
            total = f"/{shown:g}" if shown else ""
            rss = f" · RSS {state['rss'] / 1048576:.1f} MiB" if state.get("rss") else ""
            return (f"{state['phase']} {target.describe()} (memray) {state['elapsed']:.1f}{total} s{rss} · "
                    f"Ctrl-C stops, keeps the capture")

        with live_status(line):
            result = memray.capture(target, opts, on_tick=tick)
        profile = result.profile

    view_profile = for_leaks(profile) if leaks else profile
    view_profile = transforms.apply_filters(view_profile, focus_re=focus, ignore_re=ignore)
    summary = summarize(view_profile, limit=top_n)
    if focus or ignore:  # totals of the filtered view, not of the whole capture
        summary.alloc_bytes = view_profile.total(0)
        summary.alloc_count = view_profile.total(1)
        summary.inuse_bytes = view_profile.total(2)
        summary.inuse_count = view_profile.total(3)

    written = []
    for path in outputs:
        src = for_leaks(profile) if (leaks and path.suffix == ".perfkit") else profile
        name = write_profile(src if path.suffix == ".perfkit" else view_profile, path, fmt)
        written.append({"path": str(path), "format": name})

    if as_json:
        doc = profile.recording.to_json()
        doc.get("heap", {}).pop("peak_top", None)
        print_json({
            "command": "heap",
            **summary.to_json(),
            "leaks_view": leaks,
            "series": {k: _thin(v) for k, v in profile.series.items()},
            "outputs": written,
            "interrupted": result.interrupted,
            "target_exited": result.target_exited,
            "program": profile.recording.program,
            "recording": doc,
        })
    else:
        out_console().print(HeapView(summary, leaks=leaks, series=profile.series))
        if result.target_exited:
            warn("the target exited during the capture: this is what was captured until then")
        for w in written:
            err_console().print(f"wrote {w['path']} ({w['format']})", markup=False, highlight=False)
    if result.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)


def _thin(points: list) -> list:
    if len(points) <= JSON_SERIES_POINTS:
        return points
    step = -(-len(points) // JSON_SERIES_POINTS)
    return [max(points[i:i + step], key=lambda p: p[1]) for i in range(0, len(points), step)]

