"""A thread leak: ``spawn_worker`` starts a thread per "request" that never finishes.

Truth: after ``ready``, ``--rate`` threads per second (default 2) are started by
``spawn_worker`` (after ``--prefill`` threads started at once); each runs
``leaked_worker`` and blocks forever on an Event (named ``leaky-N``), so the thread
count grows linearly at ``--rate``/s.  Two long-lived helper threads exist from the
start (constant).  Exits by itself after ``--duration``.

    python scenarios/leak_threads.py --rate 2 --duration 60
"""

import argparse
import sys
import threading
import time

STOP = threading.Event()
LEAKED = []


def leaked_worker(n):
    STOP.wait()  # never set until exit: the thread is leaked


def spawn_worker():
    t = threading.Thread(target=leaked_worker, args=(len(LEAKED),), name=f"leaky-{len(LEAKED)}", daemon=True)
    t.start()
    LEAKED.append(t)


def helper():
    while not STOP.wait(0.5):
        pass


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=2.0, help="threads leaked per second")
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--prefill", type=int, default=0, help="leaked threads started before ready (constant)")
    args = ap.parse_args(argv)
    for i in range(2):
        threading.Thread(target=helper, name=f"helper-{i}", daemon=True).start()
    for _ in range(args.prefill):
        spawn_worker()
    base = len(LEAKED)
    print("ready", flush=True)
    start = time.monotonic()
    try:
        while time.monotonic() - start < args.duration:
            due = int((time.monotonic() - start) * args.rate) + 1 - (len(LEAKED) - base)
            for _ in range(max(0, due)):
                spawn_worker()
            time.sleep(0.05)
    except KeyboardInterrupt:
        pass
    STOP.set()
    return 0


if __name__ == "__main__":
    import signal

    def _stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    sys.exit(main())
