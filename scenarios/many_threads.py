"""Many threads at known places: a target for ``perfkit threads`` at scale.

Truth: after ``ready``, the process has ``--threads`` worker threads (default 400)
plus its main thread.  Worker ``i`` is named ``worker-i`` and blocks in
``parked_worker`` on an Event, except the first ``--busy`` workers (default 1),
named ``busy-i``, which spin in ``busy_worker`` (a pure-Python loop: on CPU, taking
the GIL in turns).  Identical stacks group: one group of parked workers, one of busy
ones, and the main thread sleeping in ``main``.  Exits by itself after ``--duration``.

    python scenarios/many_threads.py --threads 400 --busy 1 --duration 60
"""

import argparse
import sys
import threading
import time

STOP = threading.Event()


def parked_worker():
    STOP.wait()  # PARKED LINE


def busy_worker():
    n = 0
    while not STOP.is_set():  # BUSY LINE
        n += 1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=400, help="worker threads (besides the main thread)")
    ap.add_argument("--busy", type=int, default=1, help="how many of them spin on CPU")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds to run, then exit")
    args = ap.parse_args(argv)
    busy = min(args.busy, args.threads)
    threads = []
    for i in range(args.threads):
        is_busy = i < busy
        t = threading.Thread(target=busy_worker if is_busy else parked_worker,
                             name=f"busy-{i}" if is_busy else f"worker-{i}", daemon=True)
        t.start()
        threads.append(t)
    print(f"ready threads={len(threading.enumerate())} busy={busy}", flush=True)
    deadline = time.monotonic() + args.duration
    while time.monotonic() < deadline:
        time.sleep(0.05)
    STOP.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
