"""A parent that starts worker processes with known CPU shares.

Truth: the parent only sleeps (no CPU).  Worker ``i`` (i = 0..N-1) is a separate
Python process busy for a fraction ``--duty[i]`` of the time (default 1.0,0.5:
worker 0 always on CPU, worker 1 half the time, in 20 ms cycles), in function
``worker_loop``.  Their shares of all CPU samples are duty_i / sum(duty): 2/3 and
1/3 by default.  "ready <pid> <pid> ..." is printed once every worker is running.
On SIGTERM the parent terminates its workers; workers exit when the parent dies.

    python scenarios/cpu_workers.py --duty 1.0,0.5 --duration 30
"""

import argparse
import os
import signal
import subprocess
import sys
import time


def _spin(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def worker_loop(duty, duration, cycle=0.02):
    parent = os.getppid()
    end = time.monotonic() + duration
    busy = cycle * duty
    while time.monotonic() < end and os.getppid() == parent:
        _spin(busy)
        if duty < 1.0:
            time.sleep(cycle - busy)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duty", default="1.0,0.5")
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--worker", type=float, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker is not None:
        print("ready", flush=True)
        worker_loop(args.worker, args.duration)
        return 0
    duties = [float(x) for x in args.duty.split(",")]
    procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", str(d),
                               "--duration", str(args.duration)], stdout=subprocess.PIPE, text=True)
             for d in duties]
    for p in procs:
        p.stdout.readline()  # the worker's "ready"

    def stop(*_):
        for p in procs:
            p.terminate()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    print("ready " + " ".join(str(p.pid) for p in procs), flush=True)
    while any(p.poll() is None for p in procs):
        time.sleep(0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
