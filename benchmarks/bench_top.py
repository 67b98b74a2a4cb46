#!/usr/bin/env python3
"""How `perfkit top` should sample: rolling `py-spy record` windows vs repeated `py-spy dump`.

py-spy streams nothing while it records, so a live view either rolls short record
windows back to back (what perfkit top does: 1 s windows at --rate, plus a 20 Hz
non-blocking --gil stream) or calls `py-spy dump` over and over.  Against a
target that calls the same loop as spin_a three times for each spin_b (truth: spin_a
has 75 % of spin_a + spin_b), each approach runs
for --seconds, alternately, --rounds times, and this prints per approach:

* samples per second of CPU stacks it delivered,
* the CPU it cost (perfkit's children: guards and py-spy, from RUSAGE_CHILDREN), in %
  of one core,
* |spin_a / (spin_a + spin_b) - 75 %| in percentage points,
* the work the target got done per second relative to running unobserved,

and, as the anchor, the cost of py-spy's own `py-spy top` (which shows nothing a
program can check, so only its cost and the target's work are printed).

    .venv/bin/python benchmarks/bench_top.py [--seconds 10] [--rounds 3] [--rate 100]
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

WORK = r'''
import sys, time
print("ready", flush=True)
n = 0
end = time.monotonic() + float(sys.argv[1])
t0 = time.perf_counter()
def spin_a(k):
    s = 0
    for i in range(k):
        s += i
    return s
def spin_b(k):
    s = 0
    for i in range(k):
        s += i
    return s
while time.monotonic() < end:
    spin_a(3000); spin_a(3000); spin_a(3000); spin_b(3000)
    n += 1
print("work", n / (time.perf_counter() - t0), flush=True)
'''


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def start_target(seconds: float) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", WORK, str(seconds)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().startswith("ready")
    return p


def finish(p: subprocess.Popen) -> float:
    out = p.stdout.read()
    p.wait()
    return float(out.split()[-1])


def windows(pid: int, seconds: float, rate: int) -> dict:
    from perfkit.tools.pyspy import RecordOptions
    from perfkit.tools.pyspy_stream import Stream
    from perfkit.top.window import SlidingWindow, rows, thread_shares

    sw = SlidingWindow(span=seconds + 5)
    main = Stream(pid, RecordOptions(duration=1, rate=rate))
    gil = Stream(pid, RecordOptions(duration=2, rate=20, gil=True, nonblocking=True), exe=main.exe)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for r in main.poll():
            sw.add(r)
        for r in gil.poll():
            sw.add(r, gil=True)
        time.sleep(0.05)
    for r in main.close():
        sw.add(r)
    gil.close()
    stats = sw.stats()
    prof = sw.merged()
    table = rows(prof, stats, thread_shares(prof, stats, None, sw.gil_counts()))
    own = {r.function: r.own for r in table}
    a, b = own.get("spin_a", 0.0), own.get("spin_b", 0.0)
    return {"samples": stats.samples, "share": a / (a + b) if a + b else 0.0}


def pyspy_top(pid: int, seconds: float, rate: int) -> dict:
    """The anchor: py-spy's own live view (its output thrown away; it gives no numbers to check)."""
    from perfkit.procs import supervisor
    from perfkit.tools import pyspy

    child = supervisor.spawn([pyspy.find_pyspy(), "top", "--rate", str(rate), "--pid", str(pid)],
                             stdout=supervisor.DEVNULL, stderr=supervisor.DEVNULL)
    child.wait(seconds)
    child.close()
    return {"samples": 0, "share": None}


def dumps(pid: int, seconds: float) -> dict:
    from perfkit.tools import pyspy

    counts = {"spin_a": 0, "spin_b": 0, "other": 0}
    n = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for t in pyspy.dump(pid, nonblocking=True, timeout=5):
            if t.active and t.frames:
                n += 1
                name = t.frames[0].get("name")
                counts[name if name in counts else "other"] += 1
    ab = counts["spin_a"] + counts["spin_b"]
    return {"samples": n, "share": counts["spin_a"] / ab if ab else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rate", type=int, default=100)
    args = ap.parse_args()
    results: dict[str, list[dict]] = {"none": [], "windows": [], "dumps": [], "py-spy top": []}
    for _ in range(args.rounds):
        for mode in ("none", "windows", "dumps", "py-spy top"):
            p = start_target(args.seconds + 0.5)
            c0, t0 = children_cpu(), time.monotonic()
            if mode == "windows":
                r = windows(p.pid, args.seconds, args.rate)
            elif mode == "dumps":
                r = dumps(p.pid, args.seconds)
            elif mode == "py-spy top":
                r = pyspy_top(p.pid, args.seconds, args.rate)
            else:
                time.sleep(args.seconds)
                r = {"samples": 0, "share": 0.75}
            wall = time.monotonic() - t0
            r["cpu"] = (children_cpu() - c0) / wall
            r["work"] = finish(p)
            r["wall"] = wall
            results[mode].append(r)
    base = statistics.median(r["work"] for r in results["none"])
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; {args.rounds} rounds of {args.seconds:g} s")
    print(f"{'approach':10} {'samples/s':>10} {'cost % core':>12} {'|spin_a-75%| pp':>16} {'target work':>12}")
    for mode in ("windows", "dumps", "py-spy top"):
        rs = results[mode]
        sps = statistics.median(r["samples"] / r["wall"] for r in rs)
        cpu = statistics.median(r["cpu"] for r in rs) * 100
        err = (f"{statistics.median(abs(r['share'] - 0.75) for r in rs) * 100:16.1f}"
               if rs[0]["share"] is not None else f"{'-':>16}")
        work = statistics.median(r["work"] for r in rs) / base
        sps_txt = f"{sps:10.1f}" if sps else f"{'-':>10}"
        print(f"{mode:10} {sps_txt} {cpu:12.1f} {err} {work:12.2f}")


if __name__ == "__main__":
    main()
