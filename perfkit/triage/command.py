"""`perfkit triage`: snapshot the host and every Python process into one bounded bundle."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, List, Optional

import typer

from perfkit import options as o

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)


def parse_budget(text: str) -> float:
    """'30', '30s', '1m', '1m30s', '90.5s' -> seconds."""
    from perfkit.errors import UsageError

    t = text.strip().lower()
    m = re.fullmatch(r"(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", t)
    if not t or not m or (m.group(1) is None and m.group(2) is None):
        raise UsageError(f"invalid --budget {text!r}", "give seconds, e.g. --budget 30s, --budget 45, --budget 1m")
    secs = float(m.group(1) or 0) * 60 + float(m.group(2) or 0)
    if secs < 3 or secs > 3600:
        raise UsageError(f"--budget {text} is out of range", "use between 3 s and 1 h (default 30s)")
    return secs


def _since_start() -> float:
    """Seconds since this perfkit process started (start-up counts against the budget)."""
    import time

    import psutil

    try:
        return max(0.0, time.time() - psutil.Process().create_time())
    except psutil.Error:
        return 0.0


@app.command()
def triage(
    pid: Optional[List[int]] = typer.Option(None, "--pid", "-p",
                                            help="Only these processes and their children (repeatable) "
                                                 "[default: every Python process on the host]."),
    output: Optional[Path] = typer.Option(None, "--output", "-o",
                                          help="Bundle directory (new or empty), or FILE.tar.gz "
                                               "[default: ./perfkit-triage-HOST-TIME/]."),
    budget: str = typer.Option("30s", "--budget", "-b", help="Total time budget, e.g. 30s, 1m."),
    profile_top: int = typer.Option(3, "--profile-top", min=0, max=20,
                                    help="CPU-profile this many of the busiest Python processes."),
    profile_seconds: int = typer.Option(5, "--profile-seconds", min=1, max=60,
                                        help="Length of each CPU profile (shortened to fit the budget)."),
    workers: int = typer.Option(8, "--workers", min=1, max=64, help="Processes examined in parallel."),
    locals_: bool = typer.Option(False, "--locals", help="Include local variables in stacks (may hold secrets)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON document on stdout."),
    no_redact: o.NoRedact = False,
) -> None:
    """Snapshot the host and every Python process (stacks, GIL, fds, CPU profiles of the
    busiest) into a bundle, within one time budget, never pausing a target.

    \b
    Examples:
      perfkit triage
      perfkit triage --pid 4242 -o incident.tar.gz --budget 20s
    """
    from perfkit.console import err_console, live_status, out_console, print_json
    from perfkit.errors import EXIT_INTERRUPTED, NoSuchProcess, NotPython, UsageError
    from perfkit.triage import bundle as triage_bundle
    from perfkit.triage import run as triage_run
    from perfkit.triage.findings import has_lock_waits
    from perfkit.triage.pyprocs import python_in_tree
    from perfkit.triage.report import TerminalSummary

    secs = parse_budget(budget)
    pids = sorted(set(pid or []))
    for p in pids:
        if p <= 0:
            raise UsageError(f"invalid pid {p}")
        if not Path(f"/proc/{p}").exists():
            raise NoSuchProcess(f"no such process: pid {p}", "check the pid (ps aux | grep python)")
        if not python_in_tree(p):
            raise NotPython(f"pid {p} is not a Python process and has no Python children",
                            "give the pid of a Python process or of its parent (ps aux | grep python)")
    dest = output or triage_bundle.default_destination()
    triage_bundle.check_destination(dest)

    opts = triage_run.TriageOptions(pids=pids or None, budget=secs, profile_top=profile_top,
                                    profile_seconds=profile_seconds, locals_=locals_, workers=workers,
                                    already_spent=_since_start())
    state: dict[str, Any] = {"phase": "starting", "elapsed": 0.0, "done": 0, "total": 0}

    def line() -> str:
        count = f" · {state['done']}/{state['total']}" if state["total"] else ""
        return f"triage: {state['phase']}{count} · {state['elapsed']:.1f} s / {secs:g} s budget"

    with live_status(line):
        result = triage_run.run(opts, on_progress=state.update, lock_suspects=has_lock_waits)
    doc = triage_bundle.build(result, dest, sys.argv[1:])
    if as_json:
        print_json(doc.to_json())
    else:
        out_console().print(TerminalSummary(doc))
        if not doc.processes:
            err_console().print("no Python processes found" + (" (as this user)" if not doc.privilege.root
                                                                 else ""), markup=False, highlight=False)
    if result.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
