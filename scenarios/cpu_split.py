"""CPU split between two functions in a known ratio.

Truth: the process burns CPU continuously in one thread; ``spin_a`` gets A/(A+B) of
the CPU time and ``spin_b`` gets B/(A+B) (``--ratio A:B``, default 75:25).  The
split is enforced by slices of the thread's own CPU time (time.thread_time, or
wall-clock time with --clock wall) in a 40 ms cycle, so it holds even when the OS
preempts the process, and any sampler sees the ratio within sampling error (for
N independent samples about sqrt(p(1-p)/N): 1.9 pp at 500 samples).  Nothing else in the
process uses measurable CPU.

    python scenarios/cpu_split.py --ratio 75:25 --duration 30
"""

import argparse
import sys
import time

CLOCK = time.thread_time


def spin_a(seconds):
    end = CLOCK() + seconds
    n = 0
    while CLOCK() < end:
        n += 1
    return n


def spin_b(seconds):
    end = CLOCK() + seconds
    n = 0
    while CLOCK() < end:
        n += 1
    return n


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratio", default="75:25", help="A:B share of CPU between spin_a and spin_b")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds to run, then exit")
    ap.add_argument("--cycle-ms", type=float, default=40.0, help="length of one a+b cycle")
    ap.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                    help="slice by the thread's CPU time (default) or by wall-clock time")
    args = ap.parse_args(argv)
    global CLOCK
    CLOCK = time.thread_time if args.clock == "cpu" else time.perf_counter
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
