"""The limits a process's resources run into: RLIMIT_NOFILE, cgroup memory.max / pids.max,
kernel.threads-max, RLIMIT_NPROC."""

from __future__ import annotations


def fd_limit(pid: int) -> int | None:
    """The soft RLIMIT_NOFILE of ``pid``."""
    return _limit(pid, "Max open files")


def _limit(pid: int, name: str) -> int | None:
    try:
        with open(f"/proc/{pid}/limits") as f:
            for line in f:
                if line.startswith(name):
                    soft = line[len(name):].split()[0]
                    return None if soft == "unlimited" else int(soft)
    except (OSError, ValueError):
        return None
    return None


def memory_limit(pid: int) -> tuple[int | None, str]:
    """(bytes, source): the cgroup's memory.max (v2) / memory.limit_in_bytes (v1), else MemTotal."""
    from perfkit.procs.cgroup import read_cgroup_paths

    paths = read_cgroup_paths(pid)
    candidates = []
    if "" in paths:
        candidates += [f"/sys/fs/cgroup{paths['']}/memory.max", f"/sys/fs/cgroup/unified{paths['']}/memory.max"]
    if "memory" in paths:
        candidates.append(f"/sys/fs/cgroup/memory{paths['memory']}/memory.limit_in_bytes")
    if candidates:
        for c in candidates:
            try:
                with open(c) as f:
                    raw = f.read().strip()
            except OSError:
                continue
            if raw and raw != "max" and int(raw) < (1 << 60):
                return int(raw), f"cgroup {c}"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024, "MemTotal (no cgroup memory limit)"
    except OSError:
        pass
    return None, "unknown"


def thread_limit(pid: int) -> tuple[int | None, str]:
    """The tightest of kernel.threads-max, the cgroup pids.max and RLIMIT_NPROC (per user)."""
    best: tuple[int | None, str] = (None, "unknown")
    cands = []
    try:
        with open("/proc/sys/kernel/threads-max") as f:
            cands.append((int(f.read()), "kernel.threads-max"))
    except (OSError, ValueError):
        pass
    nproc = _limit(pid, "Max processes")
    if nproc:
        cands.append((nproc, "RLIMIT_NPROC (per user)"))
    from perfkit.procs.cgroup import read_cgroup_paths

    paths = read_cgroup_paths(pid)
    files = ([f"/sys/fs/cgroup/pids{paths['pids']}/pids.max"] if "pids" in paths else []) + \
        ([f"/sys/fs/cgroup{paths['']}/pids.max"] if "" in paths else [])
    for c in files:
        try:
            with open(c) as g:
                raw = g.read().strip()
            if raw != "max":
                cands.append((int(raw), f"cgroup {c}"))
        except (OSError, ValueError):
            pass
    for v, src in cands:
        if best[0] is None or v < best[0]:
            best = (v, src)
    return best
