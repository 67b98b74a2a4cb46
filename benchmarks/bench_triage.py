#!/usr/bin/env python3
"""`perfkit triage` with many idle Python processes: wall time vs its budget, and vs the
manual anchor (one `py-spy dump --nonblocking` per process, one after another).

Starts --procs copies of scenarios/idle.py (1 % busy), then for --rounds rounds:
  * triage of exactly those pids (``--pid`` for each),
  * host-wide triage (every Python process on the host, these included),
  * the anchor: sequential py-spy dumps of the same pids.
Budget: every triage finishes within --budget (ratio time/budget < 1.0).

    .venv/bin/python benchmarks/bench_triage.py [--procs 50] [--budget 30] [--rounds 3]
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)


def start_idle(n: int) -> list[subprocess.Popen]:
    procs = []
    for _ in range(n):
        procs.append(subprocess.Popen([sys.executable, os.path.join(ROOT, "scenarios", "idle.py"), "--duration", "600",
                                       "--busy", "0.01"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      text=True, start_new_session=True))
    for p in procs:
        line = p.stdout.readline()
        if not line.startswith("ready"):
            raise SystemExit(f"idle scenario {p.pid} did not start")
    return procs


def triage(args: list[str], out: str, budget: float) -> tuple[float, dict]:
    t = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "perfkit", "triage", *args, "-o", out, "--budget", f"{budget:g}s",
                          "--json"], capture_output=True, text=True, cwd=ROOT, timeout=budget * 4 + 60,
                         env=dict(os.environ, NO_COLOR="1"))
    wall = time.monotonic() - t
    if res.returncode != 0:
        raise SystemExit(f"triage failed ({res.returncode}): {res.stderr[-2000:]}")
    return wall, json.loads(res.stdout)


def anchor(pids: list[int]) -> float:
    exe = os.path.join(BIN, "py-spy")
    t = time.monotonic()
    for pid in pids:
        subprocess.run([exe, "dump", "--nonblocking", "--pid", str(pid)], capture_output=True, timeout=30)
    return time.monotonic() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--procs", type=int, default=50)
    ap.add_argument("--budget", type=float, default=30.0)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="perfkit-bench-triage-")
    procs = start_idle(a.procs)
    pids = [p.pid for p in procs]
    rows = {"pids": [], "host": [], "anchor": []}
    try:
        time.sleep(1.0)
        for r in range(a.rounds):
            wall, doc = triage([x for p in pids for x in ("--pid", str(p))], os.path.join(tmp, f"pids{r}"), a.budget)
            got = sum(1 for p in doc["processes"] if p["pid"] in set(pids) and p["stacks"])
            rows["pids"].append((wall, doc["elapsed_s"], got, len(doc["processes"])))
            wall, doc = triage([], os.path.join(tmp, f"host{r}"), a.budget)
            got = sum(1 for p in doc["processes"] if p["pid"] in set(pids) and p["stacks"])
            rows["host"].append((wall, doc["elapsed_s"], got, len(doc["processes"])))
            rows["anchor"].append(anchor(pids))
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            p.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)
    anc = statistics.median(rows["anchor"])
    print(f"{a.procs} idle Python processes, budget {a.budget:g} s, {a.rounds} rounds, {os.cpu_count()} CPUs")
    print(f"anchor: sequential py-spy dump --nonblocking of {a.procs} pids: median {anc:.2f} s")
    for name in ("pids", "host"):
        walls = [w for w, _, _, _ in rows[name]]
        med = statistics.median(walls)
        worst = max(walls)
        stacks = min(g for _, _, g, _ in rows[name])
        seen = max(n for _, _, _, n in rows[name])
        label = "triage --pid x50" if name == "pids" else "triage host-wide"
        print(f"{label:18s} wall median {med:.2f} s (max {worst:.2f} s) · time/budget {worst / a.budget:.2f} "
              f"({'within' if worst <= a.budget else 'OVER'} budget) · vs anchor {med / anc:.2f}x · "
              f"stacks for {stacks}/{a.procs} · processes in bundle {seen}")


if __name__ == "__main__":
    main()
