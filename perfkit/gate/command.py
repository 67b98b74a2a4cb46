"""`perfkit gate`: fail CI when a change makes benchmarks slower or hungrier — and only then.

    perfkit gate record                      # baseline file from [tool.perfkit.gate]
    perfkit gate check                       # measure now, compare with the baseline
    perfkit gate compare --base-cmd ... --head-cmd ...   # both sides interleaved (recommended)

Exit codes: 0 pass (inconclusive passes unless --strict); 1 regression; 2 usage, config
or baseline problem; 3 a benchmark command failed or timed out; 4 a tool (memray,
valgrind, py-spy) is missing or failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import typer

from perfkit import options as o

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
                  no_args_is_help=True, help="Fail CI when a change makes things slower or hungrier.")

_CONFIG = typer.Option(None, "--config", metavar="FILE", help="TOML file with [tool.perfkit.gate] [default: "
                                                              "./pyproject.toml].")
_BENCH = typer.Option(None, "--benchmark", "-b", help="Only this benchmark (repeatable).")
_METRICS = typer.Option(None, "--metrics", "-m",
                        help="Comma-separated: cpu,wall,rss,threads,allocations,heap_peak,instructions.")
_REPS = typer.Option(None, "--repetitions", metavar="N", min=1, help="Runs (pairs) per side before the first decision.")
_MAXREPS = typer.Option(None, "--max-repetitions", min=1, help="Adaptive cap on runs (pairs) per side.")
_WARM = typer.Option(None, "--warmups", min=0, help="Discarded runs per side first.")
_ALPHA = typer.Option(None, "--alpha", help="False-alarm budget for the whole check [default: 0.05].")
_EFFECT = typer.Option(None, "--min-effect", help="METRIC=FRACTION or METRIC=PCT%, e.g. cpu=5% (repeatable).")
_TIMEOUT = typer.Option(None, "--timeout", help="Seconds per benchmark run [default: 300].")
_PROFILE = typer.Option(None, "--profile/--no-profile", help="py-spy profile per side to explain a CPU regression.")
_JSON = typer.Option(False, "--json", help="Print the result as one JSON document on stdout.")
_STRICT = typer.Option(None, "--strict/--no-strict", help="Inconclusive (too noisy to tell) fails too.")
_MD = typer.Option(None, "--markdown", help="Write a markdown report here (also appended to $GITHUB_STEP_SUMMARY).")
_JUNIT = typer.Option(None, "--junit", help="Write a JUnit XML report here.")
_DIFF = typer.Option(None, "--diff-dir", help="Write differential flame graphs (NAME.diff.svg) of CPU regressions "
                                              "here.")
_BASELINE = typer.Option(None, "--baseline", help="Baseline file [default: from config, .perfkit/gate-baseline.json].")
_NAME = typer.Option("benchmark", "--name", help="Name of the benchmark given on the command line.")


@dataclass
class _Run:
    """What to run and how often: the options of every gate mode."""

    config: Optional[Path] = None
    benchmark: Optional[List[str]] = None
    name: str = "benchmark"
    metrics: Optional[str] = None
    repetitions: Optional[int] = None
    max_repetitions: Optional[int] = None
    warmups: Optional[int] = None
    timeout: Optional[float] = None
    profile: Optional[bool] = None
    as_json: bool = False


@dataclass
class _Verdict:
    """How to decide and where to report it: check and compare."""

    alpha: Optional[float] = None
    min_effect: Optional[List[str]] = None
    strict: Optional[bool] = None
    markdown: Optional[Path] = None
    junit: Optional[Path] = None
    diff_dir: Optional[Path] = None


_run_options = o.group("run", _Run, {
    "config": (Optional[Path], _CONFIG), "benchmark": (Optional[List[str]], _BENCH), "name": (str, _NAME),
    "metrics": (Optional[str], _METRICS), "repetitions": (Optional[int], _REPS),
    "max_repetitions": (Optional[int], _MAXREPS), "warmups": (Optional[int], _WARM),
    "timeout": (Optional[float], _TIMEOUT), "profile": (Optional[bool], _PROFILE), "as_json": (bool, _JSON)})
_verdict_options = o.group("verdict", _Verdict, {
    "alpha": (Optional[float], _ALPHA), "min_effect": (Optional[List[str]], _EFFECT),
    "strict": (Optional[bool], _STRICT), "markdown": (Optional[Path], _MD), "junit": (Optional[Path], _JUNIT),
    "diff_dir": (Optional[Path], _DIFF)})


def _config(run: _Run, command, verdict: _Verdict | None = None, baseline=None):
    from perfkit.errors import UsageError
    from perfkit.gate import config as cfgmod

    v = verdict or _Verdict()
    config, name, benchmark, metrics, alpha, timeout = (run.config, run.name, run.benchmark, run.metrics, v.alpha,
                                                         run.timeout)
    cfg = cfgmod.load(config, required=config is not None)
    if command:
        cfg.benchmarks = [cfgmod.Benchmark(name=name, command=list(command), cwd=str(Path.cwd()))]
    if benchmark:
        known = {b.name for b in cfg.benchmarks}
        missing = [n for n in benchmark if n not in known]
        if missing:
            raise UsageError(f"no benchmark named {missing[0]!r}",
                             f"configured: {', '.join(sorted(known)) or 'none'}")
        cfg.benchmarks = [b for b in cfg.benchmarks if b.name in benchmark]
    if alpha is not None and not (0 < alpha <= 0.5):
        raise UsageError(f"--alpha must be in (0, 0.5], not {alpha:g}")
    if timeout is not None and timeout <= 0:
        raise UsageError("--timeout must be positive")
    cfg = cfgmod.with_overrides(
        cfg, metrics=cfgmod.parse_metrics(metrics) if metrics else None, repetitions=run.repetitions,
        max_repetitions=run.max_repetitions, warmups=run.warmups, alpha=alpha, timeout=timeout, profile=run.profile,
        strict=v.strict, min_effect=cfgmod.parse_min_effects(v.min_effect) if v.min_effect else None,
        baseline=baseline)
    if metrics:  # the flag beats per-benchmark lists
        for b in cfg.benchmarks:
            b.metrics = None
    return cfg


def _require_benchmarks(cfg, how: str) -> None:
    from perfkit.errors import UsageError

    if not cfg.benchmarks:
        where = cfg.source or "pyproject.toml"
        raise UsageError(f"no benchmarks: {where} has none under [tool.perfkit.gate.benchmarks]",
                         f"add one (see docs/gate.md) or {how}")


def _check_outputs(*paths) -> None:
    """Output files are writable before anything runs (their directories may be created)."""
    from perfkit.gate import preflight

    preflight.require([preflight.writable_file(p, create_parents=True) for p in paths if p is not None])


def _diff_dir(diff_dir) -> None:
    """The differential flame graphs' directory: writable (checked first), then created."""
    if diff_dir is not None:
        from perfkit.fileio import private_mkdir
        from perfkit.gate import preflight

        preflight.require([preflight.writable_dir(diff_dir)])
        private_mkdir(diff_dir)


