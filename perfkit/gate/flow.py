"""The three gate workflows — record, check, compare — over all selected benchmarks."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from perfkit.gate import baseline as baseline_mod
from perfkit.gate import bench, explain, preflight, runner
from perfkit.gate.config import Benchmark, GateConfig
from perfkit.gate.results import BenchResult, GateResult

Progress = runner.Progress


@dataclass
class Side:
    """How to run one side of a compare: a command override and/or a checkout directory."""

    command: list[str] | None = None
    directory: str | None = None

    def spec(self, cfg: GateConfig, b: Benchmark, name: str) -> bench.RunSpec:
        cwd = b.cwd
        if self.directory:
            cwd = _rebase(b.cwd, cfg.source, self.directory)
        return runner.spec_for(cfg, b, name, self.command, cwd)


def _rebase(cwd: str | None, config_source: str | None, directory: str) -> str:
    """The benchmark's working directory inside another checkout."""
    if cwd and config_source:
        root = Path(config_source).resolve().parent
        try:
            return str(Path(directory).resolve() / Path(cwd).resolve().relative_to(root))
        except ValueError:
            pass
    return str(Path(directory).resolve())


def record(cfg: GateConfig, *, progress: Progress | None = None) -> tuple[baseline_mod.Baseline, list[str]]:
    settings = {"repetitions": cfg.repetitions, "max_repetitions": cfg.max_repetitions, "warmups": cfg.warmups,
                "deterministic_repetitions": cfg.deterministic_repetitions}
    base = baseline_mod.new(settings)
    notes = []
    preflight.require(preflight.for_gate(cfg, [(runner.spec_for(cfg, b, "baseline"), cfg.metrics_for(b))
                                               for b in cfg.benchmarks]))
    for b in cfg.benchmarks:
        spec = runner.spec_for(cfg, b, "baseline")
        values = runner.record_values(cfg, b, spec, progress)
        entry = {"command": spec.command, "metrics": values, "profiles": None}
        if cfg.profile:
            if progress:
                progress(f"{b.name}: CPU profiles (py-spy)")
            runs = bench.profile_runs(spec, rate=runner.profile_rate(values))
            entry["profiles"] = [explain.to_collapsed(p) for p in runs]  # collapsed stacks, one per run
        base.benchmarks[b.name] = entry
        notes.append(b.name)
    return base, notes


def check(cfg: GateConfig, stored: baseline_mod.Baseline, *, progress: Progress | None = None,
          diff_dir: str | None = None) -> GateResult:
    start = time.monotonic()
    env = baseline_mod.environment()
    res = GateResult("check", [], cfg.alpha, cfg.strict, env, stored.environment)
    diffs = baseline_mod.machine_differences(stored.environment, env)
    if diffs:
        res.warnings.append("the baseline was recorded on a different machine (" + "; ".join(diffs) +
                            "): compared anyway, but time and RSS may differ for that reason alone — "
                            "prefer `perfkit gate compare`, or record the baseline on this runner")
    todo = []
    for b in cfg.benchmarks:
        if b.name not in stored.benchmarks:
            res.warnings.append(f"benchmark {b.name!r} is not in the baseline: not checked "
                                f"(record the baseline again to include it)")
        else:
            todo.append(b)
    preflight.require(preflight.for_gate(
        cfg, [(runner.spec_for(cfg, b, "head"), [m for m in cfg.metrics_for(b) if m in stored.benchmarks[b.name]
                                                 .get("metrics", {})]) for b in todo], diff_dir=diff_dir))
    alpha_per_test = cfg.alpha / runner.total_tests(cfg, todo)
    for b in todo:
        entry = stored.benchmarks[b.name]
        spec = runner.spec_for(cfg, b, "head")
        br = runner.measure(cfg, b, spec, base_values=entry["metrics"], alpha_per_test=alpha_per_test,
                            progress=progress)
        if list(entry.get("command") or []) != spec.command:
            br.notes.append("the benchmark command changed since the baseline was recorded")
        if cfg.profile and runner.cpu_regressed(br):
            if entry.get("profiles"):
                _explain(br, [explain.from_collapsed(t) for t in entry["profiles"] if t.strip()], spec, diff_dir,
                         progress)
            else:
                br.notes.append("no baseline CPU profile to explain the regression (recorded with --no-profile)")
        res.benchmarks.append(br)
    res.elapsed_s = time.monotonic() - start
    return res


def compare(cfg: GateConfig, base: Side, head: Side, *, progress: Progress | None = None,
            diff_dir: str | None = None) -> GateResult:
    start = time.monotonic()
    env = baseline_mod.environment()
    res = GateResult("compare", [], cfg.alpha, cfg.strict, env)
    preflight.require(preflight.for_gate(cfg, [(side.spec(cfg, b, name), cfg.metrics_for(b)) for b in cfg.benchmarks
                                               for side, name in ((base, "base"), (head, "head"))],
                                         diff_dir=diff_dir))
    alpha_per_test = cfg.alpha / runner.total_tests(cfg, cfg.benchmarks)
    for b in cfg.benchmarks:
        bspec, hspec = base.spec(cfg, b, "base"), head.spec(cfg, b, "head")
        # each side's files named relative to its checkout, so a function compares as itself
        bspec.root, hspec.root = (str(Path(s.directory or ".").resolve()) for s in (base, head))
        br = runner.measure(cfg, b, hspec, base=bspec, alpha_per_test=alpha_per_test, progress=progress)
        if cfg.profile and runner.cpu_regressed(br):
            if progress:
                progress(f"{b.name}: CPU profiles of base and head, interleaved (py-spy)")
            t0 = time.monotonic()
            base_runs, head_runs = bench.profile_pairs(bspec, hspec, rate=runner.profile_rate(br))
            br.elapsed_s += time.monotonic() - t0
            _explain(br, base_runs, hspec, diff_dir, progress, head_runs=head_runs)
        res.benchmarks.append(br)
    res.elapsed_s = time.monotonic() - start
    return res


def _explain(br: BenchResult, base_runs: list, hspec: bench.RunSpec, diff_dir: str | None,
             progress: Progress | None, head_runs: list | None = None) -> None:
    started = time.monotonic()
    try:
        _explain_runs(br, base_runs, hspec, diff_dir, progress, head_runs)
    finally:
        br.elapsed_s += time.monotonic() - started


def _explain_runs(br: BenchResult, base_runs: list, hspec: bench.RunSpec, diff_dir: str | None,
                  progress: Progress | None, head_runs: list | None = None) -> None:
    if head_runs is None:  # check mode: the base profiles are the baseline's
        if progress:
            progress(f"{br.name}: CPU profiles of head (py-spy)")
        head_runs = bench.profile_runs(hspec, rate=runner.profile_rate(br))
    br.explanation = explain.explain(base_runs, head_runs)
    seen = {"base": explain.seen_share(base_runs), "head": explain.seen_share(head_runs)}
    br.explanation["seen"] = {k: None if v is None else round(v, 3) for k, v in seen.items()}
    note = explain.coverage_note(seen["base"], seen["head"])
    if note:
        br.notes.append(note)
    if diff_dir:
        svg = explain.diff_svg(base_runs, head_runs)
        if svg is not None:
            from perfkit.fileio import atomic_write

            path = Path(diff_dir) / f"{_file_safe(br.name)}.diff.svg"
            atomic_write(path, svg)
            br.explanation["svg"] = str(path)


def _file_safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)[:80] or "benchmark"
