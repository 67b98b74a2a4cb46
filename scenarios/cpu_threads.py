"""Two threads with a known per-thread CPU split.

Truth: thread ``worker-a`` runs ``work_a`` and thread ``worker-b`` runs ``work_b``;
they strictly take turns (an Event hand-off), so exactly one is on CPU at any time:
``worker-a`` gets A/(A+B) of CPU samples and ``worker-b`` B/(A+B) (``--ratio A:B``,
default 75:25).  The main thread only waits (idle; visible with --idle only).

The hand-off cycle is 40 ms: a sampler at 100 Hz (10 ms) takes 4 samples a cycle, and
whatever its phase, exactly 3 of them land in worker-a's 30 ms.  (A 20 ms cycle aliased
with 100 Hz: 2 samples a cycle, both in worker-a or one each depending on the phase,
so a 4 s recording could read anything from 50 % to 100 %; 64 % was seen in CI.)

    python scenarios/cpu_threads.py --ratio 75:25 --duration 30
"""

import argparse
import sys
import threading
import time


def _spin(seconds):
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def work_a(slice_s, my_turn, their_turn, stop):
    while not stop.is_set():
        my_turn.wait()
        my_turn.clear()
        _spin(slice_s)
        their_turn.set()


def work_b(slice_s, my_turn, their_turn, stop):
    while not stop.is_set():
        my_turn.wait()
        my_turn.clear()
        _spin(slice_s)
        their_turn.set()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratio", default="75:25")
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--cycle-ms", type=float, default=40.0, help="length of one a+b hand-off cycle")
    args = ap.parse_args(argv)
    a, b = (float(x) for x in args.ratio.split(":"))
    cycle = args.cycle_ms / 1000.0
    turn_a, turn_b, stop = threading.Event(), threading.Event(), threading.Event()
    ta = threading.Thread(target=work_a, args=(cycle * a / (a + b), turn_a, turn_b, stop), name="worker-a", daemon=True)
    tb = threading.Thread(target=work_b, args=(cycle * b / (a + b), turn_b, turn_a, stop), name="worker-b", daemon=True)
    ta.start()
    tb.start()
    print("ready", flush=True)
    turn_a.set()
    time.sleep(args.duration)
    stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
