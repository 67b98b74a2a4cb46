"""Worker-to-CPU plans: which logical CPU each worker gets.

Each worker gets one logical CPU by default, or (``unit``) one physical core, one
last-level-cache group or one NUMA node — for multi-threaded workers that should stay
local without being squeezed onto one CPU.  Rules, in order:
* only CPUs in the usable set (online ∩ cgroup cpuset ∩ the process's mask) — never
  outside it — and for each worker only CPUs inside its *current* mask: a plan never
  widens an inherited mask (a worker already restricted by taskset stays inside it);
* one worker per physical core first, SMT siblings only when every usable core
  already has a worker;
* ``spread`` round-robins NUMA nodes and last-level caches (most cache and memory
  bandwidth per worker); ``compact`` fills one LLC / NUMA node before the next
  (workers that share data stay close).  Either way each worker gets one CPU, so
  each worker is NUMA- and LLC-local.
* more workers than usable CPUs: CPUs are reused (the plan says so) — pinning an
  oversubscribed pool rarely helps; the note recommends fewer workers or no pinning.

Pure functions over ``Topology``; the collectors apply the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from perfkit.affinity.topology import Topology, format_cpulist

STRATEGIES = ("spread", "compact")


@dataclass
class Assignment:
    pid: int
    cpus: list[int]
    current: list[int] | None = None  # the mask before the plan
    name: str = ""
    create_time: float | None = None  # guards against pid reuse between plan and apply

    def to_json(self) -> dict:
        return {"pid": self.pid, "cpus": format_cpulist(self.cpus), "current": format_cpulist(self.current)
                if self.current is not None else None, "name": self.name, "create_time": self.create_time}


@dataclass
class Plan:
    strategy: str
    usable: list[int]
    order: list[int]  # CPU preference order used
    assignments: list[Assignment]
    notes: list[str] = field(default_factory=list)
    master: int | None = None
    unit: str = "cpu"

    def taskset_lines(self) -> list[str]:
        return [f"taskset -a -p -c {format_cpulist(a.cpus)} {a.pid}" if a.pid > 0
                else f"taskset -c {format_cpulist(a.cpus)} <command of {a.name or 'worker'}>"
                for a in self.assignments]

    def systemd_lines(self) -> list[str]:
        cpus = sorted({c for a in self.assignments for c in a.cpus}) or self.usable
        lines = [f"CPUAffinity={format_cpulist(cpus)}"]
        return lines

    def gunicorn_hook(self) -> str:
        """A gunicorn post_fork hook that re-creates this layout for every (re)spawned worker."""
        groups = [a.cpus for a in self.assignments]
        return ("# gunicorn.conf.py: pin each new worker (respawns too) round-robin to the plan's CPUs\n"
                "import os\n"
                f"PERFKIT_CPUS = {groups!r}\n"
                "def post_fork(server, worker):\n"
                "    os.sched_setaffinity(0, PERFKIT_CPUS[worker.age % len(PERFKIT_CPUS)])\n")

    def to_json(self) -> dict:
        return {"strategy": self.strategy, "unit": self.unit, "usable": format_cpulist(self.usable),
                "order": self.order, "master": self.master,
                "assignments": [a.to_json() for a in self.assignments], "notes": self.notes,
                "taskset": self.taskset_lines(), "systemd": self.systemd_lines(),
                "gunicorn_post_fork": self.gunicorn_hook()}


def cpu_order(topo: Topology, usable: list[int], strategy: str = "spread") -> list[int]:
    """Usable CPUs in the order workers should take them."""
    if strategy not in STRATEGIES:
        from perfkit.errors import UsageError

        raise UsageError(f"unknown strategy {strategy!r}", f"use one of: {', '.join(STRATEGIES)}")
    allowed = set(usable)
    cpus = [topo.cpus[c] for c in sorted(allowed) if c in topo.cpus]
    # the rank of a CPU inside its core among *usable* siblings: 0 = first thread
    rank = {}
    for core in topo.cores().values():
        present = [c for c in core if c in allowed]
        for i, c in enumerate(present):
            rank[c] = i
    order: list[int] = []
    for level in sorted(set(rank.values())):
        tier = [c for c in cpus if rank[c.id] == level]
        if strategy == "compact":
            tier.sort(key=lambda c: (c.node, c.llc, c.package, c.core, c.id))
            order += [c.id for c in tier]
        else:
            order += _round_robin(tier)
    return order


def _round_robin(tier) -> list[int]:
    """Alternate NUMA nodes, and within a node alternate LLC groups."""
    by_node: dict[int, list] = {}
    for c in sorted(tier, key=lambda c: (c.node, c.llc, c.package, c.core, c.id)):
        by_node.setdefault(c.node, []).append(c)
    node_lists = []
    for node in sorted(by_node):
        by_llc: dict[int, list[int]] = {}
        for c in by_node[node]:
            by_llc.setdefault(c.llc, []).append(c.id)
        node_lists.append(_interleave(list(by_llc.values())))
    return _interleave(node_lists)


def _interleave(lists: list[list[int]]) -> list[int]:
    out = []
    i = 0
    while any(i < len(x) for x in lists):
        for x in lists:
            if i < len(x):
                out.append(x[i])
        i += 1
    return out


UNITS = ("cpu", "core", "llc", "node")


def cpu_groups(topo: Topology, order: list[int], unit: str = "cpu") -> list[list[int]]:
    """The usable CPUs cut into per-worker groups (one CPU, a core, an LLC or a NUMA node),
    in the order of their first CPU in ``order``."""
    if unit not in UNITS:
        from perfkit.errors import UsageError

        raise UsageError(f"unknown --per-worker unit {unit!r}", f"use one of: {', '.join(UNITS)}")
    if unit == "cpu":
        return [[c] for c in order]
    key = {"core": lambda c: c.core_key, "llc": lambda c: c.llc, "node": lambda c: c.node}[unit]
    groups: dict[object, list[int]] = {}
    for cid in order:
        groups.setdefault(key(topo.cpus[cid]), []).append(cid)
    return [sorted(g) for g in groups.values()]


def make_plan(topo: Topology, usable: list[int], workers: list[Assignment], strategy: str = "spread",
              *, master: int | None = None, unit: str = "cpu") -> Plan:
    """Give each worker one CPU (or one core / LLC / node with ``unit``).

    ``workers`` carry their current masks (``current``); a worker only ever gets CPUs
    inside its current mask.
    """
    order = cpu_order(topo, usable, strategy)
    notes: list[str] = []
    if not order:
        from perfkit.errors import UsageError

        raise UsageError("no usable CPU to plan on")
    groups = cpu_groups(topo, order, unit)
    use = [0] * len(groups)
    # most constrained workers choose first so a narrow mask is not starved
    todo = sorted(workers, key=lambda w: len(w.current) if w.current is not None else 1 << 30)  # stable
    planned: dict[int, list[int]] = {}
    for w in todo:
        cands = [i for i, g in enumerate(groups) if w.current is None or set(g) & set(w.current)]
        if not cands:
            notes.append(f"pid {w.pid}: its mask {format_cpulist(w.current or [])} has no usable CPU; left as is")
            continue
        best = min(cands, key=lambda i: (use[i], i))
        use[best] += 1
        planned[w.pid] = [c for c in groups[best] if w.current is None or c in w.current]
        if w.current is not None and set(w.current) < set(order):
            notes.append(f"pid {w.pid} was already restricted to {format_cpulist(w.current)}; "
                         f"planned inside that mask (never widened)")
    out = [Assignment(w.pid, planned[w.pid], w.current, w.name, w.create_time) for w in workers if w.pid in planned]
    if len(workers) > len(order):
        notes.append(f"{len(workers)} workers for {len(order)} usable CPUs: CPUs are shared; "
                     f"for CPU-bound work run {len(order)} workers, or leave them unpinned")
    elif len(workers) > len(groups):
        notes.append(f"{len(workers)} workers for {len(groups)} {unit} group(s): groups are shared")
    cores_used = {topo.cpus[c].core_key for a in out for c in a.cpus if c in topo.cpus}
    smt_shared = unit == "cpu" and len(cores_used) < len({c for a in out for c in a.cpus})
    if smt_shared:
        notes.append("some workers share a physical core (SMT siblings): every usable core already has one")
    return Plan(strategy=strategy, usable=sorted(usable), order=order, assignments=out, notes=notes, master=master,
                unit=unit)


def check_inside(cpus: list[int], allowed: list[int], who: str) -> None:
    """Raise a usage error when ``cpus`` leaves ``allowed`` (never pin outside it)."""
    outside = sorted(set(cpus) - set(allowed))
    if outside:
        from perfkit.errors import UsageError

        raise UsageError(f"CPU {format_cpulist(outside)} is outside the CPUs allowed for {who} "
                         f"({format_cpulist(allowed)})",
                         "the allowed set is online CPUs ∩ cgroup cpuset ∩ the process's affinity mask; "
                         "pick CPUs inside it (perfkit affinity show)")