def _progress():
    from perfkit.console import live_status

    state = {"line": "starting"}

    def update(text: str) -> None:
        state["line"] = text

    return live_status(lambda: f"perfkit gate · {state['line']}"), update


def _verdict_run(run: _Run, verdict: _Verdict, measure):
    """Check the report paths, measure (``measure(progress, diff_dir)``) under a live status, report."""
    _check_outputs(verdict.markdown, verdict.junit)
    _diff_dir(verdict.diff_dir)
    status, update = _progress()
    with status:
        res = measure(update, str(verdict.diff_dir) if verdict.diff_dir else None)
    _emit(res, run.as_json, verdict.markdown, verdict.junit)
    return res


def _emit(res, as_json: bool, markdown: Optional[Path], junit: Optional[Path]) -> None:
    import os

    from perfkit.console import err_console, out_console, print_json, warn
    from perfkit.fileio import atomic_write, private_mkdir
    from perfkit.gate import report

    for p in (markdown, junit):
        if p is not None and not Path(p).parent.exists():
            private_mkdir(Path(p).parent)
    md = report.markdown(res)
    if markdown is not None:
        atomic_write(markdown, md)
        res.outputs.append({"path": str(markdown), "format": "markdown"})
    if junit is not None:
        atomic_write(junit, report.junit_xml(res))
        res.outputs.append({"path": str(junit), "format": "junit"})
    problem = report.append_step_summary(md)
    if problem:
        warn(problem)
    lines = report.github_annotations(res) if os.environ.get("GITHUB_ACTIONS") == "true" else []
    if as_json:
        for w in res.warnings:
            warn(w)
        for line in lines:  # stdout holds the JSON document
            err_console().file.write(line + "\n")
        print_json(res.to_json())
    else:
        out_console().print(report.TerminalView(res))
        for line in lines:
            out_console().file.write(line + "\n")
        for o in res.outputs:
            err_console().print(f"wrote {o['path']} ({o['format']})", markup=False, highlight=False)


