#!/usr/bin/env python3
"""Start-up: `perfkit --help` wall time vs `memray --help` and `py-spy --help`.

Budget: perfkit under a third of memray's.  Runs interleaved, reports medians and
ratios.   Usage: .venv/bin/python benchmarks/bench_help.py [--runs 15]
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

BIN = os.path.dirname(sys.executable)


def timed(cmd):
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    cmds = {
        "perfkit --help": [os.path.join(BIN, "perfkit"), "--help"],
        "memray --help": [os.path.join(BIN, "memray"), "--help"],
        "py-spy --help": [os.path.join(BIN, "py-spy"), "--help"],
        "python -c pass": [sys.executable, "-c", "pass"],
    }
    times = {k: [] for k in cmds}
    for cmd in cmds.values():  # warm the page cache
        timed(cmd)
    for _ in range(args.runs):
        for name, cmd in cmds.items():
            times[name].append(timed(cmd))
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(f"{k:18s} median {v * 1000:7.1f} ms")
    ratio = med["perfkit --help"] / med["memray --help"]
    print(f"perfkit/memray ratio: {ratio:.2f}  (budget < 0.33: {'OK' if ratio < 0.33 else 'OVER'})")
    print(f"perfkit/py-spy ratio: {med['perfkit --help'] / med['py-spy --help']:.2f}")


if __name__ == "__main__":
    main()
