"""What is wrong with a live worker layout (pure: reads snapshots and topology).

* oversubscription: more busy workers than the CPU budget — busy means wanting ≥ 50 %
  of a CPU: on CPU plus runnable-but-waiting (schedstat), so starved workers count;
* starved: busy workers spend ≥ 25 % of the time waiting for a CPU (run queue);
* SMT sharing: busy workers on two hardware threads of one core while a usable core
  has no busy worker;
* cross-NUMA: a worker allowed on CPUs of several NUMA nodes (it may migrate away
  from its memory), or workers of one pool on different nodes than most of them;
* throttling: the cgroup's CPU quota throttled the process during the interval.
"""

from __future__ import annotations

from dataclasses import dataclass

from perfkit.affinity.topology import format_cpulist

BUSY = 50.0
STARVED = 25.0


@dataclass
class Finding:
    kind: str
    message: str

    def to_json(self) -> dict:
        return {"kind": self.kind, "message": self.message}


def _cpu_of(w) -> list[int]:
    if len(w.allowed) == 1:
        return list(w.allowed)
    return [w.last_cpu] if w.last_cpu is not None else []


def findings(workers, topo, budget, throttle_delta: dict | None = None) -> list[Finding]:
    out: list[Finding] = []
    busy = [w for w in workers if w.role == "worker" and w.demand_percent >= BUSY]
    if len(busy) > budget.cpus + 1e-9:
        out.append(Finding("oversubscribed", f"{len(busy)} busy workers for a budget of {budget.cpus:g} CPUs "
                                             f"({budget.reason}): they queue for CPU; run {budget.whole}"))
    starved = [w for w in busy if w.runq_wait_percent >= STARVED]
    if starved:
        avg = sum(w.runq_wait_percent for w in starved) / len(starved)
        out.append(Finding("starved", f"{len(starved)} busy worker(s) wait {avg:.0f} % of the time for a CPU "
                                      "(run queue): too many workers, or other load on these CPUs"))
    # SMT siblings shared while a core idles
    core_load: dict[tuple, list[int]] = {}
    for w in busy:
        for c in _cpu_of(w):
            if c in topo.cpus:
                core_load.setdefault(topo.cpus[c].core_key, []).append(w.pid)
    usable_cores = {topo.cpus[c].core_key for c in budget.usable if c in topo.cpus}
    idle_cores = usable_cores - set(core_load)
    for key, pids in sorted(core_load.items()):
        if len(pids) > 1 and idle_cores and topo.smt:
            out.append(Finding("smt-shared", f"workers {', '.join(map(str, pids))} share physical core {key[1]} "
                                             f"(package {key[0]}) while {len(idle_cores)} core(s) have no busy "
                                             "worker: pin with --strategy spread"))
    nodes = topo.nodes()
    if len(nodes) > 1:
        node_of = {c: n for n, cs in nodes.items() for c in cs}
        for w in workers:
            if w.role != "worker":
                continue
            spans = sorted({node_of[c] for c in w.allowed if c in node_of})
            if len(spans) > 1:
                out.append(Finding("cross-numa", f"worker {w.pid} may run on NUMA nodes "
                                                 f"{', '.join(map(str, spans))} (CPUs {format_cpulist(w.allowed)}): "
                                                 "it can migrate away from its memory; pin it to one node"))
    if throttle_delta and throttle_delta.get("nr_throttled", 0) > 0:
        out.append(Finding("throttled", f"the CPU quota throttled the cgroup {throttle_delta.get('cgroup', '')} in "
                                        f"{throttle_delta['nr_throttled']} of {throttle_delta.get('nr_periods', 0)} "
                                        f"periods ({throttle_delta.get('throttled_s', 0):.3f} s): fewer busy workers "
                                        "or a larger quota"))
    return out


def pin_status(workers, saved: dict[str, dict], usable: list[int]) -> list[Finding]:
    """Set each process's ``status`` — pinned (by perfkit, still on the applied CPUs),
    unpinned (the master's / the full usable mask) or restricted (some other mask) —
    and flag workers that are unpinned although an apply happened (started later)."""
    master = next((w for w in workers if w.role == "master"), None)
    late = []
    for w in workers:
        entry = saved.get(str(w.pid))
        if entry and entry.get("applied") == format_cpulist(w.allowed):
            w.status = "pinned"
        elif w.role == "worker" and master is not None and w.allowed == master.allowed:
            w.status = "unpinned"
            if saved:
                late.append(w.pid)
        elif w.allowed == usable:
            w.status = "unpinned"
        else:
            w.status = "restricted"
    if not late:
        return []
    return [Finding("unpinned", f"worker(s) {', '.join(map(str, late))} are not pinned (started after the last "
                                "apply?): run perfkit affinity apply again")]
