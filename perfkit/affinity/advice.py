"""Worker / thread count advice from the CPU budget and measured behaviour.

Rules (documented in docs/affinity.md):

* **CPU-bound under the GIL** (some process holds the GIL ≥ 60 % of the time, or
  ≥ 35 % while its threads are not mostly waiting): threads cannot use more than one
  CPU per process → run processes, ``N = floor(budget)`` (at least 1), 1 thread each for CPU work.
* **mostly waiting** (GIL held < 10 %, or < 30 % with thread-time idle ≥ 70 % —
  py-spy's idle detection is noisy on a loaded box, the GIL share is not): threads / async
  are fine; a handful of processes (≤ budget) each with many threads — sized by
  Little's law, threads ≈ 1 / (1 − idle share), capped at 64.
* otherwise **mixed**: processes = budget, 2–4 threads each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

GIL_BOUND = 0.35
GIL_SURE = 0.6
IDLE_BOUND = 0.7
GIL_LOW = 0.3
GIL_RARE = 0.1


@dataclass
class Recommendation:
    kind: str  # "gil-bound", "waiting", "mixed"
    processes: int
    threads: int
    summary: str
    reasons: list[str] = field(default_factory=list)
    decided_on: dict = field(default_factory=dict)  # the numbers and the rule that made the decision

    def decided_text(self) -> str:
        d = self.decided_on
        if not d:
            return ""
        return (f"decided on: GIL held {d['gil_share']:.0%} and threads idle {d['idle_share']:.0%} in pid "
                f"{d['pid']}, {d['cpus_used']:.2f} CPUs used by the tree (/proc ticks over the sampling windows), "
                f"budget {d['budget_cpus']:g} CPUs — rule: {d['rule']}")

    def to_json(self) -> dict:
        return {"kind": self.kind, "processes": self.processes, "threads_per_process": self.threads,
                "summary": self.summary, "reasons": self.reasons, "decided_on": self.decided_on,
                "decided_text": self.decided_text()}


def recommend(budget_cpus: float, budget_reason: str, behaviour) -> Recommendation:
    procs = [p for p in behaviour.processes]
    n = max(1, int(math.floor(budget_cpus + 1e-9)))
    reasons = [f"CPU budget {budget_cpus:.2f}".rstrip("0").rstrip(".") + f" CPUs ({budget_reason})"]
    if not procs:
        return Recommendation("unknown", n, 1, "no samples: the target did nothing measurable", reasons)
    busiest = max(procs, key=lambda p: (p.gil_share, p.cpu))
    total_cpu = sum(p.cpu for p in procs)
    thread_time = sum(p.threads for p in procs) or 1
    idle = sum(p.idle_share * p.threads for p in procs) / thread_time
    reasons.append(f"GIL held {busiest.gil_share:.0%} of the time in pid {busiest.pid} "
                   f"({busiest.active_threads:.1f} running threads per sample, {busiest.threads} threads)")
    reasons.append(f"threads idle {idle:.0%} of their time; the process tree uses {total_cpu:.2f} CPUs")
    def decided(rule: str) -> dict:
        return {"pid": busiest.pid, "gil_share": round(busiest.gil_share, 3), "idle_share": round(idle, 3),
                "cpus_used": round(total_cpu, 3), "budget_cpus": round(budget_cpus, 3), "rule": rule}

    if busiest.gil_share >= GIL_SURE or (busiest.gil_share >= GIL_BOUND and busiest.idle_share < IDLE_BOUND):
        if busiest.active_threads >= 1.5:
            reasons.append(f"{busiest.active_threads:.1f} threads want to run but only the GIL holder can: "
                           "more threads add contention, not throughput")
        busy_procs = sum(1 for p in procs if p.gil_share >= GIL_BOUND)
        if busy_procs > n:
            reasons.append(f"{busy_procs} busy processes for {n} CPUs: oversubscribed")
        return Recommendation("gil-bound", n, 1,
                              f"CPU-bound under the GIL → use processes, N = {n} (the CPU budget), "
                              "1 thread each for CPU work", reasons,
                              decided(f"GIL held ≥ {GIL_SURE:.0%}, or ≥ {GIL_BOUND:.0%} with idle < {IDLE_BOUND:.0%}"
                                      f" → gil-bound; N = floor(budget) = {n}"))
    if busiest.gil_share < GIL_RARE or (busiest.gil_share < GIL_LOW and idle >= IDLE_BOUND):
        busy = max(0.01, 1.0 - idle)
        threads = max(2, min(64, int(math.ceil(1.0 / busy))))
        return Recommendation("waiting", n, threads,
                              f"mostly waiting → threads/async are fine: {n} process(es) × up to {threads} "
                              "threads (or an async event loop); more processes will not help", reasons,
                              decided(f"GIL held < {GIL_RARE:.0%}, or < {GIL_LOW:.0%} with idle ≥ {IDLE_BOUND:.0%} "
                                      f"→ waiting; threads = ceil(1 / (1 − idle)) = {threads}"))
    return Recommendation("mixed", n, 4 if idle > 0.4 else 2,
                          f"mixed CPU and waiting → {n} process(es), {4 if idle > 0.4 else 2} threads each; "
                          "confirm with perfkit affinity tune", reasons,
                          decided("neither gil-bound nor waiting → mixed; threads = 4 if idle > 40 % else 2"))
