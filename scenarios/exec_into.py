"""A Python process that replaces itself with another program part-way through.

Truth: for ``--after`` seconds (default 2) the process allocates and frees small lists
in a loop (so a tracker sees allocations and a sampler sees ``churn``); then it calls
``os.execvp`` on ``--into`` (default ``sleep 60``: no longer Python) with the same pid.
``--into self`` re-executes this interpreter with this script and ``--after 3600``
(same executable, new image, still Python).  It prints ``ready`` at start and
``exec <argv>`` just before the exec.

    python scenarios/exec_into.py --after 2 --into "sleep 60"
"""

import argparse
import os
import shlex
import sys
import time


def churn(seconds):
    end = time.monotonic() + seconds
    kept = []
    while time.monotonic() < end:
        kept.append([0] * 64)
        if len(kept) > 200:
            kept.clear()
        time.sleep(0.001)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--after", type=float, default=2.0, help="seconds before the exec")
    ap.add_argument("--into", default="sleep 60", help='program to exec ("self": this script again)')
    args = ap.parse_args(argv)
    print("ready", flush=True)
    churn(args.after)
    if args.into == "self":
        new = [sys.executable, os.path.abspath(__file__), "--after", "3600", "--into", "sleep 60"]
    else:
        new = shlex.split(args.into)
    print("exec " + " ".join(new), flush=True)
    os.execvp(new[0], new)


if __name__ == "__main__":
    sys.exit(main())
