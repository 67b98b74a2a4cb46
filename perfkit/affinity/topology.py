"""CPU topology and the effective CPU budget of a process, read from /sys and /proc.

* ``read_topology(root)``: online logical CPUs, their physical core (package, core_id),
  SMT siblings, last-level-cache group and NUMA node; offline CPUs.
* the cgroup limits and the affinity mask come from ``perfkit.procs.cgroup``.
* ``budget(pid, root)``: all of the above combined into one number of CPUs and the
  reason it is that number ("quota 1.5 CPUs from /app.slice").

Every reader takes ``root`` (default ``/``) so tests run against fake trees.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from perfkit.procs.cgroup import (  # noqa: F401  (re-exported for the affinity package)
    MAX_CPU,
    CgroupLimits,
    Limit,
    Mount,
    _read,
    allowed_cpus,
    format_cpulist,
    parse_cpulist,
    read_cgroup_limits,
    read_cgroup_paths,
    read_mounts,
    read_throttling,
)

# ----------------------------------------------------------------------------- topology


@dataclass(frozen=True)
class Cpu:
    id: int
    package: int
    core: int  # core_id within the package
    node: int
    llc: int  # index of the last-level-cache group (lowest CPU id sharing it)
    siblings: tuple[int, ...]  # SMT siblings including itself

    @property
    def core_key(self) -> tuple[int, int]:
        return (self.package, self.core)

    @property
    def thread_index(self) -> int:
        """0 for the first hardware thread of its core, 1 for the second..."""
        return self.siblings.index(self.id) if self.id in self.siblings else 0


@dataclass
class Topology:
    cpus: dict[int, Cpu]
    offline: list[int] = field(default_factory=list)

    @property
    def online(self) -> list[int]:
        return sorted(self.cpus)

    def cores(self) -> dict[tuple[int, int], list[int]]:
        out: dict[tuple[int, int], list[int]] = {}
        for c in sorted(self.cpus.values(), key=lambda c: c.id):
            out.setdefault(c.core_key, []).append(c.id)
        return out

    def nodes(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for c in sorted(self.cpus.values(), key=lambda c: c.id):
            out.setdefault(c.node, []).append(c.id)
        return out

    def llcs(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for c in sorted(self.cpus.values(), key=lambda c: c.id):
            out.setdefault(c.llc, []).append(c.id)
        return out

    @property
    def smt(self) -> bool:
        return any(len(c.siblings) > 1 for c in self.cpus.values())

    def to_json(self) -> dict:
        return {
            "online": format_cpulist(self.online),
            "offline": format_cpulist(self.offline),
            "logical_cpus": len(self.cpus),
            "physical_cores": len(self.cores()),
            "smt": self.smt,
            "cores": [format_cpulist(v) for v in self.cores().values()],
            "llc_groups": [format_cpulist(v) for v in self.llcs().values()],
            "numa_nodes": {str(k): format_cpulist(v) for k, v in self.nodes().items()},
        }


def read_topology(root: str = "/") -> Topology:
    base = "sys/devices/system/cpu"
    online_txt = _read(root, f"{base}/online")
    if online_txt is None:
        online = sorted(int(n[3:]) for n in _listdir(root, base) if n.startswith("cpu") and n[3:].isdigit())
        if not online:
            online = list(range(os.cpu_count() or 1)) if root in ("/", "") else [0]
    else:
        online = parse_cpulist(online_txt)
    offline = parse_cpulist(_read(root, f"{base}/offline") or "")
    node_of = _node_map(root)
    cpus: dict[int, Cpu] = {}
    for cid in online:
        t = f"{base}/cpu{cid}/topology"
        package = _int(_read(root, f"{t}/physical_package_id"), 0)
        core = _int(_read(root, f"{t}/core_id"), cid)
        sib_txt = _read(root, f"{t}/thread_siblings_list") or _read(root, f"{t}/core_cpus_list")
        siblings = tuple(s for s in parse_cpulist(sib_txt) if s in online) if sib_txt else (cid,)
        if cid not in siblings:
            siblings = tuple(sorted(set(siblings) | {cid}))
        cpus[cid] = Cpu(id=cid, package=package, core=core, node=node_of.get(cid, 0),
                        llc=_llc_of(root, cid, online), siblings=siblings)
    if not cpus:
        cpus[0] = Cpu(0, 0, 0, 0, 0, (0,))
    return Topology(cpus=cpus, offline=[c for c in offline if c not in cpus])


def _listdir(root: str, path: str) -> list[str]:
    try:
        return os.listdir(os.path.join(root, path))
    except OSError:
        return []


def _int(text: str | None, default: int) -> int:
    try:
        return int(text.strip()) if text is not None else default
    except ValueError:
        return default


def _node_map(root: str) -> dict[int, int]:
    out: dict[int, int] = {}
    base = "sys/devices/system/node"
    for name in _listdir(root, base):
        if name.startswith("node") and name[4:].isdigit():
            for cpu in parse_cpulist(_read(root, f"{base}/{name}/cpulist") or ""):
                out[cpu] = int(name[4:])
    return out


def _llc_of(root: str, cid: int, online: list[int]) -> int:
    """The lowest online CPU sharing this CPU's highest-level (non-instruction) cache."""
    cache = f"sys/devices/system/cpu/cpu{cid}/cache"
    best_level, shared = -1, None
    for name in _listdir(root, cache):
        if not name.startswith("index"):
            continue
        if (_read(root, f"{cache}/{name}/type") or "").strip() == "Instruction":
            continue
        level = _int(_read(root, f"{cache}/{name}/level"), -1)
        lst = _read(root, f"{cache}/{name}/shared_cpu_list")
        if level > best_level and lst is not None:
            best_level, shared = level, [c for c in parse_cpulist(lst) if c in online]
    return min(shared) if shared else cid


