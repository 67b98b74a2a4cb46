"""cgroups and CPU lists, read from /proc and /sys (v1, v2 and hybrid hierarchies).

* ``parse_cpulist`` / ``format_cpulist``: ``"0-3,8"`` ⇄ ``[0, 1, 2, 3, 8]``.
* ``read_mounts`` / ``read_cgroup_paths``: a process's cgroup mounts and paths.
* ``read_cgroup_limits(pid, root)``: follows the process's own cgroup path
  (``/proc/PID/cgroup`` mapped through ``/proc/PID/mountinfo``) and walks every
  ancestor up to the hierarchy's mount, keeping the tightest CPU quota and the narrowest
  cpuset, with the cgroup each one comes from; ``read_throttling`` reads cpu.stat.
* ``allowed_cpus(pid, root)``: the affinity mask (``Cpus_allowed_list``).

Every reader takes ``root`` (default ``/``) so tests run against fake trees.  Used by
affinity (the CPU budget), triage (host and per-process cgroup facts) and leaks (limits).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

# ----------------------------------------------------------------------------- cpu lists


MAX_CPU = 8191  # the kernel's largest NR_CPUS


def parse_cpulist(text: str) -> list[int]:
    """``"0-3,8,10-11"`` → ``[0, 1, 2, 3, 8, 10, 11]`` (empty text → ``[]``)."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            stride = 1
            if ":" in hi:  # "0-7:2" (rare, kernel supports it)
                hi, s = hi.split(":", 1)
                stride = int(s.split("/")[0])
            if int(hi) > MAX_CPU or stride < 1:  # a typo or a tampered file must not allocate a billion CPUs
                raise ValueError(f"CPU range {part!r} is beyond any machine's CPUs (max {MAX_CPU})")
            cpus.update(range(int(lo), int(hi) + 1, stride))
        else:
            if int(part) > MAX_CPU:
                raise ValueError(f"CPU {part!r} is beyond any machine's CPUs (max {MAX_CPU})")
            cpus.add(int(part))
    return sorted(cpus)


def format_cpulist(cpus) -> str:
    """``[0, 1, 2, 3, 8]`` → ``"0-3,8"``."""
    items = sorted(set(cpus))
    out = []
    i = 0
    while i < len(items):
        j = i
        while j + 1 < len(items) and items[j + 1] == items[j] + 1:
            j += 1
        out.append(str(items[i]) if i == j else f"{items[i]}-{items[j]}")
        i = j + 1
    return ",".join(out)


def _read(root: str, path: str) -> str | None:
    try:
        with open(os.path.join(root, path.lstrip("/")), encoding="utf-8", errors="replace") as f:
            return f.read()
    except (OSError, ValueError):
        return None


# ----------------------------------------------------------------------------- process mask


def allowed_cpus(pid: int | str = "self", root: str = "/") -> list[int] | None:
    """The CPUs the process may run on (``Cpus_allowed_list``), or None if unreadable."""
    text = _read(root, f"proc/{pid}/status")
    if text is None:
        return None
    for line in text.splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return parse_cpulist(line.split(":", 1)[1])
    return None


# ----------------------------------------------------------------------------- cgroups


@dataclass
class Mount:
    root: str  # the path inside the hierarchy that is mounted here
    mountpoint: str
    fstype: str  # "cgroup" (v1) or "cgroup2"
    controllers: frozenset[str]


def read_mounts(pid: int | str, root: str = "/") -> list[Mount]:
    text = _read(root, f"proc/{pid}/mountinfo") or ""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        lf, rf = left.split(), right.split()
        if len(lf) < 5 or len(rf) < 1:
            continue
        fstype = rf[0]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        opts = set(rf[2].split(",")) if len(rf) > 2 else set()
        ctrls = frozenset(o for o in opts if o in ("cpu", "cpuacct", "cpuset") or o.startswith("name="))
        mounts.append(Mount(root=_unescape(lf[3]), mountpoint=_unescape(lf[4]), fstype=fstype, controllers=ctrls))
    return mounts


