"""A deterministic CPU + memory benchmark with an injectable slowdown and memory increase.

Truth: the program does a fixed amount of pure-Python loop work (``--work`` units),
split between ``parse_records`` (40 %), ``checksum`` (40 %) and ``summarize`` (20 %);
``checksum`` also fills one buffer of ``--buffer-mb`` MiB, the program's peak memory.

* ``--slowdown F`` adds F x (the whole workload) of extra units, all of it inside
  ``checksum``: the benchmark's work grows by F (its CPU time by F times the share of
  the run that is not interpreter start-up, ~0.9 F at the defaults), and ``checksum``'s
  share of the loop work grows from 40 % to (0.4 + F) / (1 + F): it is the function
  whose CPU share grows, every other function's share shrinks.
* ``--slowdown-ms M`` adds exactly M milliseconds of CPU time inside ``checksum``
  (a loop that runs until ``time.process_time()`` has advanced by M ms): the run's CPU
  time (user + system, what ``wait4`` reports) grows by M ms whatever the machine's
  load, so the relative change is M / (the base run's CPU time).
* ``--mem-increase F`` makes ``checksum``'s buffer F x larger: peak heap grows by
  F x ``--buffer-mb`` MiB (peak RSS by the same number of bytes).
* ``--threads N`` starts N extra threads that live for the whole run (max threads = N+1).

The instruction count and the allocation count are the same on every run with the
same flags (set PYTHONHASHSEED=0 for byte-identical runs).  It prints ``ready`` after
its warm-up and exits when the work is done (or, with ``--duration``, repeats the work
until that many seconds have passed, then exits).

    python scenarios/bench_slowdown.py --work 200 --slowdown 0.05 --mem-increase 0.2
"""

import argparse
import sys
import threading
import time

_UNIT = 1000  # loop iterations per work unit


def _spin(units):
    acc = 0
    for i in range(units * _UNIT):
        acc = (acc * 31 + i) & 0xFFFFFFFF
    return acc


# Each function runs its own loop, so its CPU shows up as its own self time.
def parse_records(units):
    acc = 0
    for i in range(units * _UNIT):
        acc = (acc * 31 + i) & 0xFFFFFFFF
    return acc


def checksum(units, buffer_bytes, extra_cpu_s=0.0):
    buf = bytearray(b"\x01") * buffer_bytes  # written, so it is resident
    acc = 0
    for i in range(units * _UNIT):
        acc = (acc * 31 + i) & 0xFFFFFFFF
    if extra_cpu_s > 0:
        end = time.process_time() + extra_cpu_s
        while time.process_time() < end:
            acc = (acc * 31 + 7) & 0xFFFFFFFF
    return (acc + buf[-1] + len(buf)) & 0xFFFFFFFF


def summarize(units):
    acc = 0
    for i in range(units * _UNIT):
        acc = (acc * 31 + i) & 0xFFFFFFFF
    return acc


def run_once(work, slowdown, buffer_bytes, extra_cpu_s=0.0):
    base_parse = int(round(work * 0.4))
    base_sum = int(round(work * 0.2))
    base_check = work - base_parse - base_sum
    extra = int(round(work * slowdown))
    return parse_records(base_parse) ^ checksum(base_check + extra, buffer_bytes, extra_cpu_s) ^ summarize(base_sum)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=int, default=1500, help="work units (1 unit ~ 1000 loop iterations)")
    ap.add_argument("--slowdown", type=float, default=0.0, help="extra work as a fraction of the total, in checksum")
    ap.add_argument("--slowdown-ms", type=float, default=0.0, help="extra CPU milliseconds spent in checksum")
    ap.add_argument("--mem-increase", type=float, default=0.0, help="make checksum's buffer this fraction larger")
    ap.add_argument("--buffer-mb", type=float, default=16.0, help="checksum's buffer size in MiB")
    ap.add_argument("--threads", type=int, default=0, help="extra threads alive for the whole run")
    ap.add_argument("--duration", type=float, default=None, help="repeat the work until this many seconds passed")
    ap.add_argument("--quiet", action="store_true", help="do not print the ready line")
    args = ap.parse_args(argv)
    if args.slowdown < 0 or args.mem_increase < 0 or args.work < 1 or args.slowdown_ms < 0:
        ap.error("--work must be >= 1, --slowdown and --mem-increase >= 0")
    buffer_bytes = int(args.buffer_mb * 1024 * 1024 * (1.0 + args.mem_increase))
    stop = threading.Event()
    workers = [threading.Thread(target=stop.wait, name=f"idle-{i}", daemon=True) for i in range(args.threads)]
    for t in workers:
        t.start()
    _spin(1)  # warm-up
    if not args.quiet:
        print("ready", flush=True)
    end = time.monotonic() + args.duration if args.duration else None
    extra = args.slowdown_ms / 1000.0
    result = run_once(args.work, args.slowdown, buffer_bytes, extra)
    while end is not None and time.monotonic() < end:
        result ^= run_once(args.work, args.slowdown, buffer_bytes, extra)
    stop.set()
    for t in workers:
        t.join()
    if not args.quiet:
        print(f"done {result}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
