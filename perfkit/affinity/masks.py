"""The masks a plan must respect, per worker, read from live processes.

A worker's *inherited* mask is what it may be planned within: its current affinity —
unless perfkit itself pinned it (an earlier ``apply``, recorded in the state file with
the process's start time), in which case the original mask saved then.  So a new
layout can be applied over an old one, while a mask set by taskset / systemd is never
widened.

Builds ``Assignment`` inputs for ``analysis.affinity_plan.make_plan`` from the live
tree of a master (or N hypothetical workers on a fake tree), and checks explicit
assignments (``--assign PID=CPUS``, a saved plan file).
"""

from __future__ import annotations

import json
from pathlib import Path

from perfkit.affinity import topology
from perfkit.affinity.plan import Assignment, check_inside
from perfkit.affinity.workers import _is_helper, create_time, load_state, state_path, tree
from perfkit.errors import InputFormatError, UsageError


def parse_cpus(text: str) -> list[int]:
    try:
        cpus = topology.parse_cpulist(text)
    except ValueError:
        raise UsageError(f"bad CPU list {text!r}", "use e.g. 0-3,8") from None
    if not cpus:
        raise UsageError(f"empty CPU list {text!r}")
    return cpus


def saved_originals(master: int, state: str | None) -> dict[str, dict]:
    try:
        return (load_state(state_path(master, state)) or {}).get("processes", {})
    except UsageError:
        return {}


def inherited_mask(pid: int, saved: dict[str, dict], start: float | None = None) -> list[int] | None:
    mask = topology.allowed_cpus(pid)
    if mask is None:
        return None
    entry = saved.get(str(pid))
    start = create_time(pid) if start is None else start
    if entry and start is not None and abs(float(entry.get("create_time", 0)) - start) < 0.05:
        return topology.parse_cpulist(entry.get("original", "")) or mask
    return mask


def planning_inputs(pid: int, root: str = "/", *, hypothetical: int | None = None, state: str | None = None,
                    include_master: bool = False) -> list[Assignment]:
    """The workers to plan for (their inherited masks as ``current``); the master first if asked."""
    if hypothetical is not None:
        mask = topology.allowed_cpus(pid, root)
        return [Assignment(pid=-(i + 1), cpus=[], current=mask, name=f"worker {i + 1}") for i in range(hypothetical)]
    saved = saved_originals(pid, state)
    procs = tree(pid)
    out = []
    for p in procs[1:]:
        if _is_helper(p):
            continue
        try:
            start = p.create_time()
            out.append(Assignment(pid=p.pid, cpus=[], current=inherited_mask(p.pid, saved, start), name=p.name(),
                                  create_time=start))
        except Exception:  # exited while we looked: it simply is not planned
            continue
    if include_master or not out:
        master = procs[0]
        out.insert(0, Assignment(pid=pid, cpus=[], current=inherited_mask(pid, saved, master.create_time()),
                                 name="master", create_time=master.create_time()))
    return out


def explicit_assignments(assign: list[str] | None, plan_file: str | Path | None, master: int | None,
                         state: str | None = None) -> tuple[list[Assignment], int]:
    """Assignments from ``--assign PID=CPUS`` or a saved plan, each checked against its
    own usable set (online ∩ cpuset ∩ inherited mask).  Returns them and the master."""
    out: list[Assignment] = []
    if plan_file is not None:
        try:
            doc = json.loads(Path(plan_file).read_text())
            master = master or doc.get("master")
            for a in doc["assignments"]:
                out.append(Assignment(pid=int(a["pid"]), cpus=parse_cpus(a["cpus"]), current=None,
                                      name=a.get("name", ""), create_time=a.get("create_time")))
        except FileNotFoundError:
            raise UsageError(f"no such plan file: {plan_file}") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputFormatError(f"{plan_file} is not a perfkit affinity plan ({type(exc).__name__})",
                                   "create one with: perfkit affinity plan --pid N -o plan.json") from None
    for item in assign or []:
        left, sep, right = item.partition("=")
        if not sep or not left.strip().isdigit():
            raise UsageError(f"bad --assign {item!r}", "use PID=CPUS, e.g. --assign 4242=0-1")
        out.append(Assignment(pid=int(left), cpus=parse_cpus(right)))
    if not out:
        raise UsageError("the plan has no assignments")
    master = int(master if master is not None else out[0].pid)
    saved = saved_originals(master, state)
    topo = topology.read_topology()
    for a in out:
        mask = inherited_mask(a.pid, saved)
        if mask is None:
            continue  # gone: apply reports it
        a.current = mask
        usable = topology.budget(a.pid, "/", topo).usable
        check_inside(a.cpus, sorted(set(usable) & set(mask)), f"pid {a.pid}")
    return out, master
