"""Benchmark for `perfkit threads` on many threads (a ratio against py-spy; never run as a test).

A target with ``--threads`` parked threads (scenarios/many_threads.py, one busy) is
dumped by `py-spy dump --pid N` (the anchor) and by `perfkit threads --pid N` (table,
and ``--json``), runs interleaved, medians.  Budget (issue 15): perfkit ≤ 2× py-spy
dump.  Whole-command wall time, start-up included (perfkit byte-compiled, as installed);
perfkit's CPU window is ``--interval`` (default 0.1 s, or the dump's own time if that is
longer), and ``--interval 0.05`` is also shown: the window then surely ends with the dump.

    .venv/bin/python benchmarks/bench_threads.py [--threads 400] [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench_heap import as_installed, wall_of  # benchmarks/ is on sys.path when a script here runs

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
PYSPY = str(Path(PY).parent / "py-spy")
BUDGET = 2.0


def _wall(cmd: list[str], env: dict) -> float:
    return wall_of(cmd, env, timeout=120)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    as_installed()
    target = subprocess.Popen([PY, str(ROOT / "scenarios" / "many_threads.py"), "--threads", str(args.threads),
                               "--duration", "600"], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        ready = target.stdout.readline()
        if not ready.startswith("ready"):
            raise SystemExit("many_threads.py did not start")
        pid = str(target.pid)
        env = dict(os.environ, NO_COLOR="1")
        rows = {
            "py-spy dump": [PYSPY, "dump", "--json", "--pid", pid],
            "perfkit threads": [PY, "-m", "perfkit", "threads", "--pid", pid],
            "perfkit threads --json": [PY, "-m", "perfkit", "threads", "--pid", pid, "--json"],
            "perfkit threads --interval 0.05": [PY, "-m", "perfkit", "threads", "--pid", pid, "--interval", "0.05"],
        }
        walls: dict[str, list[float]] = {name: [] for name in rows}
        for cmd in rows.values():  # warm-up: page cache, py-spy's symbol reading
            _wall(cmd, env)
        for _ in range(args.repeat):  # interleaved: machine noise hits every row alike
            for name, cmd in rows.items():
                walls[name].append(_wall(cmd, env))
        anchor = statistics.median(walls["py-spy dump"])
        load = os.getloadavg()
        print(f"threads on {ready.split()[1]} (median of {args.repeat} interleaved runs, wall; "
              f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}):")
        for name, w in walls.items():
            m = statistics.median(w)
            verdict = "" if name == "py-spy dump" else \
                f"   budget <= {BUDGET:.1f}x: {'within' if m / anchor <= BUDGET else 'OVER'}"
            print(f"  {name:34s} {m:7.3f} s  {m / anchor:5.2f}x{verdict}")
    finally:
        target.kill()
        target.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
