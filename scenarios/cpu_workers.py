"""A parent that starts worker processes with known CPU shares.

Truth: the parent only waits (no CPU).  Worker ``i`` (i = 0..N-1) is busy for a
fraction ``--duty`` [i] of the time (default 1.0,0.5: worker 0 always on CPU, worker
1 half the time, in 10 ms busy / 10 ms sleep cycles), in function ``worker_loop``.
Their shares of all CPU samples are duty_i / sum(duty): 2/3 and 1/3 by default.
Worker processes are started with multiprocessing's ``spawn`` so each is a fresh
interpreter.  On SIGTERM the parent terminates its workers.

    python scenarios/cpu_workers.py --duty 1.0,0.5 --duration 30
"""

import argparse
import multiprocessing as mp
import signal
import sys
import time


def _spin(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def worker_loop(duty, duration, cycle=0.02):
    end = time.monotonic() + duration
    busy = cycle * duty
    while time.monotonic() < end:
        _spin(busy)
        if duty < 1.0:
            time.sleep(cycle - busy)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duty", default="1.0,0.5")
    ap.add_argument("--duration", type=float, default=30.0)
    args = ap.parse_args(argv)
    duties = [float(x) for x in args.duty.split(",")]
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=worker_loop, args=(d, args.duration), name=f"worker-{i}") for i, d in enumerate(duties)]
    for p in procs:
        p.start()

    def stop(*_):
        for p in procs:
            p.terminate()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    print("ready " + " ".join(str(p.pid) for p in procs), flush=True)
    for p in procs:
        p.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
