"""A memory leak: ``handle_request`` appends to a module-level list that is never trimmed.

Truth: after ``ready``, the process keeps ``--rate`` bytes per second (default 2 MiB/s)
alive, in chunks of ``--chunk`` bytes (default 64 KiB) allocated at the line marked
``LEAK_LINE`` in ``handle_request`` (the ready line reports the line number).  Besides,
it churns short-lived allocations (freed at once) in ``churn`` so the heap is not only
the leak.  Exits by itself after ``--duration``.

    python scenarios/leak_memory.py --rate 2097152 --duration 60
"""

import argparse
import sys
import time

CACHE = []


def handle_request(chunk):
    CACHE.append(b"\x01" * chunk)  # LEAK_LINE


LEAK_LINE = 20


def churn():
    tmp = [str(i) * 10 for i in range(2000)]
    return len(tmp)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=2 * 1024 * 1024, help="bytes leaked per second")
    ap.add_argument("--chunk", type=int, default=64 * 1024)
    ap.add_argument("--duration", type=float, default=60.0)
    args = ap.parse_args(argv)
    print(f"ready line={LEAK_LINE}", flush=True)
    start = time.monotonic()
    kept = 0
    try:
        while time.monotonic() - start < args.duration:
            due = int((time.monotonic() - start) * args.rate) - kept
            while due >= args.chunk:
                handle_request(args.chunk)
                kept += args.chunk
                due -= args.chunk
            churn()
            time.sleep(0.02)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    import signal

    def _stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    sys.exit(main())