def _unescape(s: str) -> str:
    return s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def read_cgroup_paths(pid: int | str, root: str = "/") -> dict[str, str]:
    """controller → cgroup path; the v2 unified path is under the key ``""``."""
    text = _read(root, f"proc/{pid}/cgroup") or ""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, ctrls, path = parts
        if ctrls == "":
            out[""] = path
        for c in ctrls.split(","):
            if c:
                out[c] = path
    return out


@dataclass
class Limit:
    value: Any  # float (CPU quota), int (bytes) or list[int] (cpuset)
    cgroup: str  # the cgroup path the limit comes from ("/app.slice")
    version: int  # 1 or 2

    def to_json(self) -> dict:
        v = format_cpulist(self.value) if isinstance(self.value, list) else self.value
        return {"value": v, "cgroup": self.cgroup, "cgroup_version": self.version}


@dataclass
class CgroupLimits:
    mode: str = "none"  # "v2", "v1", "hybrid", "none"
    quota: Limit | None = None  # value: CPUs as float
    cpuset: Limit | None = None  # value: list[int]
    throttling: dict | None = None  # {"nr_periods", "nr_throttled", "throttled_s", "cgroup"}
    cpu_dir: str | None = None  # host directory whose cpu.stat shows throttling (quota source or leaf)
    cpu_cgroup: str | None = None
    cpu_leaf_dir: str | None = None  # host directory of the process's own cpu cgroup
    cpu_version: int | None = None
    paths: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"mode": self.mode, "quota": self.quota.to_json() if self.quota else None,
                "cpuset": self.cpuset.to_json() if self.cpuset else None,
                "throttling": self.throttling, "paths": self.paths}


def _locate(mount: Mount, cgpath: str, root: str) -> tuple[str, str] | None:
    """(host dir of the cgroup, path shown to the user) or None if it is not visible."""
    rel = cgpath
    if mount.root not in ("", "/") and (cgpath == mount.root or cgpath.startswith(mount.root.rstrip("/") + "/")):
        rel = cgpath[len(mount.root.rstrip("/")):]
    rel = rel.lstrip("/")
    host = os.path.join(root, mount.mountpoint.lstrip("/"), rel)
    if not os.path.isdir(host):
        # a cgroup namespace can show "/" paths; fall back to the mount itself
        host = os.path.join(root, mount.mountpoint.lstrip("/"))
        if not os.path.isdir(host):
            return None
        return host, cgpath
    return host, cgpath


def _ancestors(mount: Mount, cgpath: str, root: str) -> list[tuple[str, str]]:
    """(host dir, cgroup path) from the process's cgroup up to the mounted hierarchy root."""
    loc = _locate(mount, cgpath, root)
    if loc is None:
        return []
    host, shown = loc
    top = os.path.normpath(os.path.join(root, mount.mountpoint.lstrip("/")))
    out = []
    host = os.path.normpath(host)
    while True:
        out.append((host, shown or "/"))
        if host == top or len(host) <= len(top):
            break
        host = os.path.dirname(host)
        shown = os.path.dirname(shown.rstrip("/")) or "/"
    return out


def _v2_quota(d: str) -> float | None:
    text = _read("/", os.path.join(d, "cpu.max"))
    if not text:
        return None
    parts = text.split()
    if not parts or parts[0] == "max":
        return None
    try:
        period = float(parts[1]) if len(parts) > 1 else 100000.0
        return float(parts[0]) / period if period > 0 else None
    except ValueError:
        return None


def _v1_quota(d: str) -> float | None:
    q = _read("/", os.path.join(d, "cpu.cfs_quota_us"))
    p = _read("/", os.path.join(d, "cpu.cfs_period_us"))
    try:
        quota = int(q.strip()) if q else -1
        period = int(p.strip()) if p else 100000
    except ValueError:
        return None
    if quota <= 0 or period <= 0:
        return None
    return quota / period


