"""`perfkit heap`: which lines allocate, what stays alive, and the peak (memray)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from perfkit import options as o

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)

JSON_SERIES_POINTS = 500


@app.command(context_settings={"allow_interspersed_args": False})
@o.filters("focus", "ignore")
@o.recording_outputs()
def heap(
    command: o.Command = None,
    pid: Annotated[Optional[int], typer.Option("--pid", "-p", metavar="PID", callback=o.check_pid,
                                               help="Attach to this running process (memray attach, gdb).",
                                               show_default=False)] = None,
    duration: Annotated[Optional[float], typer.Option(
        "--duration", "-d", metavar="SECONDS", callback=o.check_duration(),
        help="Seconds to track [default: 10 with --pid, or [tool.perfkit] duration (rounded up to whole "
             "seconds); until exit when launching, else SIGINT at the end].", show_default=False)] = None,
    native: Annotated[bool, typer.Option("--native", "-n", help="Also record native (C/C++) frames of each "
                                                                "allocation.")] = False,
    trace_python_allocators: Annotated[bool, typer.Option(
        "--trace-python-allocators", help="Record every pymalloc allocation (exact counts, slower).")] = False,
    leaks: Annotated[bool, typer.Option("--leaks", help="Focus on what stayed alive: outputs weigh by "
                                                        "inuse_space.")] = False,
    from_file: Annotated[Optional[Path], typer.Option(
        "--from", metavar="FILE.bin", help="Read an existing memray capture instead of tracking a process.",
        show_default=False)] = None,
    top_n: Annotated[int, typer.Option("--top", metavar="N", min=1, help="Rows in each table.")] = 10,
    show_imports: o.ShowImports = False,
    *,
    filters: o.Filters,
    outputs: o.Outputs,
) -> None:
    """Track heap allocations with memray: top allocating lines, what stays alive, the peak.

    \b
    Examples:
      perfkit heap --pid 4242 -d 30 -o heap.pb.gz
      perfkit heap --leaks -o heap.svg -- python job.py
      perfkit heap --from capture.bin -o heap.html
    """
    # Only what launching needs is imported first; the report's modules load while the
    # launched command runs (``while_running``), not after it.
    from perfkit.console import live_status
    from perfkit.errors import EXIT_INTERRUPTED, TargetError, UsageError
    from perfkit.formats import memray_capture
    from perfkit.target import failure, resolve
    from perfkit.tools import memray

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
        duration = o.attach_duration(duration, target.pid is not None, fallback=None)
        opts = memray.MemrayOptions(duration=duration, native=native, trace_python_allocators=trace_python_allocators)
        shown = duration if duration is not None else (10.0 if target.pid is not None else None)
        state: dict[str, Any] = {"elapsed": 0.0, "phase": "starting", "pid": target.pid, "rss": None}

        def tick(info: dict) -> None:
            state.update(info)

        def line() -> str:
            total = f"/{shown:g}" if shown else ""
            rss = f" · RSS {state['rss'] / 1048576:.1f} MiB" if state.get("rss") else ""
            return (f"{state['phase']} {target.describe()} (memray) {state['elapsed']:.1f}{total} s{rss} · "
                    f"Ctrl-C stops, keeps the capture")

        with live_status(line):
            result = memray.capture(target, opts, on_tick=tick, while_running=lambda: _report_modules(outputs))
        profile = result.profile

    from rich.text import Text

    from perfkit.analysis import hints
    from perfkit.analysis.heap import for_leaks, summarize
    from perfkit.console import plain, print_json, warn
    from perfkit.render.heap_view import HeapView

    view_profile = for_leaks(profile) if leaks else profile
    view_profile = filters.apply(view_profile)
    summary = summarize(view_profile, limit=top_n, show_imports=show_imports)
    if filters.active:  # totals of the filtered view, not of the whole capture
        summary.alloc_bytes = view_profile.total(0)
        summary.alloc_count = view_profile.total(1)
        summary.inuse_bytes = view_profile.total(2)
        summary.inuse_count = view_profile.total(3)

    lossless = for_leaks(profile) if leaks else profile  # a .perfkit file keeps every stack, unfiltered
    written = outputs.write_profile(view_profile,
                                    choose=lambda path, name: lossless if name == "perfkit" else view_profile)

    if outputs.as_json:
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
            "hints": hints.for_heap(summary, native=native, show_imports=show_imports),
        })
    else:
        outputs.console.print(HeapView(summary, leaks=leaks, series=profile.series))
        for h in hints.for_heap(summary, native=native, show_imports=show_imports):
            outputs.console.print(Text("hint: " + plain(h), style="dim"))
        if result.target_exited:
            warn(next((n for n in result.notes if "exec'd into" in n),
                      "the target exited during the capture: this is what was captured until then"))
        outputs.report()
        if profile.recording.redacted:
            warn("secrets on the target's command line were written as REDACTED (--no-redact keeps them)")
    if result.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    failed = failure(result.program, " ".join(command or []))
    if failed:  # the capture is written; the program's own failure is the result
        raise TargetError(failed, "its output is above; the capture covers its run until then")


def _report_modules(outputs) -> None:
    """Import what the report and the ``-o`` writers need (run while the launched command runs)."""
    import rich.text  # noqa: F401

    import perfkit.analysis.heap  # noqa: F401
    import perfkit.analysis.hints  # noqa: F401
    import perfkit.render.heap_view  # noqa: F401
    from perfkit.formats import module

    for _, name in outputs.plan:
        module(name)


def _thin(points: list) -> list:
    if len(points) <= JSON_SERIES_POINTS:
        return points
    step = -(-len(points) // JSON_SERIES_POINTS)
    return [max(points[i:i + step], key=lambda p: p[1]) for i in range(0, len(points), step)]

