"""A memory leak of a known rate from one known line.

Truth: every ``--tick`` seconds the process appends ``bytearray`` chunks to a global
list so that the bytes kept alive by the line marked ``# LEAK LINE`` (in ``leak``)
grow at ``--rate`` bytes per second of wall time (paced by the clock, so a tracker
that slows the process down does not change the rate).  A ``bytearray(n)`` asks the
allocator for n + 1 bytes; the chunk size is chosen so the +1 is negligible.  Over a
tracked window of T seconds the leaking line therefore holds rate × T bytes (± one
chunk) still alive at the end.  Nothing else in the process grows.  Some short-lived
churn (``--churn`` bytes/s, freed at once, from ``churn``) keeps the allocator busy.

The ready line says where the leak is: ``ready leak_line=N rate=R chunk=C``.
SIGUSR1 makes it stop leaking and exit normally (status 0) at once.

    python scenarios/mem_leak.py --rate 1048576 --duration 30
"""

import argparse
import signal
import sys
import time

LEAKED = []
STOP = []


def leak(nbytes):
    LEAKED.append(bytearray(nbytes))  # LEAK LINE


def churn(nbytes):
    tmp = bytearray(nbytes)
    return len(tmp)


def leak_line():
    with open(__file__, encoding="utf-8") as f:
        for n, text in enumerate(f, 1):
            if text.rstrip().endswith("# LEAK LINE") and "LEAKED.append" in text:
                return n
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=int, default=1 << 20, help="bytes leaked per second")
    ap.add_argument("--chunk", type=int, default=16 << 10, help="bytes per leaked allocation")
    ap.add_argument("--churn", type=int, default=1 << 20, help="bytes/s allocated and freed at once")
    ap.add_argument("--tick", type=float, default=0.02, help="seconds between pacing steps")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds to run, then exit")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGUSR1, lambda *_: STOP.append(1))
    print(f"ready leak_line={leak_line()} rate={args.rate} chunk={args.chunk}", flush=True)
    start = time.monotonic()
    end = start + args.duration
    leaked = 0
    churned = 0
    while True:
        now = time.monotonic()
        if now >= end or STOP:
            break
        due = int(args.rate * (now - start))
        while leaked + args.chunk <= due:
            leak(args.chunk - 1)  # bytearray(n) allocates n + 1 bytes
            leaked += args.chunk
        due_churn = int(args.churn * (now - start))
        while churned + 4096 <= due_churn:
            churn(4095)
            churned += 4096
        time.sleep(args.tick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
