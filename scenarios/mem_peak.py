"""A one-off large allocation: a known peak.

Truth: after ``--delay`` seconds the process allocates one ``bytearray`` of ``--size``
bytes (+1, see below) at the line marked ``# PEAK LINE``, writes to every page of it
(so it is resident), holds it ``--hold`` seconds, frees it, and idles until
``--duration`` ends.  Everything else it allocates is small (a few KiB), so the peak
of the tracked heap is ``--size`` bytes within 1 %, and RSS rises by about ``--size``
during the hold.  ``bytearray(n)`` asks the allocator for n + 1 bytes.

    python scenarios/mem_peak.py --size 67108864 --delay 0.5 --hold 0.5 --duration 3
"""

import argparse
import sys
import time


def spike(size, hold):
    buf = bytearray(size)  # PEAK LINE
    for i in range(0, size, 4096):
        buf[i] = 1
    time.sleep(hold)
    del buf


def peak_line():
    with open(__file__, encoding="utf-8") as f:
        for n, text in enumerate(f, 1):
            if text.rstrip().endswith("# PEAK LINE") and "bytearray" in text:
                return n
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64 << 20, help="bytes of the one-off allocation")
    ap.add_argument("--delay", type=float, default=0.5, help="seconds before the allocation")
    ap.add_argument("--hold", type=float, default=0.5, help="seconds the allocation stays alive")
    ap.add_argument("--duration", type=float, default=3.0, help="seconds to run in all, then exit")
    args = ap.parse_args(argv)
    print(f"ready peak_line={peak_line()} size={args.size}", flush=True)
    start = time.monotonic()
    time.sleep(args.delay)
    spike(args.size, args.hold)
    while time.monotonic() < start + args.duration:
        time.sleep(0.05)
    return 0


if __name__ == "__main__":
    sys.exit(main())
