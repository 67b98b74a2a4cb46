"""Steady allocation churn with no growth.

Truth: the process allocates ``--rate`` bytes per second (paced by the clock) in
batches of ``--batch`` bytes made of ``--size``-byte ``bytearray`` objects at the line
marked ``# CHURN LINE``, and drops every batch before making the next.  Nothing is
kept: at any moment at most one batch (``--batch`` bytes, default 256 KiB) is alive,
so a heap tracker sees lots allocated at the churn line and (almost) nothing still
alive at the end; memory does not grow.

    python scenarios/mem_churn.py --rate 8388608 --duration 30

Benchmark mode: ``--work N`` runs N batches as fast as it can instead of pacing by the
clock, then prints ``done batches=N seconds=S`` (S = the time the work took, start-up
excluded) and exits: a fixed, allocation-heavy workload for measuring slowdown.
"""

import argparse
import sys
import time


def make_batch(n, size):
    return [bytearray(size) for _ in range(n)]  # CHURN LINE


def churn_line():
    with open(__file__, encoding="utf-8") as f:
        for n, text in enumerate(f, 1):
            if text.rstrip().endswith("# CHURN LINE") and "bytearray" in text:
                return n
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=int, default=8 << 20, help="bytes allocated (and freed) per second")
    ap.add_argument("--batch", type=int, default=256 << 10, help="bytes per batch (the most ever alive)")
    ap.add_argument("--size", type=int, default=8 << 10, help="bytes per object")
    ap.add_argument("--tick", type=float, default=0.02, help="seconds between pacing steps")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds to run, then exit")
    ap.add_argument("--work", type=int, default=0, help="benchmark mode: run this many batches flat out, then exit")
    args = ap.parse_args(argv)
    per_batch = max(1, args.batch // args.size)
    if args.work:
        print(f"ready churn_line={churn_line()} work={args.work}", flush=True)
        t0 = time.perf_counter()
        for _ in range(args.work):
            batch = make_batch(per_batch, args.size - 1)
            del batch
        print(f"done batches={args.work} seconds={time.perf_counter() - t0:.4f}", flush=True)
        return 0
    print(f"ready churn_line={churn_line()} rate={args.rate} batch={per_batch * args.size}", flush=True)
    start = time.monotonic()
    end = start + args.duration
    done = 0
    total = 0
    while True:
        now = time.monotonic()
        if now >= end:
            break
        due = int(args.rate * (now - start))
        while done + per_batch * args.size <= due:
            batch = make_batch(per_batch, args.size - 1)  # bytearray(n) allocates n + 1 bytes
            total += len(batch)
            del batch
            done += per_batch * args.size
        time.sleep(args.tick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
