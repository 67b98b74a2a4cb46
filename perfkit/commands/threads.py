"""`perfkit threads`: what every thread of a live Python process is doing, grouped."""

from __future__ import annotations

from typing import Optional

import typer

from perfkit import options as o
from perfkit.options import finite

ROWS = 40  # table rows of a snapshot (idle threads beyond are folded; the groups list every stack)
WATCH_ROWS = 30
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)


@app.command()
def threads(
    pid: int = typer.Option(..., "--pid", "-p", metavar="PID", help="The process to inspect."),
    interval: Optional[float] = typer.Option(None, "--interval", metavar="SECONDS", min=0.05, max=60,
                                             help="Seconds over which per-thread CPU % is measured (and --watch "
                                                  "refresh) [default: 0.1, or the dump's own time if longer; "
                                                  "0.5 with --watch]."),
    all_processes: bool = typer.Option(False, "--all-processes", "--subprocesses", "-a", "-s",
                                       help="Also every child process (each dumped separately, in parallel)."),
    locals_: bool = typer.Option(False, "--locals", "-l", help="Include local variables (may show secrets; opt-in)."),
    native: bool = typer.Option(False, "--native", "-n", help="Include native (C/C++/Cython) frames (py-spy --native; "
                                                              "pauses the target while it unwinds)."),
    nonblocking: bool = typer.Option(False, "--nonblocking", help="Never pause the target (stacks may be torn)."),
    depth: int = typer.Option(8, "--depth", metavar="N", min=1, help="Frames shown per stack group."),
    rows: Optional[int] = typer.Option(None, "--rows", metavar="N", min=0,
                                       help="Threads listed in the table, most CPU first; idle ones beyond are "
                                            "folded into one line (their stacks are in the groups) [default: 40; "
                                            "30 with --watch; 0: every thread]."),
    watch: bool = typer.Option(False, "--watch", "-w", help="Refresh live until Ctrl-C, with the thread count trend."),
    count: Optional[int] = typer.Option(None, "--count", metavar="N", min=1,
                                        help="With --watch: stop after this many refreshes."),
    timeout: float = typer.Option(10.0, "--timeout", metavar="SECONDS", min=1.0,
                                  callback=finite("--timeout", 1.0, 600.0, " s"),
                                  help="Seconds allowed for each py-spy dump."),
    user_code: o.UserCode = None,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
    no_redact: o.NoRedact = False,
) -> None:
    """Every thread: name, running/idle, GIL holder, CPU %, Python stack; identical stacks grouped.

    \b
    Examples:
      perfkit threads --pid 4242
      perfkit threads --pid 4242 --all-processes --json
      perfkit threads --pid 4242 --watch
      perfkit threads --pid 4242 --native
    Exit codes: 0 done; 2 usage; 3 no such pid / zombie / not Python / permission denied;
    4 py-spy missing or failed.
    """
    from perfkit.errors import UsageError
    from perfkit.target import resolve

    if count is not None and not watch:
        raise UsageError("--count only applies with --watch", "add --watch, or drop --count")
    if native and nonblocking:
        raise UsageError("--native and --nonblocking cannot be combined",
                         "py-spy must pause the target to unwind native stacks; drop one")
    from perfkit.console import warn
    from perfkit.procs.proc import STATE_NAMES, state

    resolve(pid, None, allow_stopped=True)
    st = state(pid)
    if st in ("T", "t"):  # read as it is: non-blocking (no ptrace), never resumed
        warn(f"pid {pid} is {STATE_NAMES[st]}: its threads are read as they are, without resuming it "
             "(non-blocking" + ("; no native frames: they need a pause" if native else "") +
             "); CPU % is 0 while it stays stopped")
        nonblocking, native = True, False
    if interval is None:  # the window overlaps the dump (and lasts at least as long); ns CPU times keep it exact
        interval = 0.5 if watch else 0.1
    opts = dict(all_processes=all_processes, interval=interval, locals_=locals_, nonblocking=nonblocking,
                timeout=timeout, native=native)
    if watch:
        _watch(pid, opts, depth, count, as_json, WATCH_ROWS if rows is None else rows)
        return
    view, doc = _take(pid, opts, depth)
    view.max_rows = ROWS if rows is None else rows
    _emit(view, doc, as_json)