# ----------------------------------------------------------------------------- budget


@dataclass
class Budget:
    cpus: float  # the effective CPU budget (may be fractional)
    reason: str
    usable: list[int]  # CPUs the process may be pinned to: online ∩ mask ∩ cpuset
    online: int
    mask: list[int] | None
    limits: CgroupLimits

    @property
    def whole(self) -> int:
        """Whole CPUs to plan CPU-bound workers for (at least 1)."""
        return max(1, int(math.floor(self.cpus + 1e-9)))

    def to_json(self) -> dict:
        return {"cpus": round(self.cpus, 3), "whole_cpus": self.whole, "reason": self.reason,
                "usable": format_cpulist(self.usable), "online": self.online,
                "affinity_mask": format_cpulist(self.mask) if self.mask is not None else None,
                "cgroup": self.limits.to_json()}


def _fmt_cpus(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".")


def budget(pid: int | str = "self", root: str = "/", topo: Topology | None = None) -> Budget:
    topo = topo or read_topology(root)
    online = set(topo.online)
    mask = allowed_cpus(pid, root)
    limits = read_cgroup_limits(pid, root)
    usable = set(online)
    reason = f"{len(online)} online CPUs"
    if limits.cpuset is not None:
        narrowed = usable & set(limits.cpuset.value)
        if narrowed != usable:
            reason = (f"cpuset {format_cpulist(limits.cpuset.value)} from {limits.cpuset.cgroup} "
                      f"(cgroup v{limits.cpuset.version})")
        usable = narrowed
    if mask is not None:
        narrowed = usable & set(mask)
        if narrowed != usable:
            reason = f"affinity mask {format_cpulist(mask)} (taskset / sched_setaffinity)"
        usable = narrowed
    if not usable:  # should not happen on a real system; be conservative
        usable = set(mask or online)
    cpus = float(len(usable))
    if limits.quota is not None and limits.quota.value < cpus:
        cpus = float(limits.quota.value)
        reason = (f"quota {_fmt_cpus(cpus)} CPUs from {limits.quota.cgroup} "
                  f"(cgroup v{limits.quota.version})")
    elif limits.quota is not None:
        reason += f"; quota {_fmt_cpus(limits.quota.value)} CPUs from {limits.quota.cgroup} is not tighter"
    return Budget(cpus=cpus, reason=reason, usable=sorted(usable), online=len(online), mask=mask, limits=limits)
