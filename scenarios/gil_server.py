"""A GIL-bound threaded "server": CPU-bound pure-Python requests handled by threads.

Truth: no network.  A producer fills an in-process queue with requests; ``--threads``
handler threads (default 4) take them and compute ``handle_request`` (pure Python,
``--work`` loop iterations, holds the GIL the whole time).  Some thread holds the GIL
~100 % of the time, the process uses ~1 CPU however many threads run, and throughput
does not grow with threads: the right answer is processes, not threads.
At the end it prints ``throughput=<requests per second>``.

    python scenarios/gil_server.py --threads 4 --duration 30
"""

import argparse
import queue
import sys
import threading
import time


def handle_request(n):
    acc = 0
    for i in range(n):
        acc += i * i % 7
    return acc


def handler(q, done, stop):
    while not stop.is_set():
        try:
            n = q.get(timeout=0.1)
        except queue.Empty:
            continue
        handle_request(n)
        done.append(1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--work", type=int, default=20000, help="loop iterations per request")
    args = ap.parse_args(argv)
    q = queue.Queue(maxsize=64)
    done = []
    stop = threading.Event()
    threads = [threading.Thread(target=handler, args=(q, done, stop), name=f"handler-{i}", daemon=True)
               for i in range(args.threads)]
    for t in threads:
        t.start()
    start = time.monotonic()
    end = start + args.duration
    print("ready", flush=True)
    while time.monotonic() < end:
        try:
            q.put(args.work, timeout=0.1)
        except queue.Full:
            pass
    stop.set()
    for t in threads:
        t.join(timeout=2)
    print(f"throughput={len(done) / (time.monotonic() - start):.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
