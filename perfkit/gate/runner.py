"""Measuring: the repetition plan, interleaved base/head runs, adaptive repetition.

Each metric belongs to a run kind (plain / memray / callgrind).  A kind starts with
``first`` runs per side and, while one of its metrics is undecided, adds ``step`` more
up to ``cap``; every evaluation is one "look".  The false-alarm budget ``alpha`` is
split evenly over every look of every metric of every benchmark (Bonferroni), so
adaptive repetition does not inflate the false-alarm rate.

In ``compare`` both sides run in one job, interleaved A B B A A B …: slow drifts of
the machine hit both sides equally and the pairs are analysed as pairs.  In ``check``
the head runs are compared with the stored baseline values (unpaired).
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Callable

from perfkit import stats
from perfkit.gate import bench
from perfkit.gate.config import Benchmark, GateConfig
from perfkit.gate.metrics import METRICS, TIME_METRICS
from perfkit.gate.results import BenchResult, MetricResult

Progress = Callable[[str], None]


@dataclass(frozen=True)
class KindPlan:
    first: int
    step: int
    cap: int

    @property
    def looks(self) -> int:
        return 1 + (math.ceil((self.cap - self.first) / self.step) if self.cap > self.first else 0)


def plans(cfg: GateConfig) -> dict[str, KindPlan]:
    det = cfg.deterministic_repetitions
    return {"plain": KindPlan(cfg.repetitions, cfg.repetitions, cfg.max_repetitions),
            "memray": KindPlan(det, det, det * 3),
            "callgrind": KindPlan(det, det, det * 2)}


def kinds_of(metrics) -> list[str]:
    """The run kinds the metrics need, in the order they run (names or MetricResults)."""
    order = ("plain", "memray", "callgrind")
    used = {METRICS[m if isinstance(m, str) else m.metric].run for m in metrics}
    return [k for k in order if k in used]


def total_tests(cfg: GateConfig, benchmarks: list[Benchmark]) -> int:
    p = plans(cfg)
    return sum(p[METRICS[m].run].looks for b in benchmarks for m in cfg.metrics_for(b)) or 1


class _Runner:
    """One kind of run for one side; a scratch directory for tool outputs."""

    def __init__(self, spec: bench.RunSpec, workdir: str) -> None:
        self.spec = spec
        self.workdir = workdir

    def run(self, kind: str) -> dict[str, float]:
        if kind == "plain":
            return bench.run_plain(self.spec)
        if kind == "memray":
            return bench.run_memray(self.spec, self.workdir)
        return bench.run_callgrind(self.spec, self.workdir)


def check_runnable(spec: bench.RunSpec, metrics) -> None:
    """Fail before any run when a metric cannot be measured for this command."""
    from perfkit.errors import UsageError

    need = sorted(m for m in metrics if METRICS[m].run == "memray")
    if need and bench.python_split(spec.command) is None:
        raise UsageError(f"benchmark {spec.name!r}: {', '.join(need)} need a command that starts with a Python "
                         f"interpreter (python script.py, python -m module), not {spec.command[0]!r}",
                         "call python directly in the command, or drop those metrics for this benchmark")


def spec_for(cfg: GateConfig, b: Benchmark, side: str, command: list[str] | None = None,
             cwd: str | None = None) -> bench.RunSpec:
    return bench.RunSpec(name=b.name, command=list(command or b.command), cwd=cwd or b.cwd, env=cfg.env_for(b),
                         timeout=cfg.timeout_for(b), side=side)


def _evaluate(r: MetricResult, alpha_per_test: float, method: str) -> None:
    r.looks += 1
    r.interval = stats.ratio_interval(r.base, r.head, paired=r.paired, method=method,
                                      alpha_per_test=alpha_per_test)
    if r.between_sd > 0:
        r.interval = stats.with_between_noise(r.interval, r.between_sd, r.base_groups, alpha_per_test)
    r.decision = stats.decide(r.interval, r.min_effect)


Sides = dict  # side name ("base" / "head") -> callable(kind) -> {metric: value}


def adaptive(rows: dict[str, MetricResult], sides: Sides, plan_of: dict[str, KindPlan], *, alpha_per_test: float,
             progress: Progress | None = None, label: str = "") -> None:
    """Measure every row's metric with adaptive repetition, kind by kind (the one loop).

    ``sides`` maps "base" and/or "head" to a function that does one run of a kind and
    returns its values; with both sides the runs interleave A B, B A, A B …  A row whose
    ``base`` is already filled (a stored baseline) gets only head runs and an unpaired
    test.  Each row's ``elapsed_s`` is its share of the time its kind's runs took.
    """
    for kind in kinds_of(rows):
        plan = plan_of[kind]
        mine = [r for r in rows.values() if METRICS[r.metric].run == kind]
        target, done = plan.first, 0
        started = time.monotonic()
        while True:
            while done < target:
                order = ("base", "head") if done % 2 == 0 else ("head", "base")
                for side_name in order:
                    if side_name not in sides:
                        continue
                    if progress:
                        progress(f"{label}: {kind} run {done + 1}/{target}" +
                                 (f" ({side_name})" if len(sides) > 1 else ""))
                    values = sides[side_name](kind)
                    for r in mine:
                        if r.decision == stats.INCONCLUSIVE:  # decided metrics keep their runs
                            (r.base if side_name == "base" else r.head).append(values[r.metric])
                done += 1
            for r in mine:
                if r.decision == stats.INCONCLUSIVE:
                    _evaluate(r, alpha_per_test, METRICS[r.metric].method)
            if target >= plan.cap:
                break
            # more runs only while some undecided metric could still be decided by the cap
            hopeful = {id(r) for r in mine if r.decision == stats.INCONCLUSIVE and not stats.hopeless(
                r.base, r.head, paired=r.paired, cap=plan.cap, min_effect=r.min_effect,
                alpha_per_test=alpha_per_test)}
            for r in mine:
                r.too_noisy = r.decision == stats.INCONCLUSIVE and id(r) not in hopeful
            if not hopeful:
                break
            target = min(plan.cap, target + plan.step)
        share = (time.monotonic() - started) / max(1, len(mine))
        for r in mine:
            r.elapsed_s += share


def collect(metrics, run: Callable[[str], dict[str, float]], plan_of: dict[str, KindPlan], *,
            progress: Progress | None = None, label: str = "") -> dict[str, list[float]]:
    """Baseline values: the cap of every kind's runs (more baseline data, same cost once)."""
    out: dict[str, list[float]] = {m: [] for m in metrics}
    for kind in kinds_of(metrics):
        n = plan_of[kind].cap
        for i in range(n):
            if progress:
                progress(f"{label}: {kind} run {i + 1}/{n}")
            values = run(kind)
            for m in metrics:
                if METRICS[m].run == kind:
                    out[m].append(values[m])
    return out


