"""A process whose only thread is blocked: the main thread sits in one long ``time.sleep``.

Truth: after printing ``ready`` the main thread calls ``time.sleep(--sleep)`` (default
3600 s) and no other thread exists, so no Python code runs and nothing allocates until
the sleep ends — a debugger breakpoint on malloc/PyMem_*/PyErr_CheckSignals is never
hit (``memray attach`` cannot inject).  After the sleep it prints ``woke``, then for
``--work`` seconds (default 30) it allocates and frees small lists (every thread runs
Python again), prints ``done`` and exits 0.

    python scenarios/blocked.py --sleep 3600
"""

import argparse
import sys
import time


def churn(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        rows = [[i] * 16 for i in range(200)]
        del rows
        time.sleep(0.002)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sleep", type=float, default=3600.0, help="seconds the main thread sleeps first")
    ap.add_argument("--work", type=float, default=30.0, help="seconds of allocation work after waking")
    args = ap.parse_args(argv)
    print("ready", flush=True)
    time.sleep(args.sleep)
    print("woke", flush=True)
    churn(args.work)
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
