"""Two threads deadlocked on two locks, plus optional idle workers.

Truth: thread "locker-1" runs ``take_a_then_b``: it holds lock A and blocks forever
acquiring lock B on the line marked ``# BLOCKS: locker-1``.  Thread "locker-2" runs
``take_b_then_a``: it holds lock B and blocks forever acquiring lock A on the line
marked ``# BLOCKS: locker-2``.  Neither uses any CPU.  ``--idle-workers N`` adds N
threads named "idle-worker-<i>" (i = 0..N-1) waiting in ``idle_worker`` on an empty
``queue.Queue.get()``.  The main thread sleeps in ``main`` (time.sleep).

Once both lockers are blocked on their second lock (checked from their live frames),
it prints one line:

    ready locker-1=take_a_then_b:<line> locker-2=take_b_then_a:<line>

and after ``--duration`` seconds it exits with ``os._exit(0)`` (the deadlocked
daemon threads cannot keep it alive).

    python scenarios/deadlock.py --idle-workers 3 --duration 30
"""

import argparse
import os
import queue
import sys
import threading
import time

LOCK_A = threading.Lock()
LOCK_B = threading.Lock()
_BOTH_HOLD_FIRST = threading.Barrier(2)


def take_a_then_b():
    with LOCK_A:
        _BOTH_HOLD_FIRST.wait()
        with LOCK_B:  # BLOCKS: locker-1
            pass


def take_b_then_a():
    with LOCK_B:
        _BOTH_HOLD_FIRST.wait()
        with LOCK_A:  # BLOCKS: locker-2
            pass


def idle_worker(q):
    while True:
        q.get()


def blocking_line(marker):
    """The line number of ``# BLOCKS: <marker>`` in this file."""
    with open(os.path.abspath(__file__), encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.rstrip().endswith(f"# BLOCKS: {marker}") and "with LOCK_" in line:
                return n
    raise RuntimeError(f"marker {marker} not found")


def _blocked(thread, line):
    frame = sys._current_frames().get(thread.ident)
    return frame is not None and frame.f_lineno == line


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--idle-workers", type=int, default=0)
    args = ap.parse_args(argv)
    line1, line2 = blocking_line("locker-1"), blocking_line("locker-2")
    q = queue.Queue()
    for i in range(args.idle_workers):
        threading.Thread(target=idle_worker, args=(q,), name=f"idle-worker-{i}", daemon=True).start()
    t1 = threading.Thread(target=take_a_then_b, name="locker-1", daemon=True)
    t2 = threading.Thread(target=take_b_then_a, name="locker-2", daemon=True)
    t1.start()
    t2.start()
    deadline = time.monotonic() + 10.0
    while not (_blocked(t1, line1) and _blocked(t2, line2)):
        if time.monotonic() > deadline:
            print("error: lockers did not block", file=sys.stderr, flush=True)
            os._exit(1)
        time.sleep(0.01)
    print(f"ready locker-1=take_a_then_b:{line1} locker-2=take_b_then_a:{line2}", flush=True)
    time.sleep(args.duration)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
