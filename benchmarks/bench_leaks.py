"""Benchmarks for `perfkit leaks`: sampler cost, detection latency, false alarms.

1. CPU cost of one resource sample (leaks.sampler.sample) on targets with few and many
   fds / sockets / threads, as a ratio to the anchor: psutil reading the same facts
   (memory_info, num_threads, open_files + net_connections, children).
2. Detection latency per leak scenario: the shortest monitoring window T (in steps of
   1 s) from which the verdict for the leaking resource is ``leak`` for every longer
   window up to --max-window (each window judged exactly as `perfkit leaks -d T` would).
3. False alarms: --runs runs of each steady look-alike (different seeds / phases),
   monitored --duration s every --interval s; counts of ``leak`` verdicts (want 0).

    .venv/bin/python benchmarks/bench_leaks.py [--runs 5] [--duration 15] [--interval 0.2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from perfkit.leaks import sampler, trend
from perfkit.procs import proc as procstat


def start(name, *args):
    p = subprocess.Popen([sys.executable, os.path.join(ROOT, "scenarios", f"{name}.py"), *map(str, args)],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    line = p.stdout.readline()
    if not line.startswith("ready"):
        raise RuntimeError(f"{name} did not start")
    return p


def stop(p):
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def cpu_per_call(fn, n=200):
    fn()
    c0 = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - c0) / n


def psutil_anchor(pid):
    import psutil

    proc = psutil.Process(pid)

    def read():
        with proc.oneshot():
            proc.memory_info()
            proc.num_threads()
            proc.open_files()
            proc.net_connections(kind="all")
            proc.children()
    return read


def bench_cost():
    print("## CPU cost per resource sample (ms of perfkit CPU; ratio = perfkit / psutil anchor)")
    cases = [
        ("idle target (3 fds, 1 thread)", ("idle", "--duration", "120")),
        ("~100 threads", ("leak_threads", "--rate", "0", "--prefill", "97", "--duration", "120")),
        ("~1000 threads", ("leak_threads", "--rate", "0", "--prefill", "997", "--duration", "120")),
        ("100 open files", ("fd_leak", "--rate", "0", "--prefill", "100", "--duration", "120")),
        ("1000 open files", ("fd_leak", "--rate", "0", "--prefill", "1000", "--duration", "120")),
        ("~400 tcp sockets", ("socket_leak", "--rate", "100", "--duration", "120")),
    ]
    print(f"{'target':34} {'perfkit':>9} {'+pss':>9} {'psutil':>9} {'ratio':>7}")
    for label, (name, *args) in cases:
        p = start(name, *args)
        try:
            time.sleep(2.0)
            cache, kids = procstat.SocketCache(), procstat.ChildCache()
            pid = p.pid
            ours = cpu_per_call(lambda: sampler.sample(pid, sockets=cache, kids=kids))  # noqa: B023 (called here)
            ours_pss = cpu_per_call(lambda: sampler.sample(pid, pss=True, sockets=cache, kids=kids))  # noqa: B023
            anchor = cpu_per_call(psutil_anchor(p.pid), n=50)
            print(f"{label:34} {ours * 1e3:9.3f} {ours_pss * 1e3:9.3f} {anchor * 1e3:9.3f} {ours / anchor:7.2f}")
        finally:
            stop(p)


def first_stable_leak(series, resource, max_window):
    """Smallest whole-second window from which every longer window says leak."""
    first = None
    for T in range(3, int(max_window) + 1):
        pts = [(t, v) for t, v in series if t <= T]
        bin_s = max(0.2, min(1.0, T / 30.0))
        th = trend.DEFAULT_THRESHOLDS[resource]
        if trend.assess(resource, pts, th, bin_seconds=bin_s).verdict == trend.LEAK:
            if first is None:
                first = T
        else:
            first = None
    return first


def bench_latency(max_window, interval):
    print(f"\n## Detection latency (window needed for a stable `leak`, sampled every {interval:g} s)")
    cases = [
        ("fd_leak --rate 5", "fds", ("fd_leak", "--rate", "5")),
        ("fd_leak --rate 0.5", "fds", ("fd_leak", "--rate", "0.5")),
        ("leak_threads --rate 2", "threads", ("leak_threads", "--rate", "2")),
        ("leak_threads --rate 0.5", "threads", ("leak_threads", "--rate", "0.5")),
        ("socket_leak --rate 3", "sockets", ("socket_leak", "--rate", "3")),
        ("leak_memory 2 MiB/s", "memory", ("leak_memory", "--rate", str(2 * 1024 * 1024))),
        ("leak_memory 256 KiB/s", "memory", ("leak_memory", "--rate", str(256 * 1024))),
    ]
    results = {}

    def run(label, resource, spec):
        name, *args = spec
        p = start(name, *args, "--duration", str(max_window + 10))
        try:
            mon = sampler.monitor(p.pid, max_window, interval)
        finally:
            stop(p)
        results[label] = first_stable_leak(mon.series(resource), resource, max_window)

    threads = [threading.Thread(target=run, args=c) for c in cases]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for label, resource, _ in cases:
        v = results.get(label)
        print(f"{label:28} {resource:8} {'not detected' if v is None else f'{v} s':>14}"
              f"   (budget 30 s: {'ok' if v is not None and v <= 30 else 'MISSED'})")


def bench_false_alarms(runs, duration, interval):
    print(f"\n## False alarms: {runs} runs of each steady look-alike, {duration:g} s every {interval:g} s")
    kinds = {"bounded_cache": [], "thread_pool": [], "sawtooth": [], "bursts": [], "step": []}
    total = 0
    for kind in kinds:
        verdicts: list[dict] = []

        def run(i, kind=kind, verdicts=verdicts):
            extra = ["--seed", str(i + 1)]
            if kind == "step":
                extra += ["--step-at", f"{duration * (0.2 + 0.6 * i / max(1, runs - 1)):.1f}"]
            if kind == "sawtooth":
                extra += ["--period", f"{1.0 + i * 0.5:.1f}"]
            p = start("steady", "--kind", kind, "--duration", str(duration + 10), *extra)
            try:
                mon = sampler.monitor(p.pid, duration, interval)
            finally:
                stop(p)
            bin_s = max(interval, min(1.0, duration / 30.0))
            verdicts.append({r: trend.assess(r, mon.series(r), bin_seconds=bin_s).verdict
                             for r in ("memory", "threads", "fds", "sockets", "children")})

        threads = [threading.Thread(target=run, args=(i,)) for i in range(runs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        leaks = sum(1 for v in verdicts for x in v.values() if x == trend.LEAK)
        inconc = sum(1 for v in verdicts for x in v.values() if x == trend.INCONCLUSIVE)
        total += leaks
        print(f"{kind:14} runs {len(verdicts)}  leak verdicts {leaks}  inconclusive {inconc}")
    print(f"total false leak verdicts: {total}")
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--duration", type=float, default=15.0)
    ap.add_argument("--interval", type=float, default=0.2)
    ap.add_argument("--max-window", type=float, default=30.0)
    ap.add_argument("--skip", default="", help="comma list of: cost,latency,false")
    args = ap.parse_args()
    skip = set(args.skip.split(","))
    print(f"# bench_leaks  (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    if "cost" not in skip:
        bench_cost()
    if "latency" not in skip:
        bench_latency(args.max_window, args.interval)
    if "false" not in skip:
        bench_false_alarms(args.runs, args.duration, args.interval)


if __name__ == "__main__":
    main()
