"""CPU split between two functions in a known ratio.

Truth: the process burns CPU continuously in one thread; ``spin_a`` gets A/(A+B) of
the CPU time and ``spin_b`` gets B/(A+B) (``--ratio A:B``, default 75:25).  The
split is enforced by slices of the thread's own CPU time (time.thread_time) in a
short, irregular cycle, so it holds even when the OS preempts the process, and any
sampler at any rate sees the ratio within sampling error.  Nothing else in the
process uses measurable CPU.

    python scenarios/cpu_split.py --ratio 75:25 --duration 30
"""

import argparse
import sys
import time


def spin_a(seconds):
    end = time.thread_time() + seconds
    n = 0
    while time.thread_time() < end:
        n += 1
    return n


def spin_b(seconds):
    end = time.thread_time() + seconds
    n = 0
    while time.thread_time() < end:
        n += 1
    return n


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratio", default="75:25", help="A:B share of CPU between spin_a and spin_b")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds to run, then exit")
    ap.add_argument("--cycle-ms", type=float, default=7.3, help="length of one a+b cycle")
    args = ap.parse_args(argv)
    a, b = (float(x) for x in args.ratio.split(":"))
    cycle = args.cycle_ms / 1000.0
    ta, tb = cycle * a / (a + b), cycle * b / (a + b)
    print("ready", flush=True)
    end = time.monotonic() + args.duration
    while time.monotonic() < end:
        if ta:
            spin_a(ta)
        if tb:
            spin_b(tb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
