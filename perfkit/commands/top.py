"""`perfkit top`: a live view of where a Python process's CPU goes (py-spy, /proc)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from perfkit import options as o

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)


@app.command(context_settings={"allow_interspersed_args": False})
def top(
    command: o.Command = None,
    pid: o.Pid = None,
    rate: o.Rate = 100,
    window: Annotated[float, typer.Option("--window", metavar="SECONDS", callback=o.check_duration("--window", low=1),
                                          help="Seconds of samples the shares cover (sliding).")] = 10.0,
    delay: Annotated[Optional[float], typer.Option(
        "--delay", metavar="SECONDS", callback=o.check_duration("--delay", low=0.2, high=3600),
        help="Seconds between refreshes [default: 1 on a terminal; 5 between plain snapshots otherwise].",
        show_default=False)] = None,
    duration: Annotated[Optional[float], typer.Option(
        "--duration", "-d", metavar="SECONDS", callback=o.check_duration(),
        help="Stop after this many seconds [default: until q, Ctrl-C or the target's exit].",
        show_default=False)] = None,
    gil_rate: Annotated[int, typer.Option("--gil-rate", metavar="HZ", min=0, max=1000,
                                          help="Rate of the (non-blocking) GIL sampler; 0 turns it off.")] = 20,
    native: o.Native = False,
    nonblocking: Annotated[bool, typer.Option("--nonblocking", help="Never pause the target (less accurate).")] = False,
    subprocesses: Annotated[bool, typer.Option("--subprocesses", "-s",
                                               help="Also sample child processes.")] = False,
    sort: Annotated[str, typer.Option("--sort", metavar="own|total", help="Initial sort (keys 1 and 2 switch).",
                                      autocompletion=_complete_sort)] = "own",
    by_line: Annotated[bool, typer.Option("--by-line", help="Rank lines instead of functions (key l).")] = False,
    as_json: o.Json = False,
) -> None:
    """A live, refreshing view: functions by own and total share of CPU over a sliding
    window (as py-spy top), per-thread CPU (/proc) and GIL share, RSS and thread-count
    trends, the achieved sample rate.

    \b
    Keys: q quit · 1/2 sort by own/total · l lines/functions · t threads panel
          T next thread (then all again) · space pause · r reset the window
    Not a terminal: a plain snapshot every --delay seconds; --json: one document at the end.
    \b
    Examples:
      perfkit top --pid 4242
      perfkit top -- python app.py
      perfkit top --pid 4242 -d 30 --delay 10 > top.log
    """
    from perfkit.console import err_console, out_console, print_json
    from perfkit.errors import EXIT_INTERRUPTED, TargetError, UsageError
    from perfkit.target import Launched, failure, resolve
    from perfkit.tools.pyspy import find_pyspy
    from perfkit.top import session
    from perfkit.top.keys import Keys

    if sort not in ("own", "total"):
        raise UsageError(f"--sort {sort!r}: choose own or total")
    target = resolve(pid, command)
    find_pyspy()  # a missing py-spy fails now, not in the first window
    con = out_console()
    screen = con.is_terminal and not as_json
    delay = delay if delay is not None else (1.0 if screen else 5.0)
    opts = session.TopOptions(rate=rate, window=window, delay=delay, duration=duration, gil_rate=gil_rate,
                              native=native, nonblocking=nonblocking, subprocesses=subprocesses, sort=sort,
                              by_line=by_line)
    log = None
    program = None
    try:
        if target.launched:
            if screen:  # the program's output would scribble over the screen: keep it in a file
                log = _program_log()
            program = Launched(target.command, output=log)
        tpid = target.pid if target.pid is not None else program.pid  # type: ignore[union-attr]
        who = f"pid {tpid} ({_short(_cmdline(tpid, target), 60)})"
        if screen:
            outcome = _live(tpid, who, opts, program)
        else:
            def snapshot(frame) -> None:
                if not as_json:
                    con.file.write(frame.text())
                    con.file.write("\n")
                    con.file.flush()

            outcome = session.run(tpid, who, opts, show=snapshot, keys=Keys(enabled=False), every=delay,
                                  keep=as_json, program=program)
        if program is not None:
            if program.running():
                program.stop("interrupt" if outcome.reason == "interrupt" else "deadline")
            outcome.program = program.close()
            program = None
    finally:
        if program is not None:
            program.close()
        if log is not None:
            log.close()
    if as_json:
        print_json({"command": "top", "target": target.describe(), "pid": tpid, "reason": outcome.reason,
                    "options": {"rate": rate, "window": window, "delay": delay, "gil_rate": gil_rate,
                                "native": native, "nonblocking": nonblocking},
                    "snapshots": [f.to_json() for f in outcome.frames],
                    "program": outcome.program.to_json() if outcome.program is not None else None})
    elif screen and outcome.last is not None:
        con.print(outcome.last)  # what was on screen, left in the scrollback
    if outcome.reason == "target-exit" and not as_json:
        err_console().print(f"{who} exited", markup=False, highlight=False)
    if log is not None:
        err_console().print(f"program output: {log.name}", markup=False, highlight=False)
    if outcome.reason == "interrupt":
        raise typer.Exit(EXIT_INTERRUPTED)
    failed = failure(outcome.program, " ".join(target.command))
    if failed:
        raise TargetError(failed, f"its output is in {log.name}" if log is not None else "its output is above")


def _complete_sort(incomplete: str) -> list[str]:
    return [c for c in ("own", "total") if c.startswith(incomplete)]


def _live(pid: int, who: str, opts, program):
    from rich.live import Live

    from perfkit.console import out_console
    from perfkit.top import session
    from perfkit.top.keys import Keys

    con = out_console()
    with Keys(enabled=True) as keys, Live(console=con, screen=True, auto_refresh=False,
                                          redirect_stdout=False, redirect_stderr=False) as live:
        return session.run(pid, who, opts, show=lambda frame: live.update(frame, refresh=True), keys=keys,
                           program=program)


def _program_log():
    import os
    import tempfile

    d = tempfile.mkdtemp(prefix="perfkit-top-")
    os.chmod(d, 0o700)
    fd = os.open(os.path.join(d, "program.log"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return os.fdopen(fd, "w", buffering=1, encoding="utf-8", errors="replace")


def _cmdline(pid: int, target) -> str:
    """The program and its script, never the rest of the command line (it may hold secrets)."""
    import os

    from perfkit.target import cmdline

    argv = cmdline(pid) or list(target.command)
    if not argv:
        return "?"
    shown = [os.path.basename(argv[0])]
    if len(argv) > 1 and not argv[1].startswith("-") and "=" not in argv[1]:
        shown.append(argv[1])
    elif len(argv) > 2 and argv[1] == "-m":
        shown += argv[1:3]
    return " ".join(shown) + (" …" if len(argv) > len(shown) else "")


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
