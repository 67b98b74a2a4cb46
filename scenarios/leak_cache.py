"""A request handler that leaks through a library: an unbounded cache of encoded records.

Truth: every ``--tick`` seconds the process handles the requests due so far (paced by
the clock).  ``handle_request`` builds a record and stores its encoding in the
module-level ``CACHE`` dict under a request id that never repeats — the line marked
``# CACHE LINE``.  Nothing is ever evicted, so the bytes kept alive through that line
grow at ``--rate`` bytes per second of wall time (± one record, ~2-4 KiB; paced by the
size of what is cached, so a tracker slowing the process does not change the rate) and
nothing else grows (the dict holding the cache grows by ~1 % of that).  The bytes
themselves are allocated inside the library that encodes:

* ``--via json`` (default): ``json.dumps`` — the string is made in the standard
  library's ``json/encoder.py``;
* ``--via tabulate``: ``tabulate.tabulate`` — a third-party package (PyPI ``tabulate``,
  installed in the test virtualenv), the string is made in ``tabulate/__init__.py``.

So the allocating frame is library code and the user's line — the one a person can
change — is the CACHE LINE in ``handle_request`` (called from ``serve``).  The
ready line says where it is: ``ready cache_line=N via=json rate=R``.

    python scenarios/leak_cache.py --via json --rate 1048576 --duration 30
"""

import argparse
import json
import sys
import time

CACHE = {}
RECORD_BYTES = 2048
tabulate = None  # imported by main() with --via tabulate
HEADERS = ["field", "value"]


def handle_request(via, request_id, payload):
    record = {"id": request_id, "user": f"user-{request_id % 997}", "payload": payload}
    CACHE[request_id] = json.dumps(record) if via == "json" else tabulate(record.items(), HEADERS)  # CACHE LINE


def serve(via, rate, duration, tick):
    payload = "x" * (RECORD_BYTES - 80)  # encoded records are ~2 KiB: above pymalloc's small-object limit
    start = time.monotonic()
    end = start + duration
    handled = cached = 0
    while True:
        now = time.monotonic()
        if now >= end:
            break
        due = int(rate * (now - start))
        while cached < due:
            handle_request(via, handled, payload)
            cached += sys.getsizeof(CACHE[handled])  # what the cached string holds alive
            handled += 1
        time.sleep(tick)
    return handled


def cache_line():
    with open(__file__, encoding="utf-8") as f:
        for n, text in enumerate(f, 1):
            if text.rstrip().endswith("# CACHE LINE") and "CACHE[" in text:
                return n
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--via", choices=("json", "tabulate"), default="json")
    ap.add_argument("--rate", type=int, default=1 << 20, help="bytes cached per second")
    ap.add_argument("--tick", type=float, default=0.02, help="seconds between pacing steps")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds to run, then exit")
    args = ap.parse_args(argv)
    if args.via == "tabulate":
        global tabulate
        try:
            from tabulate import tabulate
        except ImportError:
            print("tabulate is not installed: pip install tabulate (./scripts/setup does)", file=sys.stderr)
            return 2
    handle_request(args.via, -1, "warm-up")  # the library's imports and caches, before the ready line
    CACHE.clear()
    print(f"ready cache_line={cache_line()} via={args.via} rate={args.rate}", flush=True)
    serve(args.via, args.rate, args.duration, args.tick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