def measure(cfg: GateConfig, b: Benchmark, head: bench.RunSpec, *, base: bench.RunSpec | None = None,
            base_values: dict[str, list[float]] | None = None, alpha_per_test: float,
            progress: Progress | None = None) -> BenchResult:
    """Compare ``head`` with ``base`` (interleaved, paired) or with stored ``base_values``."""
    started = time.monotonic()
    paired = base is not None
    metrics = [m for m in cfg.metrics_for(b) if paired or m in (base_values or {})]
    result = BenchResult(b.name, list(base.command) if base else list(b.command), list(head.command))
    if not paired:
        missing = [m for m in cfg.metrics_for(b) if m not in (base_values or {})]
        if missing:
            result.notes.append(f"not in the baseline, not compared: {', '.join(missing)}")
    stored = base_values or {}
    rows = {m: MetricResult(b.name, m, [] if paired else list(stored[m]), [], cfg.threshold(b, m), paired)
            for m in metrics}
    result.results = list(rows.values())
    for spec in (head, base):
        if spec is not None:
            check_runnable(spec, metrics)
    workdir = tempfile.mkdtemp(prefix="perfkit-gate-")
    try:
        sides = {"head": _Runner(head, workdir).run}
        if base is not None:
            sides["base"] = _Runner(base, workdir).run
        for i in range(cfg.warmups):
            for run in sides.values():
                if progress:
                    progress(f"{b.name}: warm-up {i + 1}/{cfg.warmups}")
                run("plain")
        adaptive(rows, sides, plans(cfg), alpha_per_test=alpha_per_test, progress=progress, label=b.name)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result.elapsed_s = time.monotonic() - started
    return result


def record_values(cfg: GateConfig, b: Benchmark, spec: bench.RunSpec, progress: Progress | None = None
                  ) -> dict[str, list[float]]:
    """Baseline values: the cap of every kind's runs (more baseline data, same cost once)."""
    metrics = cfg.metrics_for(b)
    check_runnable(spec, metrics)
    workdir = tempfile.mkdtemp(prefix="perfkit-gate-")
    try:
        runner = _Runner(spec, workdir)
        for i in range(cfg.warmups):
            if progress:
                progress(f"{b.name}: warm-up {i + 1}/{cfg.warmups}")
            runner.run("plain")
        return collect(metrics, runner.run, plans(cfg), progress=progress, label=b.name)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def cpu_regressed(result: BenchResult) -> bool:
    return any(r.metric in TIME_METRICS + ("instructions",) and r.decision == stats.REGRESSION
               for r in result.results)


def profile_rate(result_or_values) -> int:
    """A py-spy rate giving a few hundred samples for the benchmark's wall time."""
    wall = None
    if isinstance(result_or_values, BenchResult):
        for r in result_or_values.results:
            if r.metric == "wall" and r.head:
                wall = stats.median(r.head)
    elif isinstance(result_or_values, dict) and result_or_values.get("wall"):
        wall = stats.median(result_or_values["wall"])
    if not wall:
        return 250
    return int(min(500, max(100, 400 / wall)))
