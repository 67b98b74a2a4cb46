"""Steady look-alikes: programs whose resources move but do not leak.

Truth for each ``--kind`` (none of them leaks memory, threads, fds or sockets):

* ``bounded_cache``: an LRU cache of 256 KiB entries filling to ``--bound`` MiB
  (default 24) over the first few seconds, plus a pool of open files filling to 16;
  after that both plateau (entries are replaced, not added).
* ``thread_pool``: a ThreadPoolExecutor(8) fed a steady stream of small tasks; its
  threads are created lazily up to 8, then constant.
* ``sawtooth``: memory climbs by 1 MiB every ``--period``/24 s to 24 MiB and is freed
  all at once, every ``--period`` seconds (default 2); a batch of files opened and
  closed on the same rhythm (GC / batch-like).
* ``bursts``: at random times (1–3 s apart, ``--seed``), a burst starts 4–10 threads,
  20 MiB and 10 socketpairs for ~0.3 s, then releases them all.
* ``step``: a one-off lazy load ``--step-at`` seconds after ready (default 3): 32 MiB
  kept, 4 threads and 8 files opened once; flat before and after.

Prints ``ready`` at start; exits by itself after ``--duration``.

    python scenarios/steady.py --kind sawtooth --duration 60
"""

import argparse
import collections
import concurrent.futures
import os
import random
import socket
import sys
import tempfile
import threading

STOP = threading.Event()


def _blob(n):
    return b"\x02" * n


def bounded_cache(args, tmp):
    cache = collections.OrderedDict()
    files = []
    limit = args.bound * 1024 * 1024 // (256 * 1024)
    i = 0
    while not STOP.is_set():
        cache[i % (limit * 2)] = _blob(256 * 1024)
        cache.move_to_end(i % (limit * 2))
        while len(cache) > limit:
            cache.popitem(last=False)
        if len(files) < 16:
            files.append(open(os.path.join(tmp, f"cache-{len(files)}"), "wb"))
        i += 1
        STOP.wait(0.05)
    for f in files:
        f.close()


def _task(n):
    return sum(range(n))


def thread_pool(args, tmp):
    with concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="pool") as ex:
        while not STOP.is_set():
            futs = [ex.submit(_task, 2000) for _ in range(8)]
            for f in futs:
                f.result()
            STOP.wait(0.05)


def sawtooth(args, tmp):
    step = args.period / 24
    while not STOP.is_set():
        held, files = [], []
        for k in range(24):
            held.append(_blob(1024 * 1024))
            files.append(open(os.path.join(tmp, f"batch-{k}"), "wb"))
            if STOP.wait(step):
                break
        for f in files:
            f.close()
        del held


def _burst_thread(ev):
    ev.wait()


def bursts(args, tmp):
    rnd = random.Random(args.seed)
    while not STOP.wait(rnd.uniform(1.0, 3.0)):
        ev = threading.Event()
        ts = [threading.Thread(target=_burst_thread, args=(ev,), daemon=True) for _ in range(rnd.randint(4, 10))]
        for t in ts:
            t.start()
        mem = _blob(20 * 1024 * 1024)
        socks = [s for _ in range(10) for s in socket.socketpair()]
        STOP.wait(0.3)
        ev.set()
        for t in ts:
            t.join()
        for s in socks:
            s.close()
        del mem


def step(args, tmp):
    if STOP.wait(args.step_at):
        return
    kept = [_blob(1024 * 1024) for _ in range(32)]  # the lazy load
    files = [open(os.path.join(tmp, f"model-{k}"), "wb") for k in range(8)]
    ev = threading.Event()
    ts = [threading.Thread(target=_burst_thread, args=(ev,), daemon=True, name=f"loader-{k}") for k in range(4)]
    for t in ts:
        t.start()
    STOP.wait()
    ev.set()
    for f in files:
        f.close()
    del kept


KINDS = {"bounded_cache": bounded_cache, "thread_pool": thread_pool, "sawtooth": sawtooth,
         "bursts": bursts, "step": step}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kind", choices=sorted(KINDS), required=True)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--bound", type=int, default=24, help="bounded_cache: MiB")
    ap.add_argument("--period", type=float, default=2.0, help="sawtooth: seconds per tooth")
    ap.add_argument("--step-at", type=float, default=3.0, help="step: seconds after ready")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="perfkit-steady-")
    worker = threading.Thread(target=KINDS[args.kind], args=(args, tmp), name="workload", daemon=True)
    print(f"ready kind={args.kind}", flush=True)
    worker.start()
    try:
        STOP.wait(args.duration)
    except KeyboardInterrupt:
        pass
    STOP.set()
    worker.join(5)
    for name in os.listdir(tmp):
        os.unlink(os.path.join(tmp, name))
    os.rmdir(tmp)
    return 0


if __name__ == "__main__":
    import signal

    def _stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    sys.exit(main())
