"""`perfkit leaks`: does memory, threads, fds or sockets grow in a live process, and from where."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from perfkit import options as o
from perfkit.options import MAX_DURATION, finite

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)

_HELP = """Watch a live process's memory (RSS, PSS/USS), threads, fds, sockets and children and
decide, per resource, leak / steady / inconclusive.

\b
The rule (per resource; the first --warmup of the window is ignored; samples are
reduced to per-bin medians, about one bin per second, at most 60):
  leak   = Mann-Kendall trend (Hamed-Rao autocorrelation correction) p < --alpha (0.01)
           AND Theil-Sen slope 95% lower bound > 0 and slope > the minimum rate
           (memory 16 KiB/s, counts 0.02/s; --min-memory-rate / --min-count-rate)
           AND rise over the window > 1 MiB (memory) / 3 (counts)
           AND the high-water mark rises in each of 4 sub-windows
           (memory: by > 256 KiB)
  inconclusive = trend and slope pass but the high-water mark does not (still filling?)
  steady = no new high-water mark in the last sub-window, or growth below the minimum
  otherwise inconclusive (monitor longer).
Leaks are attributed: threads -> the grouped stacks of threads that appeared; fds and
sockets -> what the new fds point to (path pattern, socket peer); memory ->
--attribute-memory runs a short memray capture naming the lines holding the growth.

\b
Exit codes: 0 done; 1 a leak with --fail-on-leak; 2 usage; 3 target problem (also when
the target exits mid-run: the report up to then is still printed); 130 interrupted.

\b
Examples:
  perfkit leaks --pid 4242 -d 60
  perfkit leaks --pid 4242 -d 300 -o leaks.html --fail-on-leak
  perfkit leaks -d 30 -- python app.py
