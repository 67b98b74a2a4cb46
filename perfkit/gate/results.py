"""Result objects of a gate run (pure data; reports render them)."""

from __future__ import annotations

import math
import socket
import time
from dataclasses import dataclass, field

from perfkit import stats
from perfkit.gate.metrics import METRICS


@dataclass
class MetricResult:
    benchmark: str
    metric: str
    base: list[float]
    head: list[float]
    min_effect: float
    paired: bool
    interval: stats.Interval | None = None
    decision: str = stats.INCONCLUSIVE
    looks: int = 0
    too_noisy: bool = False  # undecided and more runs (up to the cap) would not decide it
    elapsed_s: float = 0.0  # time spent in this metric's runs (runs shared by several metrics: split evenly)
    between_sd: float = 0.0  # shift shared by all runs of one process, unseen by their spread (log sd)
    base_groups: int = 1  # processes (sessions) the base values come from

    @property
    def unit(self) -> str:
        return METRICS[self.metric].unit

    @property
    def tier(self) -> str:
        return METRICS[self.metric].tier

    @property
    def change(self) -> float | None:
        """Estimated relative change (0.1 = +10 %)."""
        return None if self.interval is None else self.interval.ratio - 1.0

    def ci_text(self) -> str:
        iv = self.interval
        if iv is None or math.isinf(iv.hi) or iv.lo <= 0:
            return "too few runs"
        return f"{(iv.lo - 1) * 100:+.1f}…{(iv.hi - 1) * 100:+.1f}%"

    def to_json(self) -> dict:
        return {"benchmark": self.benchmark, "metric": self.metric, "unit": self.unit, "tier": self.tier,
                "decision": self.decision, "min_effect": self.min_effect, "paired": self.paired,
                "looks": self.looks, "too_noisy": self.too_noisy, "elapsed_s": round(self.elapsed_s, 3),
                "change": None if self.change is None else round(self.change, 6),
                "interval": self.interval.to_json() if self.interval else None,
                "base": {"n": len(self.base), "median": stats.median(self.base) if self.base else None,
                         "cv": round(stats.cv(self.base), 6), "values": self.base},
                "head": {"n": len(self.head), "median": stats.median(self.head) if self.head else None,
                         "cv": round(stats.cv(self.head), 6), "values": self.head}}


@dataclass
class BenchResult:
    name: str
    base_command: list[str]
    head_command: list[str]
    results: list[MetricResult] = field(default_factory=list)
    explanation: dict | None = None  # top functions whose CPU share grew
    notes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0  # the whole benchmark: warm-ups, every run, profiles

    def to_json(self) -> dict:
        return {"name": self.name, "base_command": self.base_command, "head_command": self.head_command,
                "metrics": [r.to_json() for r in self.results], "explanation": self.explanation,
                "notes": self.notes, "elapsed_s": round(self.elapsed_s, 3)}


@dataclass
class GateResult:
    mode: str  # check | compare | record
    benchmarks: list[BenchResult]
    alpha: float
    strict: bool
    environment: dict
    baseline_environment: dict | None = None
    warnings: list[str] = field(default_factory=list)
    outputs: list[dict] = field(default_factory=list)
    elapsed_s: float = 0.0
    started: float = field(default_factory=time.time)  # epoch seconds: when the measuring began
    hostname: str = field(default_factory=lambda: socket.gethostname() or "localhost")
    descriptions: dict[str, str] = field(default_factory=dict)  # metric -> what it measured, if not METRICS'

    def all_results(self) -> list[MetricResult]:
        return [r for b in self.benchmarks for r in b.results]

    def count(self, decision: str) -> int:
        return sum(1 for r in self.all_results() if r.decision == decision)

    @property
    def verdict(self) -> str:
        if self.count(stats.REGRESSION):
            return "regression"
        if self.count(stats.INCONCLUSIVE):
            return "inconclusive"
        return "pass"

    @property
    def exit_code(self) -> int:
        if self.verdict == "regression":
            return 1
        if self.verdict == "inconclusive" and self.strict:
            return 1
        return 0

    def to_json(self) -> dict:
        return {"command": "gate", "mode": self.mode, "verdict": self.verdict, "exit_code": self.exit_code,
                "strict": self.strict, "alpha": self.alpha, "elapsed_s": round(self.elapsed_s, 3),
                "started": timestamp(self.started),
                "counts": {d: self.count(d) for d in (stats.REGRESSION, stats.IMPROVEMENT, stats.NO_CHANGE,
                                                      stats.INCONCLUSIVE)},
                "environment": self.environment, "baseline_environment": self.baseline_environment,
                "warnings": self.warnings, "benchmarks": [b.to_json() for b in self.benchmarks],
                "outputs": self.outputs}


def timestamp(epoch: float) -> str:
    """ISO 8601 in UTC with its offset, to the second (``2024-05-01T12:00:00+00:00``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(epoch))