@app.command(context_settings={"allow_interspersed_args": False})
@_run_options
def record(
    command: Optional[List[str]] = typer.Argument(None, help="Benchmark command (after --) instead of the config's."),
    baseline: Optional[Path] = _BASELINE,
    *,
    run: _Run,
) -> None:
    """Measure every benchmark and write the baseline file (JSON, commit it).

    Runs max-repetitions plain runs (and 3x deterministic-repetitions memray runs) per
    benchmark, plus py-spy profiles of a few runs, used later to explain CPU regressions.
    """
    from perfkit.console import err_console, print_json
    from perfkit.gate import baseline as baseline_mod
    from perfkit.gate import flow

    cfg = _config(run, command, baseline=str(baseline) if baseline else None)
    _require_benchmarks(cfg, "give the command after --: perfkit gate record -- python bench.py")
    _check_outputs(Path(cfg.baseline))  # a missing directory is created (0700) when writing
    status, update = _progress()
    with status:
        base, _ = flow.record(cfg, progress=update)
    if Path(cfg.baseline).exists() and run.benchmark:  # a partial record keeps the other benchmarks
        try:
            old = baseline_mod.read(cfg.baseline)
            for k, v in old.benchmarks.items():
                base.benchmarks.setdefault(k, v)
        except Exception:
            pass
    path = baseline_mod.write(base, cfg.baseline)
    if run.as_json:
        print_json({"command": "gate", "mode": "record", "baseline": str(path), **base.to_json()})
        return
    from rich.text import Text

    from perfkit.console import out_console
    from perfkit.gate.report import record_table

    table = record_table(base.benchmarks, f"perfkit gate record → {path}")
    out_console().print(table)
    err_console().print(Text(f"baseline written to {path}: commit it; `perfkit gate check` compares with it"))


@app.command(context_settings={"allow_interspersed_args": False})
@_verdict_options
@_run_options
def check(
    command: Optional[List[str]] = typer.Argument(None, help="Benchmark command (after --) instead of the config's."),
    baseline: Optional[Path] = _BASELINE,
    *,
    run: _Run,
    verdict: _Verdict,
) -> None:
    """Measure the current code and compare it with the baseline file.

    Exit 1 on a regression; inconclusive (too noisy to tell) passes unless --strict.
    """
    from perfkit.gate import baseline as baseline_mod
    from perfkit.gate import flow

    cfg = _config(run, command, verdict, baseline=str(baseline) if baseline else None)
    stored = baseline_mod.read(cfg.baseline)
    if not cfg.benchmarks and not command:
        # no config: check every benchmark of the baseline with its recorded command
        from perfkit.gate.config import Benchmark

        cfg.benchmarks = [Benchmark(name=k, command=list(v.get("command") or []), cwd=str(Path.cwd()))
                          for k, v in stored.benchmarks.items() if v.get("command")]
    _require_benchmarks(cfg, "give the command after --: perfkit gate check -- python bench.py")
    res = _verdict_run(run, verdict, lambda update, diff_dir: flow.check(cfg, stored, progress=update,
                                                                          diff_dir=diff_dir))
    raise typer.Exit(res.exit_code)


@app.command()
@_verdict_options
@_run_options
def compare(
    base_cmd: Optional[str] = typer.Option(None, "--base-cmd", help="Command of the base side (one string)."),
    head_cmd: Optional[str] = typer.Option(None, "--head-cmd", help="Command of the head side (one string)."),
    base_dir: Optional[Path] = typer.Option(None, "--base-dir", help="Checkout of the base side: the configured "
                                                                     "benchmarks run there."),
    head_dir: Optional[Path] = typer.Option(None, "--head-dir", help="Checkout of the head side [default: .]."),
    *,
    run: _Run,
    verdict: _Verdict,
) -> None:
    """Run base and head interleaved (A B B A ...) in one job and compare them (recommended).

    Either --base-cmd and --head-cmd (one benchmark), or --base-dir (and --head-dir)
    with the benchmarks of [tool.perfkit.gate] run in each checkout.
    """
    from perfkit.errors import UsageError
    from perfkit.gate import flow
    from perfkit.gate.config import parse_command

    if (base_cmd is None) != (head_cmd is None):
        raise UsageError("give both --base-cmd and --head-cmd", "e.g. --base-cmd 'python bench.py' "
                                                                "--head-cmd 'python bench.py --new'")
    if base_cmd is None and base_dir is None:
        raise UsageError("compare needs --base-cmd and --head-cmd, or --base-dir (a checkout of the base)",
                         "e.g. git worktree add ../base origin/main && perfkit gate compare --base-dir ../base")
    for d in (base_dir, head_dir):
        if d is not None and not d.is_dir():
            raise UsageError(f"{d} is not a directory")
    command = parse_command(head_cmd, "--head-cmd") if head_cmd is not None else None
    cfg = _config(run, command, verdict)
    _require_benchmarks(cfg, "give --base-cmd and --head-cmd")
    base = flow.Side(command=parse_command(base_cmd, "--base-cmd") if base_cmd else None,
                     directory=str(base_dir) if base_dir else None)
    head = flow.Side(command=command, directory=str(head_dir) if head_dir else None)
    res = _verdict_run(run, verdict, lambda update, diff_dir: flow.compare(cfg, base, head, progress=update,
                                                                            diff_dir=diff_dir))
    raise typer.Exit(res.exit_code)
