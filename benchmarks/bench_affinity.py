"""Benchmarks for `perfkit affinity` — prints ratios against an anchor, asserts nothing.

1. Budget accuracy on the fake topologies (tests/fixtures/topologies): perfkit's
   budget vs the counters people use — os.cpu_count() (online CPUs),
   os.process_cpu_count() / len(sched_getaffinity) (mask, ignores quota), and an
   automaxprocs-style count (the process's *own* cgroup quota only, ignoring a tighter
   ancestor).  Anchor: the fixture's expected budget.
2. Pinning cost: perfkit's apply (library, every thread) vs `taskset -a -p -c` per
   worker (anchor), on a live 2-worker pool.
3. Layout and count effect: pool throughput with 2 workers spread-pinned and with 1
   worker, vs 2 workers unpinned (anchor), interleaved repetitions, 95 % CIs — on a
   2-core box expect spread ≈ 1.0 (noise) and 1 worker ≈ 0.5 when the box is idle.

    .venv/bin/python benchmarks/bench_affinity.py [--reps 6] [--duration 1.0]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def naive_counts(root: str, pid: int) -> dict[str, float]:
    from perfkit.affinity import topology as t

    topo = t.read_topology(root)
    online = len(topo.online)
    mask = set(t.allowed_cpus(pid, root) or topo.online) & set(topo.online)
    limits = t.read_cgroup_limits(pid, root)
    # automaxprocs-like: only the leaf cgroup's quota
    leaf_quota = None
    if limits.cpu_leaf_dir:
        leaf = limits.cpu_leaf_dir
        leaf_quota = t._v2_quota(leaf) if limits.cpu_version == 2 else t._v1_quota(leaf)
    amp = min(len(mask), leaf_quota) if leaf_quota else len(mask)
    return {"os.cpu_count": online, "process_cpu_count": len(mask), "leaf-quota (automaxprocs-like)": amp}


def bench_budget() -> None:
    from affinity_fakes import PID, build, load

    from perfkit.affinity import topology

    specs = load()
    right: dict[str, int] = {"perfkit": 0}
    for spec in specs:
        with tempfile.TemporaryDirectory() as d:
            build(spec, Path(d))
            want = spec["expect"]["budget"]
            got = topology.budget(PID, d).cpus
            right["perfkit"] += abs(got - want) < 1e-9
            for k, v in naive_counts(d, PID).items():
                right[k] = right.get(k, 0) + (abs(v - want) < 1e-9)
    n = len(specs)
    print(f"[budget] {n} fake topologies; correct budget (ratio to perfkit):")
    for k, v in right.items():
        print(f"  {k:34s} {v:2d}/{n}   ratio {v / max(1, right['perfkit']):.2f}")


def _start_pool(workers: int, duration: float):
    proc = subprocess.Popen([sys.executable, str(ROOT / "scenarios" / "worker_pool.py"), "--workers", str(workers),
                             "--duration", str(duration)], stdout=subprocess.PIPE, text=True, start_new_session=True)
    pids = [int(x) for x in proc.stdout.readline().split()[1:]]
    return proc, pids


def _stop(proc) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


def bench_apply_cost(reps: int) -> None:
    from perfkit.affinity import workers
    from perfkit.affinity.plan import Assignment

    taskset = shutil.which("taskset")
    proc, pids = _start_pool(2, 60)
    try:
        state = tempfile.mktemp(prefix="perfkit-bench-")
        t_perfkit, t_taskset = [], []
        for _ in range(reps):
            t0 = time.perf_counter()
            workers.apply([Assignment(p, [i % 2]) for i, p in enumerate(pids)], master=proc.pid, state_file=state)
            workers.reset(state)
            t_perfkit.append(time.perf_counter() - t0)
            if taskset:
                t0 = time.perf_counter()
                for i, p in enumerate(pids):
                    subprocess.run([taskset, "-a", "-p", "-c", str(i % 2), str(p)], capture_output=True, timeout=10)
                for p in pids:
                    subprocess.run([taskset, "-a", "-p", "-c", "0-1", str(p)], capture_output=True, timeout=10)
                t_taskset.append(time.perf_counter() - t0)
        pk = sorted(t_perfkit)[len(t_perfkit) // 2]
        print(f"[apply] pin + restore 2 workers: perfkit {pk * 1e3:.2f} ms (median of {reps})", end="")
        if t_taskset:
            ts = sorted(t_taskset)[len(t_taskset) // 2]
            print(f", taskset {ts * 1e3:.2f} ms; ratio perfkit/taskset {pk / ts:.3f}")
        else:
            print(" (taskset not installed: no anchor)")
    finally:
        _stop(proc)


def bench_layout(reps: int, duration: float) -> None:
    from perfkit.affinity import topology
    from perfkit.affinity.plan import cpu_order
    from perfkit.affinity.tune_stats import rank
    from perfkit.affinity.tuning import run_once

    topo = topology.read_topology()
    order = cpu_order(topo, topology.budget().usable, "spread")
    cmd = [sys.executable, str(ROOT / "scenarios" / "worker_pool.py"), "--workers", "{workers}",
           "--duration", str(duration)]
    cands = [(2, "unpinned"), (2, "spread"), (1, "unpinned")]
    data: dict[str, list[float]] = {f"{n}w {lay}": [] for n, lay in cands}
    run_once(cmd, 2, "unpinned", order)  # warm-up
    for r in range(reps):
        k = r % len(cands)
        for n, lay in cands[k:] + cands[:k]:
            res = run_once(cmd, n, lay, order)
            if res.ok and res.throughput:
                data[f"{n}w {lay}"].append(res.throughput)
    rk = rank(data, unpinned={"2w unpinned", "1w unpinned"})
    s = {x.name: x for x in rk.stats}
    anchor = s["2w unpinned"].mean or math.nan
    print(f"[layout] worker pool, {reps} interleaved runs of {duration:g} s each; throughput ratio to "
          f"2 workers unpinned (anchor):")
    for x in rk.stats:
        print(f"  {x.name:12s} {x.mean / anchor:.3f}  (mean {x.mean:.0f} items/s, 95 % CI {x.ci_low:.0f} … "
              f"{x.ci_high:.0f}; {'best' if x.rank == 1 else ('within noise' if x.within_noise else 'worse')})")
    print(f"  verdict: {rk.verdict}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=6)
    ap.add_argument("--duration", type=float, default=1.0)
    args = ap.parse_args()
    bench_budget()
    bench_apply_cost(max(3, args.reps))
    bench_layout(args.reps, args.duration)
    return 0


if __name__ == "__main__":
    sys.exit(main())
