"""The metrics the gate can compare, grouped by how noisy they are.

Every metric is "lower is better".  ``run`` says which kind of run measures it:
``plain`` (the command alone: wall, CPU, peak RSS, max threads), ``memray``
(``memray run``: allocation count and peak heap) or ``callgrind`` (instruction count
under valgrind; opt-in, ~50x slower).  ``method`` is the default test: ``rank``
(Wilcoxon signed-rank / Mann-Whitney with a Hodges-Lehmann interval; robust to the
outliers noisy runners produce) or ``t`` (t interval on log values; right for the
nearly deterministic metrics, where 3 runs are enough).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str  # seconds | bytes | count
    tier: str  # deterministic | low-noise | noisy
    run: str  # plain | memray | callgrind
    method: str  # rank | t
    min_effect: float  # default minimum relative change that matters
    description: str


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("instructions", "count", "deterministic", "callgrind", "t", 0.01,
           "instructions executed (valgrind --tool=callgrind)"),
    Metric("allocations", "count", "deterministic", "memray", "t", 0.01,
           "number of allocations (memray run)"),
    Metric("heap_peak", "bytes", "deterministic", "memray", "t", 0.01,
           "peak heap memory (memray run)"),
    Metric("threads", "count", "deterministic", "plain", "t", 0.0,
           "maximum number of threads alive at once"),
    Metric("rss", "bytes", "low-noise", "plain", "t", 0.01,
           "peak resident set size (wait4 rusage)"),
    Metric("cpu", "seconds", "noisy", "plain", "rank", 0.03,
           "CPU time, user + system (wait4 rusage)"),
    Metric("wall", "seconds", "noisy", "plain", "rank", 0.05,
           "wall-clock time"),
)}

# wall time is opt-in: on shared runners its run-to-run spread (12-46 % here) is far
# above any effect worth gating on, and CPU time tracks the same work with less noise
DEFAULT_METRICS = ("cpu", "rss", "threads", "allocations", "heap_peak")
RUN_KINDS = ("plain", "memray", "callgrind")
TIME_METRICS = ("cpu", "wall")


def unknown(names) -> list[str]:
    return [n for n in names if n not in METRICS]


def known_list() -> str:
    return ", ".join(METRICS)
