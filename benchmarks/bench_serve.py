"""What `perfkit serve` costs, as a share of one core per target (DESIGN budget: ≤ 1 %
for metrics at a 15 s scrape interval; with a 10 s CPU profile every 15 s, py-spy's own
cost + 2 %).

1. Metrics only: ``--targets`` idle scenario processes served by one `perfkit serve`
   (readings every 5 s, the default), /metrics scraped every 15 s for ``--duration`` s.
   Anchor, side by side over the same seconds: the bare /proc readings
   (``leaks.sampler.sample`` of the same targets at the same interval, in a thread of
   this process) — what any exporter must pay.
2. Profiles: one CPU-bound target (cpu_split) served, /debug/pprof/profile?seconds=10
   requested every 15 s (and /metrics).  Anchor, side by side: raw ``py-spy record
   --duration 10 --rate 100`` every 15 s against a second cpu_split.

serve's CPU is read from /proc/PID/stat: its own utime+stime plus cutime+cstime (py-spy
runs under a guard that serve reaps, so their CPU lands there).  Numbers are shares of
one core (100 % = one core busy); on a loaded box both columns move together.

    .venv/bin/python benchmarks/bench_serve.py [--targets 5] [--duration 90] [--profiles 4]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
TICK = os.sysconf("SC_CLK_TCK")


def start(name, *args):
    p = subprocess.Popen([sys.executable, os.path.join(ROOT, "scenarios", f"{name}.py"), *map(str, args)],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    if not p.stdout.readline().startswith("ready"):
        raise RuntimeError(f"{name} did not start")
    return p


def stop(p, sig=signal.SIGTERM):
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def cpu_with_children(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    rest = data[data.rfind(b")") + 2:].split()
    return sum(int(x) for x in rest[11:15]) / TICK


def serve(*args):
    p = subprocess.Popen([sys.executable, "-m", "perfkit", "serve", "--listen", "127.0.0.1:0", "--json",
                          "--access-log", "off", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True, cwd=ROOT, start_new_session=True)
    info = json.loads(p.stdout.readline())
    return p, info["url"]


def get(url: str, timeout: float = 60.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def metrics_only(n: int, duration: float, scrape: float) -> dict:
    from perfkit.leaks import sampler
    from perfkit.procs import proc

    targets = [start("idle", "--duration", duration + 120, "--busy", "0.01") for _ in range(n)]
    anchors = [start("idle", "--duration", duration + 120, "--busy", "0.01") for _ in range(n)]
    p, url = serve(*[a for t in targets for a in ("--pid", t.pid)])
    try:
        get(url + "/metrics")  # start-up (imports, first readings) is not the steady cost
        time.sleep(1.0)
        stop_floor = threading.Event()
        floor_cpu: list[float] = []

        def floor() -> None:  # the bare readings, same targets count, same interval
            from perfkit.procs import cgroup

            caches = {a.pid: (proc.SocketCache(), proc.ChildCache()) for a in anchors}
            limits = {a.pid: cgroup.read_cgroup_limits(a.pid) for a in anchors}
            c0 = time.thread_time()
            while not stop_floor.is_set():
                for a in anchors:
                    s, k = caches[a.pid]
                    sampler.sample(a.pid, pss=True, sockets=s, kids=k)
                    proc.stat(a.pid)
                    proc.context_switches(a.pid)
                    cgroup.read_throttling(limits[a.pid])
                stop_floor.wait(5.0)
            floor_cpu.append(time.thread_time() - c0)

        th = threading.Thread(target=floor, daemon=True)
        c0, w0 = cpu_with_children(p.pid), time.monotonic()
        th.start()
        scrapes, size = 0, 0
        while time.monotonic() - w0 < duration:
            size = len(get(url + "/metrics"))
            scrapes += 1
            time.sleep(max(0.0, scrape - (time.monotonic() - w0) % scrape))
        wall = time.monotonic() - w0
        cpu = cpu_with_children(p.pid) - c0
        stop_floor.set()
        th.join(10)
    finally:
        stop(p)
        for t in targets + anchors:
            stop(t)
    return {"targets": n, "wall_s": round(wall, 1), "scrapes": scrapes, "exposition_bytes": size,
            "serve_pct_core_per_target": round(100 * cpu / wall / n, 3),
            "anchor_bare_readings_pct_core_per_target": round(100 * floor_cpu[0] / wall / n, 3) if floor_cpu else None,
            "budget_pct": 1.0}


def with_profiles(count: int, seconds: int = 10, every: float = 15.0) -> dict:
    from perfkit.tools.pyspy import find_pyspy

    pyspy = find_pyspy()
    total = count * every + 30
    target = start("cpu_split", "--duration", total)
    anchor_target = start("cpu_split", "--duration", total)
    p, url = serve("--pid", target.pid, "--max-seconds", seconds + 5)
    anchor_cpu = [0.0]

    def anchor() -> None:
        out = tempfile.mkdtemp(prefix="bench-serve-")
        t0 = time.monotonic()
        for k in range(count):
            q = subprocess.Popen([pyspy, "record", "--duration", str(seconds), "--rate", "100",
                                  "--format", "speedscope", "--output", os.path.join(out, "p.json"),
                                  "--pid", str(anchor_target.pid)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _, status, ru = os.wait4(q.pid, 0)
            q.returncode = os.waitstatus_to_exitcode(status)
            anchor_cpu[0] += ru.ru_utime + ru.ru_stime
            time.sleep(max(0.0, (k + 1) * every - (time.monotonic() - t0)))

    try:
        get(url + "/metrics")
        time.sleep(1.0)
        th = threading.Thread(target=anchor, daemon=True)
        c0, w0 = cpu_with_children(p.pid), time.monotonic()
        th.start()
        sizes = []
        for k in range(count):
            sizes.append(len(get(f"{url}/debug/pprof/profile?seconds={seconds}", timeout=seconds + 60)))
            get(url + "/metrics")
            time.sleep(max(0.0, (k + 1) * every - (time.monotonic() - w0)))
        th.join(every * 2)
        wall = time.monotonic() - w0
        cpu = cpu_with_children(p.pid) - c0
    finally:
        stop(p)
        stop(target)
        stop(anchor_target)
    serve_pct, pyspy_pct = 100 * cpu / wall, 100 * anchor_cpu[0] / wall
    return {"profiles": count, "seconds": seconds, "every_s": every, "wall_s": round(wall, 1),
            "profile_bytes": sizes, "serve_pct_core": round(serve_pct, 2), "anchor_pyspy_pct_core": round(pyspy_pct, 2),
            "overhead_pp": round(serve_pct - pyspy_pct, 2), "budget_overhead_pp": 2.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", type=int, default=5)
    ap.add_argument("--duration", type=float, default=90.0, help="seconds of metrics-only measurement")
    ap.add_argument("--scrape", type=float, default=15.0)
    ap.add_argument("--profiles", type=int, default=4)
    ap.add_argument("--skip-profiles", action="store_true")
    a = ap.parse_args()
    doc = {"metrics_only": metrics_only(a.targets, a.duration, a.scrape)}
    print(json.dumps(doc["metrics_only"]), flush=True)
    if not a.skip_profiles:
        doc["profiles"] = with_profiles(a.profiles)
        print(json.dumps(doc["profiles"]), flush=True)
    m = doc["metrics_only"]
    print(f"metrics only: serve {m['serve_pct_core_per_target']:.3f} % of a core per target "
          f"(bare readings {m['anchor_bare_readings_pct_core_per_target']} %; budget {m['budget_pct']} %)")
    if "profiles" in doc:
        pr = doc["profiles"]
        print(f"10 s profile every 15 s: serve {pr['serve_pct_core']:.2f} % vs raw py-spy "
              f"{pr['anchor_pyspy_pct_core']:.2f} % "
              f"→ overhead {pr['overhead_pp']:+.2f} pp (budget +{pr['budget_overhead_pp']} pp)")


if __name__ == "__main__":
    main()
