"""An I/O-bound threaded "server": requests mostly wait.

Truth: no network.  ``--threads`` handler threads (default 8) each loop over
requests: ``wait_for_io`` blocks ``--wait`` seconds (default 0.05, a sleep standing
in for a database / socket wait), then ``handle_request`` spends ``--busy`` seconds
(default 0.0005) on CPU.  The GIL is held ~1 % of the time, the process uses ~1–5 %
of a CPU, and handler threads are idle ~99 % of the time: threads / async are fine.
At the end it prints ``throughput=<requests per second>``.

    python scenarios/io_server.py --threads 8 --duration 30
"""

import argparse
import sys
import threading
import time


def wait_for_io(seconds):
    time.sleep(seconds)


def handle_request(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def handler(args, done, stop):
    while not stop.is_set():
        wait_for_io(args.wait)
        handle_request(args.busy)
        done.append(1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--wait", type=float, default=0.05)
    ap.add_argument("--busy", type=float, default=0.0005)
    args = ap.parse_args(argv)
    done = []
    stop = threading.Event()
    threads = [threading.Thread(target=handler, args=(args, done, stop), name=f"handler-{i}", daemon=True)
               for i in range(args.threads)]
    start = time.monotonic()
    for t in threads:
        t.start()
    print("ready", flush=True)
    stop.wait(args.duration)
    stop.set()
    for t in threads:
        t.join(timeout=2)
    print(f"throughput={len(done) / (time.monotonic() - start):.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
