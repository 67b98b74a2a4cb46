#!/usr/bin/env python3
"""Target slowdown while profiled: unprofiled vs raw `py-spy record` vs `perfkit cpu`.

The workload does a fixed amount of pure-Python work and prints its own elapsed time
(perf_counter around the work only, so start-up is excluded).  The three modes run
interleaved for --rounds rounds; medians and ratios are printed.
Budget: perfkit adds nothing measurable over py-spy (perfkit/py-spy ≈ 1.00).

    .venv/bin/python benchmarks/bench_cpu_overhead.py [--rounds 7] [--rate 100]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

BIN = os.path.dirname(sys.executable)
WORK = r'''
import time
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)
t0 = time.perf_counter()
for _ in range(ITER):
    fib(22)
print("elapsed", time.perf_counter() - t0, flush=True)
'''


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--rate", type=int, default=100)
    ap.add_argument("--iterations", type=int, default=500)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="perfkit-bench-")
    script = os.path.join(tmp, "work.py")
    with open(script, "w") as f:
        f.write(WORK.replace("ITER", str(args.iterations)))
    py = sys.executable
    modes = {
        "unprofiled": [py, script],
        "py-spy record": [os.path.join(BIN, "py-spy"), "record", "-r", str(args.rate), "-f", "speedscope",
                          "-o", os.path.join(tmp, "raw.json"), "--", py, script],
        "perfkit cpu": [os.path.join(BIN, "perfkit"), "cpu", "-r", str(args.rate), "-o",
                        os.path.join(tmp, "pk.speedscope.json"), "--", py, script],
    }
    # perfkit forwards the program's stdout to its stderr (stdout is for data)
    def run_mode(name, cmd):
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        for line in (res.stdout + res.stderr).splitlines():
            if line.startswith("elapsed"):
                return float(line.split()[1])
        raise RuntimeError(f"{name}: no elapsed line")

    times = {k: [] for k in modes}
    for name, cmd in modes.items():
        run_mode(name, cmd)  # warm-up
    for r in range(args.rounds):
        order = list(modes.items()) if r % 2 == 0 else list(reversed(modes.items()))
        for name, cmd in order:
            times[name].append(run_mode(name, cmd))
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(f"{k:14s} median {v:6.3f} s  (runs: {', '.join(f'{x:.3f}' for x in times[k])})")
    base = med["unprofiled"]
    print(f"py-spy / unprofiled : {med['py-spy record'] / base:.3f}")
    print(f"perfkit / unprofiled: {med['perfkit cpu'] / base:.3f}")
    print(f"perfkit / py-spy    : {med['perfkit cpu'] / med['py-spy record']:.3f}  (budget ≈ 1.00)")


if __name__ == "__main__":
    main()
