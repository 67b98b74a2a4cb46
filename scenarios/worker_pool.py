"""A pre-fork worker pool (master + N workers) that reports its throughput.

Truth: the master only supervises (no CPU; it restarts a worker that dies, like
gunicorn).  Each of ``--workers`` N worker processes (fork) runs CPU-bound
pure-Python work items (``--item`` loop iterations each) back to back in
``handle_item``, so with N <= CPUs each worker uses ~100 % of one CPU and the pool's
throughput scales ~linearly with N up to the CPU budget, then flattens.
``--workers`` also accepts the literal ``{workers}`` replaced by perfkit tune, or
reads the env var PERFKIT_WORKERS when omitted.

Output: ``ready <worker pids…>`` once all workers run, ``respawned <old> <new>`` when
a dead worker is replaced, and at the end ``throughput=<items per second>`` (all
workers, over the measured window) and ``items=<n>``.

    python scenarios/worker_pool.py --workers 2 --duration 30
"""

import argparse
import os
import signal
import sys
import time
from multiprocessing import get_context


def handle_item(n):
    acc = 0
    for i in range(n):
        acc += i * i % 7
    return acc


def worker_main(slot, counts, item, end):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    while time.time() < end:
        handle_item(item)
        counts[slot] += 1
    os._exit(0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", default=os.environ.get("PERFKIT_WORKERS", "2"))
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--item", type=int, default=20000, help="loop iterations per work item")
    args = ap.parse_args(argv)
    n = int(args.workers)
    ctx = get_context("fork")
    counts = ctx.Array("q", n, lock=False)
    start = time.time()
    end = start + args.duration
    stopping = []

    def spawn(slot):
        p = ctx.Process(target=worker_main, args=(slot, counts, args.item, end), name=f"worker-{slot}")
        p.start()
        return p

    def stop(*_):
        stopping.append(1)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    procs = [spawn(i) for i in range(n)]
    print("ready " + " ".join(str(p.pid) for p in procs), flush=True)
    t0 = time.time()
    while time.time() < end and not stopping:
        time.sleep(0.05)
        for i, p in enumerate(procs):
            if not p.is_alive() and time.time() < end - 0.1 and not stopping:
                p.join()
                procs[i] = spawn(i)
                print(f"respawned {p.pid} {procs[i].pid}", flush=True)
    for p in procs:
        if stopping:
            p.terminate()
        p.join(timeout=5)
    elapsed = max(1e-9, time.time() - t0)
    total = sum(counts)
    print(f"items={total}", flush=True)
    print(f"throughput={total / elapsed:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