def _take(pid: int, opts: dict, depth: int, trend: list[int] | None = None):
    from perfkit.errors import EXIT_TARGET, TargetError, ToolError
    from perfkit.threads.snapshot import snapshot

    snap = snapshot(pid, **opts, meanwhile=_ready_to_draw)
    from perfkit.threads.table import ThreadsView
    from perfkit.threads.view import build_threads, group

    main = snap.processes[0]
    if main.error:
        cls = TargetError if main.error_code == EXIT_TARGET else ToolError
        raise cls(main.error)
    infos = []
    for p in snap.processes:
        if p.error:
            continue
        infos.extend(build_threads(p.stacks, p.cpu))
        for tid in p.native:
            c = p.cpu[tid]
            from perfkit.threads.view import ThreadInfo

            infos.append(ThreadInfo(pid=p.pid, tid=tid, name=c["name"], active=c["cpu_pct"] > 0, owns_gil=False,
                                    cpu_pct=c["cpu_pct"], frames=[]))
    groups = group(infos)
    if trend is not None:
        trend.append(len(infos))
    view = ThreadsView(pid=pid, threads=infos, groups=groups, depth=depth, errors=snap.errors,
                       trend=list(trend or []), show_locals=opts["locals_"])
    doc = {"command": "threads", "pid": pid, "interval_s": snap.interval, "taken_at": snap.taken_at,
           "processes": [{"pid": p.pid, "error": p.error, "threads": sum(1 for t in infos if t.pid == p.pid)}
                         for p in snap.processes],
           "thread_count": len(infos), "running": sum(1 for t in infos if t.active),
           "gil_holders": [t.tid for t in infos if t.owns_gil],
           "groups": [g.to_json() for g in groups], "threads": [t.to_json() for t in infos],
           "errors": snap.errors}
    return view, doc


def _ready_to_draw() -> None:
    """What drawing the view needs, loaded in the idle end of the CPU window (the dump
    ends before it): the console (rich) and, if piped, the text writer's imports."""
    from perfkit.console import out_console
    from perfkit.threads import table, view  # noqa: F401

    con = out_console()
    if not con.is_terminal:
        import textwrap  # noqa: F401

        from rich.text import Text  # noqa: F401


def _emit(view, doc, as_json: bool) -> None:
    from perfkit.console import out_console, print_json

    if as_json:
        print_json(doc)
        return
    con = out_console()
    if con.is_terminal:
        con.print(view)
        return
    # piped or redirected: no styles to draw, so the lines go out as text (rich's layout
    # pass costs ~0.25 s on 400 threads; every line is already fitted to the width)
    import sys

    from rich.text import Text

    lines = list(view.__rich_console__(con, con.options))
    if not all(isinstance(t, Text) for t in lines):
        con.print(view)
        return
    import textwrap

    width = con.width
    out = []
    for t in lines:
        for part in t.plain.split("\n"):
            if len(part) <= width:
                out.append(part)
            elif t.no_wrap:  # as rich: cut with an ellipsis
                out.append(part[:width - 1] + "…")
            else:  # as rich: wrapped at spaces
                out.extend(textwrap.wrap(part, width, break_long_words=True, break_on_hyphens=False) or [""])
    sys.stdout.write("\n".join(out) + "\n")
    sys.stdout.flush()


def _watch(pid: int, opts: dict, depth: int, count: int | None, as_json: bool, rows: int) -> None:
    from perfkit.console import err_console, out_console, print_json
    from perfkit.errors import TargetError
    from perfkit.procs import proc as procstat

    trend: list[int] = []
    docs = []
    con = out_console()
    live = None
    if con.is_terminal and not as_json:
        from rich.live import Live

        live = Live(console=con, refresh_per_second=2, screen=False)
        live.start()
    n = 0
    interrupted = False
    try:
        while count is None or n < count:
            if procstat.process_status(pid) in (None, "Z", "X"):
                err_console().print(f"pid {pid} exited", markup=False, highlight=False)
                break
            try:
                view, doc = _take(pid, opts, depth, trend)
            except TargetError:
                if procstat.process_status(pid) in (None, "Z", "X"):
                    err_console().print(f"pid {pid} exited", markup=False, highlight=False)
                    break
                raise
            view.max_rows = rows
            n += 1
            doc["trend"] = list(trend)
            if as_json:
                docs.append(doc)
            elif live is not None:
                live.update(view)
            else:
                con.print(view)
    except KeyboardInterrupt:
        interrupted = True  # Ctrl-C / SIGTERM / SIGHUP: what was collected is still printed, exit 130
    finally:
        if live is not None:
            live.stop()
    if as_json:
        print_json({"command": "threads", "pid": pid, "watch": True, "trend": trend, "snapshots": docs,
                    "interrupted": interrupted})
    if interrupted:
        import typer

        raise typer.Exit(130)
