"""`perfkit cpu`: where does the CPU go in a live or launched Python process."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from perfkit import options as o

REDACTED_NOTE = "secrets on the target's command line were written as REDACTED (--no-redact keeps them)"

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)


@app.command(context_settings={"allow_interspersed_args": False})
@o.filters("focus", "ignore", "thread")
@o.recording_outputs()
def cpu(
    command: o.Command = None,
    pid: o.Pid = None,
    duration: o.Duration = None,
    rate: o.Rate = 100,
    idle: Annotated[bool, typer.Option("--idle", "-i",
                                       help="Include idle (waiting) threads; values become wall time. Without it, "
                                            "samples in blocking calls and beyond a thread's /proc CPU time are "
                                            "reclassified as idle.")] = False,
    gil: Annotated[bool, typer.Option("--gil", "-g", help="Only sample the thread holding the GIL.")] = False,
    native: o.Native = False,
    subprocesses: Annotated[bool, typer.Option("--subprocesses", "-s",
                                               help="Also profile child processes (labelled by pid).")] = False,
    nonblocking: Annotated[bool, typer.Option("--nonblocking", help="Never pause the target (less accurate).")] = False,
    top_n: o.Top = 15,
    by_thread: Annotated[bool, typer.Option("--by-thread", help="Also show the split by thread and process.")] = False,
    by_line: Annotated[bool, typer.Option("--by-line", help="Rank lines instead of functions.")] = False,
    *,
    filters: o.Filters,
    outputs: o.Outputs,
) -> None:
    """Sample CPU stacks with py-spy and show where time goes.

    \b
    Examples:
      perfkit cpu --pid 4242 -d 20 -o cpu.svg
      perfkit cpu -o out.speedscope.json -- python app.py
      perfkit cpu --pid 4242 -o - -f raw | flamegraph.pl > cpu.svg
    """
    from rich.text import Text

    from perfkit.analysis import hints
    from perfkit.analysis.top import by_thread as thread_split
    from perfkit.analysis.top import top
    from perfkit.analysis.yourcode import dominant_user_frames
    from perfkit.console import err_console, live_status, plain, print_json, warn
    from perfkit.errors import EXIT_INTERRUPTED, TargetError, UsageError
    from perfkit.names import thread_label
    from perfkit.render.terminal import QualityLine, ThreadTable, TopTable
    from perfkit.target import failure, resolve
    from perfkit.tools import pyspy

    if gil and idle:
        raise UsageError("--gil and --idle cannot be combined")
    target = resolve(pid, command)
    duration = o.attach_duration(duration, target.pid is not None)
    opts = pyspy.RecordOptions(duration=duration, rate=rate, idle=idle, gil=gil, native=native,
                               subprocesses=subprocesses, nonblocking=nonblocking)

    state: dict[str, Any] = {"elapsed": 0.0, "pid": target.pid, "cpu": None}
    cpu_probe = _CpuProbe()

    def tick(info: dict) -> None:
        state.update(info)
        state["cpu"] = cpu_probe.sample(info.get("pid"))

    who = f"pid {target.pid}" if target.pid is not None else _shorten(" ".join(target.command), 32)

    ticks_per_s = rate or 0

    def line() -> str:
        total = f"/{duration:g}" if duration else ""
        cpu_txt = f" · CPU {state['cpu']:.0f}%" if state.get("cpu") is not None else ""
        return (f"py-spy recording {who} · {state['elapsed']:.1f}{total} s · "
                f"~{int(state['elapsed'] * ticks_per_s):,} ticks{cpu_txt} · Ctrl-C stops, keeps the profile")

    with live_status(line):
        result = pyspy.record(target, opts, on_tick=tick)

    from perfkit.analysis import idle as idle_fix

    recorded, correction = idle_fix.correct(result.profile)
    profile = filters.apply(recorded)
    rec = recorded.recording
    notes = []
    if correction.note():
        notes.append(correction.note())
    if result.interrupted:
        notes.append("interrupted: partial profile")
    if result.notes:
        notes.extend(result.notes)
    elif result.target_exited:
        notes.append("target exited during recording")
    if rec.sampling_lag:
        notes.append(f"py-spy: {rec.sampling_lag}")
    quality = QualityLine(rec.samples or 0, rec.duration_s or 0.0, int(rec.requested_rate or 0),
                          rec.achieved_rate or 0.0, rec.sampling_errors, rec.threads or 0, rec.processes or 0,
                          [n for n in notes if n])
    vi = profile.default_index
    unit = profile.sample_types[vi].unit
    # callers with no self time are shown only when they carry a real share (>= 5 %
    # total); otherwise start-up import frames crowd out the functions that matter
    rows = [r for r in top(profile, vi, by_line=by_line) if r.self_value > 0 or r.total_pct >= 5][:top_n]
    key_of = (lambda f: (f.function, f.file, f.line)) if by_line else (lambda f: (f.function, f.file))
    yours = dominant_user_frames(profile, vi, key_of)
    found_hints = hints.for_cpu(profile, rows, native=native, idle=idle, by_line=by_line)
    os_names = _os_names(rec)
    # the .perfkit file keeps every stack: the idle correction is repeatable from its /proc readings
    written = outputs.write_profile(profile, choose=lambda path, name: recorded if name == "perfkit" else profile)

    if outputs.as_json:
        print_json({
            "command": "cpu",
            "target": rec.target,
            "pid": rec.pid,
            "quality": quality.to_json(),
            "value_type": str(profile.sample_types[vi]),
            "total": profile.total(vi),
            "top": [{**r.to_json(), "your_code": _your_json(yours.get(key_of_row(r, by_line)), r)} for r in rows],
            "threads": [{**r.to_json(), "name": thread_label(r.thread, os_names.get((r.pid, r.tid)), tid=r.tid,
                                                             process_name=os_names.get((r.pid, None)))}
                        for r in thread_split(profile, vi)],
            "idle_correction": correction.to_json(),
            "hints": found_hints,
            "outputs": written,
            "interrupted": result.interrupted,
            "target_exited": result.target_exited,
            "program": rec.program,
            "recording": rec.to_json(),
        })
    else:
        con = outputs.console
        if not rec.samples:
            warn("no samples: the target was idle the whole time (use --idle to see waiting threads)")
        con.print(TopTable(rows, unit=unit, title=f"Top {'lines' if by_line else 'functions'} by self "
                                                  f"{'wall' if idle else 'CPU'} time ({target.describe()})",
                           value_label="self", yours=yours, by_line=by_line))
        if by_thread:
            con.print(ThreadTable(thread_split(profile, vi), unit=unit, os_names=os_names))
        for h in found_hints:
            con.print(Text("hint: " + plain(h), style="dim"))
        err_console().print(quality)
        outputs.report()
        if rec.redacted:
            err_console().print(REDACTED_NOTE, markup=False, highlight=False)
    if result.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    failed = failure(result.program, " ".join(target.command))
    if failed:  # the profile is written; the program's own failure is the result
        raise TargetError(failed, "its output is above; the profile covers its run until then")


def key_of_row(r, by_line: bool) -> tuple:
    return (r.function, r.file, r.line) if by_line else (r.function, r.file)


def _your_json(found, r) -> dict | None:
    """The user frame most of a row's self time comes through (the row itself if it is the user's)."""
    from perfkit import paths

    if paths.is_user(r.file, r.function):
        return {"function": r.function, "file": r.file, "line": r.line, "share": 1.0}
    if not found or found[0] is None:
        return None
    f, share = found
    return {"function": f.function, "file": f.file, "line": f.line, "share": round(share, 3)}


def _os_names(rec) -> dict:
    """(pid, tid) -> OS thread name and (pid, None) -> process name, from the /proc readings."""
    out: dict = {}
    info = rec.thread_cpu or {}
    for t in info.get("threads") or []:
        out[(t["pid"], t["tid"])] = t.get("name") or ""
    for pid, name in (info.get("process_names") or {}).items():
        out[(int(pid), None)] = name
    return out


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


class _CpuProbe:
    """Target CPU% for the live progress line (psutil, imported only when drawing)."""

    def __init__(self) -> None:
        self._proc: Any = None
        self._pid: int | None = None

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