def _cpuset(d: str, version: int) -> list[int] | None:
    names = (["cpuset.cpus.effective", "cpuset.cpus"] if version == 2
             else ["cpuset.effective_cpus", "cpuset.cpus"])
    for n in names:
        t = _read("/", os.path.join(d, n))
        if t is not None and t.strip():
            return parse_cpulist(t)
    return None


def _throttling(d: str, version: int) -> dict | None:
    text = _read("/", os.path.join(d, "cpu.stat"))
    if text is None:
        return None
    vals = {}
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        try:
            vals[k] = int(v)
        except ValueError:
            pass
    if "nr_periods" not in vals:
        return None
    if version == 2:
        throttled = vals.get("throttled_usec", 0) / 1e6
    else:
        throttled = vals.get("throttled_time", 0) / 1e9
    return {"nr_periods": vals.get("nr_periods", 0), "nr_throttled": vals.get("nr_throttled", 0),
            "throttled_s": round(throttled, 6)}


def read_cgroup_limits(pid: int | str = "self", root: str = "/") -> CgroupLimits:
    paths = read_cgroup_paths(pid, root)
    mounts = read_mounts(pid, root)
    v1 = [m for m in mounts if m.fstype == "cgroup"]
    v2 = [m for m in mounts if m.fstype == "cgroup2"]
    has_v1_cpu = any(m.controllers & {"cpu", "cpuset"} for m in v1)
    if v2 and not v1:
        mode = "v2"
    elif v1 and v2:
        mode = "hybrid"
    elif v1:
        mode = "v1"
    else:
        mode = "none"
    limits = CgroupLimits(mode=mode, paths=dict(sorted(paths.items())))

    def pick(controller: str) -> tuple[Mount, str, int] | None:
        for m in v1:
            if controller in m.controllers and controller in paths:
                return m, paths[controller], 1
        if "" in paths:
            for m in v2:
                # in hybrid mode v2 holds only controllers no v1 hierarchy took
                if mode == "hybrid" and has_v1_cpu and any(controller in x.controllers for x in v1):
                    continue
                return m, paths[""], 2
        return None

    cpu = pick("cpu")
    if cpu:
        m, p, ver = cpu
        chain = _ancestors(m, p, root)
        best: Limit | None = None
        best_host: str | None = None
        for host, shown in chain:
            q = _v2_quota(host) if ver == 2 else _v1_quota(host)
            if q is not None and (best is None or q <= best.value + 1e-12):  # ties: the ancestor
                best, best_host = Limit(q, shown, ver), host
        limits.quota = best
        if chain:
            # throttling is counted where the quota bites: the limiting cgroup, else the leaf
            host, shown = (best_host, best.cgroup) if best is not None and best_host is not None else chain[0]
            limits.cpu_dir, limits.cpu_version, limits.cpu_cgroup = host, ver, shown
            limits.cpu_leaf_dir = chain[0][0]
            th = _throttling(host, ver)
            if th is not None:
                th["cgroup"] = shown
                limits.throttling = th
    cs = pick("cpuset")
    if cs:
        m, p, ver = cs
        levels = [(shown, set(s)) for host, shown in _ancestors(m, p, root)
                  if (s := _cpuset(host, ver)) is not None]
        if levels:
            final = set.intersection(*(s for _, s in levels))
            # name the topmost cgroup that sets exactly this list, else the narrowest one
            source = next((shown for shown, s in reversed(levels) if s == final), None)
            if source is None:
                source = min(levels, key=lambda lv: len(lv[1]))[0]
            narrow = Limit(sorted(final), source, ver)
        else:
            narrow = None
        limits.cpuset = narrow
    return limits


def read_throttling(limits: CgroupLimits) -> dict | None:
    """Re-read cpu.stat where throttling is counted (for a before/after delta)."""
    if not limits.cpu_dir or limits.cpu_version is None:
        return None
    th = _throttling(limits.cpu_dir, limits.cpu_version)
    if th is not None:
        th["cgroup"] = limits.cpu_cgroup
    return th