"""


@app.command(help=_HELP, context_settings={"allow_interspersed_args": False})
def leaks(
    command: Optional[List[str]] = typer.Argument(None, help="Command to launch and watch (after --)."),
    pid: Optional[int] = typer.Option(None, "--pid", "-p", help="The process to watch."),
    duration: float = typer.Option(60.0, "--duration", "-d", min=1.0,
                                   callback=finite("--duration", 1.0, MAX_DURATION, " s"), help="Seconds to monitor."),
    interval: Optional[float] = typer.Option(None, "--interval", metavar="SECONDS", min=0.05, max=60.0,
                                             help="Seconds between samples [default: 1, or duration/30 if shorter]."),
    attribute_memory: bool = typer.Option(False, "--attribute-memory",
                                          help="If memory leaks: a short memray capture naming the lines holding it."),
    memray_seconds: float = typer.Option(10.0, "--memray-seconds", min=1.0,
                                         callback=finite("--memray-seconds", 1.0, 3600.0, " s"),
                                         help="Length of that capture."),
    show_imports: o.ShowImports = False,
    user_code: o.UserCode = None,
    fail_on_leak: bool = typer.Option(False, "--fail-on-leak", help="Exit 1 when any resource leaks."),
    output: Optional[List[Path]] = typer.Option(None, "--output", "-o",
                                                help="Write the report (repeatable): .html, .md or .json."),
    alpha: float = typer.Option(0.01, "--alpha", min=1e-6, max=0.2, help="Mann-Kendall significance level."),
    warmup: float = typer.Option(0.1, "--warmup", min=0.0, max=0.5, help="Fraction of the window ignored at the "
                                                                         "start."),
    min_memory_rate: float = typer.Option(16384.0, "--min-memory-rate", min=0.0,
                                          callback=finite("--min-memory-rate", 0.0, 1e15),
                                          help="Smallest memory growth called a leak, bytes/s."),
    min_count_rate: float = typer.Option(0.02, "--min-count-rate", min=0.0,
                                         callback=finite("--min-count-rate", 0.0, 1e9),
                                         help="Smallest thread/fd/socket growth called a leak, per second."),
    pss: bool = typer.Option(True, "--pss/--no-pss", help="Also read PSS/USS (smaps_rollup) each sample."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show the test results for steady resources too."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
    no_redact: o.NoRedact = False,
) -> None:
    from dataclasses import replace

    from perfkit.console import err_console, live_status, out_console, print_json
    from perfkit.errors import EXIT_FINDING, EXIT_INTERRUPTED, EXIT_TARGET, UsageError
    from perfkit.fileio import atomic_write, check_writable
    from perfkit.leaks import findings as leak_findings
    from perfkit.leaks import report as leak_report
    from perfkit.leaks import trend
    from perfkit.leaks import watch as leakwatch

    outputs = list(output or [])
    for path in outputs:
        if _kind(path) is None:
            raise UsageError(f"cannot tell the report format of {path}", "use a .html, .md or .json suffix")
        check_writable(path)
    if interval is None:
        interval = max(0.05, min(1.0, duration / 30.0))
    if interval > duration / 4:
        raise UsageError(f"--interval {interval:g} s is too coarse for --duration {duration:g} s",
                         "take at least 4 samples per window, ideally 30+")
    launched = None
    if pid is not None and command:
        raise UsageError("give either --pid or a command after --, not both")
    if pid is None and not command:
        raise UsageError("no target: give --pid N to watch, or -- CMD ARGS to launch and watch",
                         "e.g. perfkit leaks --pid 4242 -d 60   or   perfkit leaks -d 60 -- python app.py")
    if command:
        from perfkit.target import resolve

        resolve(None, command)
        launched = leakwatch.launch(list(command))
        pid = launched.pid
        leakwatch.settle(launched)
    assert pid is not None
    try:
        python = _check_target(pid)
    except Exception:
        if launched is not None:
            leakwatch.stop_launched(launched)
        raise

    thresholds = {}
    for res, th in trend.DEFAULT_THRESHOLDS.items():
        rate = min_memory_rate if res == "memory" else min_count_rate
        thresholds[res] = replace(th, alpha=alpha, warmup_fraction=warmup, min_rate=rate)
    bin_s = max(interval, min(1.0, duration / 30.0))

    last: dict = {}

    def on_sample(s) -> None:
        last["s"] = s

    def line() -> str:
        s = last.get("s")
        if s is None:
            return f"watching pid {pid} …"
        return (f"watching pid {pid} · {s.t:.0f}/{duration:g} s · RSS {leak_report.human_bytes(s.rss or 0)} · "
                f"threads {s.threads} · fds {s.fds if s.fds is not None else '?'} · "
                f"sockets {s.sockets if s.sockets is not None else '?'} · Ctrl-C stops and reports")

    from perfkit.target import shown_cmdline

    cmd_line, cmd_redacted = shown_cmdline(pid)
    try:
        with live_status(line):
            watch = leakwatch.watch(pid, duration, interval, python=python, pss=pss, on_sample=on_sample)
    finally:
        if launched is not None and (attribute_memory is False or launched.poll() is not None):
            leakwatch.stop_launched(launched)
    if not cmd_line:
        cmd_line, cmd_redacted = shown_cmdline(None, list(command or []))
    report = leak_findings.build(watch, thresholds, bin_seconds=bin_s, cmdline=cmd_line)
    report.redacted = cmd_redacted
    if cmd_redacted:
        report.notes.append("secrets on the command line were written as REDACTED (--no-redact keeps them)")
    leak_findings.attribute(report, watch)
    mem = next(f for f in report.findings if f.resource == "memory")
    if attribute_memory:
        if mem.verdict.verdict != trend.LEAK:
            report.notes.append("--attribute-memory: memory did not leak, no memray capture taken")
        elif watch.monitor.gone_at is not None or watch.monitor.interrupted:
            report.notes.append("--attribute-memory: target gone or interrupted, no memray capture taken")
        else:
            with live_status(lambda: f"memray capture of pid {pid} ({memray_seconds:g} s) …"):
                prof, why = leakwatch.capture_memory(pid, memray_seconds)
            mem.attribution = (leak_findings.memory_attribution(prof, show_imports=show_imports) if prof is not None
                               else {"available": False, "why": why})
    if launched is not None:
        code = leakwatch.stop_launched(launched)
        if watch.monitor.gone_at is not None:
            report.notes = [n for n in report.notes if "exited" not in n]
            report.notes.append(f"the launched command exited (code {code}) {watch.monitor.gone_at:.1f} s in; "
                                "verdicts use the samples until then")

    for path in outputs:
        kind = _kind(path)
        text = (leak_report.html_report(report) if kind == "html" else leak_report.markdown(report)
                if kind == "md" else _json_text(report.to_json()))
        atomic_write(path, text.encode("utf-8", "backslashreplace"))
    if as_json:
        doc = report.to_json()
        doc["outputs"] = [str(p) for p in outputs]
        doc["thresholds_text"] = {f.resource: leak_report.thresholds_text(f.resource, f.verdict.thresholds)
                                  for f in report.findings}
        print_json(doc)
    else:
        out_console().print(leak_report.LeakSummary(report, verbose=verbose))
        for p in outputs:
            err_console().print(f"wrote {p}", markup=False, highlight=False)
    if watch.monitor.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if report.leaks and fail_on_leak:
        err_console().print(f"perfkit: leak found ({', '.join(f.resource for f in report.leaks)}); "
                            "failing as asked (--fail-on-leak)", markup=False, highlight=False)
        raise typer.Exit(EXIT_FINDING)
    if watch.monitor.gone_at is not None and (launched is None or watch.monitor.gone_how != "exited"):
        what = leak_findings.gone_text(pid, watch.monitor.gone_how, watch.monitor.gone_into)
        err_console().print(f"perfkit: {what} {watch.monitor.gone_at:.1f} s into the window; "
                            "the report covers the time until then", markup=False, highlight=False)
        raise typer.Exit(EXIT_TARGET)


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    for suffix, kind in ((".html", "html"), (".htm", "html"), (".md", "md"), (".markdown", "md"), (".json", "json")):
        if name.endswith(suffix):
            return kind
    return None


def _json_text(doc) -> str:
    import json

    return json.dumps(doc, indent=2, sort_keys=True, default=str, ensure_ascii=False) + "\n"


def _check_target(pid: int) -> bool:
    """Exists and not a zombie (exit 3 otherwise); returns whether it looks like Python.

    Unlike profiling commands, watching needs no ptrace: another user's process is
    watched with what /proc allows, and the report says what could not be measured.  A
    stopped target is watched as it is (never resumed).
    """
    from perfkit.target import check_pid, looks_python

    check_pid(pid, require_python=False, allow_stopped=True, attach=False)
    return looks_python(pid)
