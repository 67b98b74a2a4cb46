"""`perfkit cpu`: where does the CPU go in a live or launched Python process."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)


@app.command(context_settings={"allow_interspersed_args": False})
def cpu(
    command: Optional[List[str]] = typer.Argument(None, help="Command to launch and profile (after --)."),
    pid: Optional[int] = typer.Option(None, "--pid", "-p", help="Attach to this running process."),
    duration: Optional[float] = typer.Option(None, "--duration", "-d", min=0.1,
                                             help="Seconds to record [default: 10 with --pid; until exit when launching]."),
    rate: int = typer.Option(100, "--rate", "-r", min=1, max=10000, help="Samples per second."),
    idle: bool = typer.Option(False, "--idle", help="Include idle (waiting) threads; values become wall time."),
    gil: bool = typer.Option(False, "--gil", help="Only sample the thread holding the GIL."),
    native: bool = typer.Option(False, "--native", help="Include native (C/C++/Cython) frames."),
    subprocesses: bool = typer.Option(False, "--subprocesses", "-s", help="Also profile child processes (labelled by pid)."),
    nonblocking: bool = typer.Option(False, "--nonblocking", help="Never pause the target (less accurate)."),
    top_n: int = typer.Option(15, "--top", "-n", min=1, help="Rows in the top table."),
    by_thread: bool = typer.Option(False, "--by-thread", help="Also show the split by thread and process."),
    by_line: bool = typer.Option(False, "--by-line", help="Rank lines instead of functions."),
    output: Optional[List[Path]] = typer.Option(None, "--output", "-o",
                                                help="Write the profile (repeatable); format from the suffix: "
                                                     ".perfkit .collapsed .speedscope.json .pb.gz .svg .html"),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="Format for every -o file (overrides the suffix)."),
    focus: Optional[str] = typer.Option(None, "--focus", help="Keep only stacks with a frame matching this regex."),
    ignore: Optional[str] = typer.Option(None, "--ignore", help="Drop stacks with a frame matching this regex."),
    thread: Optional[str] = typer.Option(None, "--thread", help="Keep only threads with this id or name (regex)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON document on stdout."),
) -> None:
    """Sample CPU stacks with py-spy and show where time goes.

    Examples:  perfkit cpu --pid 4242 -d 20 -o cpu.svg      perfkit cpu -o out.speedscope.json -- python app.py
    """
    from perfkit.analysis import transforms
    from perfkit.analysis.top import by_thread as thread_split
    from perfkit.analysis.top import top
    from perfkit.tools import pyspy
    from perfkit.console import err_console, live_status, out_console, print_json, warn
    from perfkit.errors import EXIT_INTERRUPTED, UsageError
    from perfkit.fileio import check_writable
    from perfkit.formats import format_for_path, write_profile
    from perfkit.render.terminal import QualityLine, ThreadTable, TopTable
    from perfkit.target import resolve

    target = resolve(pid, command)
    outputs = list(output or [])
    for path in outputs:  # fail before recording, not after
        format_for_path(path, fmt)
        check_writable(path)
    if gil and idle:
        raise UsageError("--gil and --idle cannot be combined")
    if duration is None and target.pid is not None:
        duration = 10.0
    opts = pyspy.RecordOptions(duration=duration, rate=rate, idle=idle, gil=gil, native=native,
                               subprocesses=subprocesses, nonblocking=nonblocking)

    state = {"elapsed": 0.0, "pid": target.pid, "cpu": None}
    cpu_probe = _CpuProbe()

    def tick(info: dict) -> None:
        state.update(info)
        state["cpu"] = cpu_probe.sample(info.get("pid"))

    who = f"pid {target.pid}" if target.pid is not None else _shorten(" ".join(target.command), 32)

    def line() -> str:
        total = f"/{duration:g}" if duration else ""
        cpu_txt = f" · CPU {state['cpu']:.0f}%" if state.get("cpu") is not None else ""
        return (f"py-spy recording {who} · {state['elapsed']:.1f}{total} s · "
                f"~{int(state['elapsed'] * rate):,} ticks{cpu_txt} · Ctrl-C stops, keeps the profile")

    with live_status(line):
        result = pyspy.record(target, opts, on_tick=tick)

    profile = transforms.apply_filters(result.profile, focus_re=focus, ignore_re=ignore, thread=thread)
    rec = result.profile.recording
    notes = []
    if result.interrupted:
        notes.append("interrupted: partial profile")
    if result.target_exited:
        notes.append("target exited during recording")
    if rec.sampling_lag:
        notes.append(f"py-spy: {rec.sampling_lag}")
    quality = QualityLine(rec.samples or 0, rec.duration_s or 0.0, rec.requested_rate or 0, rec.achieved_rate or 0.0,
                          rec.sampling_errors, rec.threads or 0, rec.processes or 0, notes)
    vi = profile.default_index
    unit = profile.sample_types[vi].unit
    # callers with no self time are shown only when they carry a real share (>= 5 %
    # total); otherwise start-up import frames crowd out the functions that matter
    rows = [r for r in top(profile, vi, by_line=by_line) if r.self_value > 0 or r.total_pct >= 5][:top_n]
    written = []
    for path in outputs:
        name = write_profile(result.profile if path.suffix == ".perfkit" else profile, path, fmt)
        written.append({"path": str(path), "format": name})

    if as_json:
        print_json({
            "command": "cpu",
            "target": rec.target,
            "pid": rec.pid,
            "quality": quality.to_json(),
            "value_type": str(profile.sample_types[vi]),
            "total": profile.total(vi),
            "top": [r.to_json() for r in rows],
            "threads": [r.to_json() for r in thread_split(profile, vi)],
            "outputs": written,
            "interrupted": result.interrupted,
            "target_exited": result.target_exited,
            "program": rec.program,
            "recording": rec.to_json(),
        })
    else:
        con = out_console()
        if not rec.samples:
            warn("no samples: the target was idle the whole time (use --idle to see waiting threads)")
        con.print(TopTable(rows, unit=unit, title=f"Top {'lines' if by_line else 'functions'} by self "
                                                  f"{'wall' if idle else 'CPU'} time ({target.describe()})",
                           value_label="self"))
        if by_thread:
            con.print(ThreadTable(thread_split(profile, vi), unit=unit))
        err_console().print(quality)
        for w in written:
            err_console().print(f"wrote {w['path']} ({w['format']})", markup=False, highlight=False)
    if result.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


class _CpuProbe:
    """Target CPU% for the live progress line (psutil, imported only when drawing)."""

    def __init__(self) -> None:
        self._proc = None
        self._pid = None

    def sample(self, pid: int | None) -> float | None:
        if pid is None:
            return None
        try:
            import psutil

            if self._pid != pid:
                self._proc, self._pid = psutil.Process(pid), pid
                self._proc.cpu_percent(None)
                return None
            return self._proc.cpu_percent(None)
        except Exception:
            return None
