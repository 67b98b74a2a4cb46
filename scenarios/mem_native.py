"""Allocations made by native code (zlib's C library), kept alive.

Truth: every ``--interval`` seconds, ``--count`` times in all, the process creates a
``zlib.compressobj(9, wbits=15, memLevel=8)`` at the line marked ``# NATIVE LINE``
and keeps it.  The memory is malloc'ed inside libz (``deflateInit2_``), not by
Python: per object libz allocates its window (64 KiB), prev (64 KiB), head (64 KiB)
and pending (64 KiB) buffers plus its ~6 KiB state: 262,144 bytes of buffers, about
268 KiB in all (zlib 1.2/1.3).  With native frames the allocating stacks run
``<python line> → zlib_compressobj → deflateInit2_``.

Note: memory obtained by calling ``malloc`` through ``ctypes`` is *not* seen by memray
(ctypes resolves malloc with dlsym, bypassing memray's hooks), so this scenario uses a
C library Python links normally.

    python scenarios/mem_native.py --count 40 --interval 0.05 --duration 10
"""

import argparse
import sys
import time
import zlib

KEPT = []


def grow():
    KEPT.append(zlib.compressobj(9, zlib.DEFLATED, 15, 8))  # NATIVE LINE


def native_line():
    with open(__file__, encoding="utf-8") as f:
        for n, text in enumerate(f, 1):
            if text.rstrip().endswith("# NATIVE LINE") and "compressobj" in text:
                return n
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=40, help="compressors to create and keep")
    ap.add_argument("--interval", type=float, default=0.05, help="seconds between creations")
    ap.add_argument("--delay", type=float, default=0.0, help="seconds to wait after 'ready' before creating")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds to run in all, then exit")
    args = ap.parse_args(argv)
    print(f"ready native_line={native_line()} count={args.count}", flush=True)
    start = time.monotonic()
    time.sleep(args.delay)
    for _ in range(args.count):
        grow()
        time.sleep(args.interval)
    while time.monotonic() < start + args.duration:
        time.sleep(0.05)
    return 0


if __name__ == "__main__":
    sys.exit(main())
