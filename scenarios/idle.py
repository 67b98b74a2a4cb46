"""A mostly idle process: sleeps, with short bursts of CPU in ``burst``.

Truth: of each ``--period`` seconds (default 0.1), the main thread spends ``--busy``
(default 5 %) spinning in ``burst`` and the rest sleeping in ``time.sleep`` inside
``wait_for_work``.  Without --idle a sampler sees only ``burst``; with --idle,
``wait_for_work`` holds ~95 % of the main thread's wall time.

    python scenarios/idle.py --duration 30
"""

import argparse
import sys
import time


def burst(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def wait_for_work(seconds):
    time.sleep(seconds)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--period", type=float, default=0.1)
    ap.add_argument("--busy", type=float, default=0.05, help="fraction of each period spent on CPU")
    args = ap.parse_args(argv)
    print("ready", flush=True)
    end = time.monotonic() + args.duration
    while time.monotonic() < end:
        burst(args.period * args.busy)
        wait_for_work(args.period * (1 - args.busy))
    return 0


if __name__ == "__main__":
    sys.exit(main())
