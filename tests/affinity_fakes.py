"""Build fake /sys + /proc trees from the compact descriptions in
tests/fixtures/topologies/topologies.json (used by tests/test_affinity_*.py).

A description gives the CPUs (packages × cores × SMT threads, numbering "split" =
Linux/Intel style where sibling of CPU i is i + cores, or "adjacent" = siblings are
neighbours; NUMA nodes = packages unless "nodes" says otherwise; LLC groups per
package; offline CPUs), the process's affinity mask, and its cgroups: mode v1 / v2 /
hybrid / none, the process's path per hierarchy, an optional mount root (a container
sees only its own subtree), and the files of each cgroup directory.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "topologies" / "topologies.json"
PID = 1000


def load() -> list[dict]:
    return json.loads(FIXTURES.read_text())["topologies"]


def _w(root: Path, rel: str, text: str) -> None:
    p = root / rel.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text if text.endswith("\n") else text + "\n")


def _fmt(cpus) -> str:
    from perfkit.affinity.topology import format_cpulist

    return format_cpulist(cpus)


def cpu_layout(c: dict) -> list[dict]:
    """Every possible CPU: id, package, core, thread, node, llc."""
    P, C, S = c.get("packages", 1), c["cores"], c.get("smt", 1)
    llcs = c.get("llc_per_package", 1)
    out = []
    for p in range(P):
        for core in range(C):
            for t in range(S):
                if c.get("numbering", "split") == "split":
                    cid = t * P * C + p * C + core
                else:
                    cid = (p * C + core) * S + t
                out.append({"id": cid, "package": p, "core": core, "thread": t,
                            "node": p if c.get("numa", True) else 0, "llc": (p, core // max(1, C // llcs))})
    return sorted(out, key=lambda x: x["id"])


def build(spec: dict, root: Path) -> Path:
    c = spec["cpus"]
    cpus = cpu_layout(c)
    offline = set(c.get("offline", []))
    online = [x["id"] for x in cpus if x["id"] not in offline]
    base = "sys/devices/system/cpu"
    _w(root, f"{base}/online", _fmt(online))
    _w(root, f"{base}/offline", _fmt(sorted(offline)) if offline else "")
    _w(root, f"{base}/possible", _fmt([x["id"] for x in cpus]))
    for x in cpus:
        if x["id"] in offline:
            continue
        d = f"{base}/cpu{x['id']}"
        sibs = [y["id"] for y in cpus if (y["package"], y["core"]) == (x["package"], x["core"])]
        _w(root, f"{d}/topology/core_id", str(x["core"]))
        _w(root, f"{d}/topology/physical_package_id", str(x["package"]))
        _w(root, f"{d}/topology/thread_siblings_list", _fmt(sibs))
        llc = [y["id"] for y in cpus if y["llc"] == x["llc"]]
        for i, (lvl, typ, shared) in enumerate([(1, "Data", sibs), (1, "Instruction", sibs), (2, "Unified", sibs),
                                                 (3, "Unified", llc)]):
            _w(root, f"{d}/cache/index{i}/level", str(lvl))
            _w(root, f"{d}/cache/index{i}/type", typ)
            _w(root, f"{d}/cache/index{i}/shared_cpu_list", _fmt(shared))
    nodes: dict[int, list[int]] = {}
    for x in cpus:
        nodes.setdefault(x["node"], []).append(x["id"])
    for n, ids in nodes.items():
        _w(root, f"sys/devices/system/node/node{n}/cpulist", _fmt([i for i in ids if i not in offline]))
    mask = spec.get("mask", _fmt(online))
    from perfkit.affinity.topology import parse_cpulist

    mask_list = parse_cpulist(mask)
    hexmask = format(sum(1 << i for i in mask_list), "x")
    _w(root, f"proc/{PID}/status", f"Name:\tpython\nPid:\t{PID}\nCpus_allowed:\t{hexmask}\n"
                                   f"Cpus_allowed_list:\t{mask}\nvoluntary_ctxt_switches:\t1\n")
    _cgroups(spec.get("cgroup", {"mode": "none"}), root)
    return root


def _cgroups(cg: dict, root: Path) -> None:
    mode = cg.get("mode", "none")
    mounts, lines = [], []
    hier = cg.get("hierarchies", {})  # name -> {"path": ..., "mount_root": ...}
    mid = 30
    if mode in ("v1", "hybrid"):
        mounts.append(f"{mid} 1 0:{mid} / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755")
        for i, (name, h) in enumerate(sorted((k, v) for k, v in hier.items() if k != "unified"), start=1):
            mid += 1
            ctrls = name.split(",")
            mp = f"/sys/fs/cgroup/{name}"
            mounts.append(f"{mid} 30 0:{mid} {h.get('mount_root', '/')} {mp} rw,nosuid - cgroup cgroup rw,{name}")
            lines.append(f"{i}:{','.join(ctrls)}:{h['path']}")
            (root / mp.lstrip("/")).mkdir(parents=True, exist_ok=True)
    if mode in ("v2", "hybrid"):
        h = hier.get("unified", {"path": "/"})
        mp = "/sys/fs/cgroup" if mode == "v2" else "/sys/fs/cgroup/unified"
        mid += 1
        mounts.append(f"{mid} 1 0:{mid} {h.get('mount_root', '/')} {mp} rw,nosuid - cgroup2 cgroup2 rw")
        lines.append(f"0::{h['path']}")
        (root / mp.lstrip("/")).mkdir(parents=True, exist_ok=True)
    mounts.append("22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw")
    _w(root, f"proc/{PID}/mountinfo", "\n".join(mounts))
    _w(root, f"proc/{PID}/cgroup", "\n".join(lines) if lines else "0::/")
    # files: "<hierarchy>:<cgroup path>" -> {file: content}; the path is relative to the mount root
    for key, files in cg.get("files", {}).items():
        name, _, path = key.partition(":")
        h = hier.get(name, {})
        mroot = h.get("mount_root", "/")
        rel = path[len(mroot.rstrip("/")):] if mroot != "/" else path
        if name == "unified":
            mp = "/sys/fs/cgroup" if mode == "v2" else "/sys/fs/cgroup/unified"
        else:
            mp = f"/sys/fs/cgroup/{name}"
        for fname, content in files.items():
            _w(root, os.path.join(mp, rel.lstrip("/"), fname), content)
    # every cgroup on the process's path exists as a directory
    for name, h in hier.items():
        mroot = h.get("mount_root", "/")
        rel = h["path"][len(mroot.rstrip("/")):] if mroot != "/" else h["path"]
        mp = ("/sys/fs/cgroup" if mode == "v2" else "/sys/fs/cgroup/unified") if name == "unified" else \
            f"/sys/fs/cgroup/{name}"
        (root / mp.lstrip("/") / rel.lstrip("/")).mkdir(parents=True, exist_ok=True)
