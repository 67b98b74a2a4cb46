"""Benchmarks for `perfkit heap` (ratios against anchors; never run as tests).

1. Target slowdown on an allocation-heavy workload (scenarios/mem_churn.py --work N,
   ~1M malloc-sized allocations): unprofiled vs raw `memray run` vs `perfkit heap --`.
   The workload times itself (start-up excluded).  Budget: perfkit adds nothing over
   memray (perfkit / memray ≈ 1.0).
2. Turning a capture of ~1M allocations into the report and a flame graph:
   `perfkit heap --from CAPTURE -o x.collapsed [-o x.svg]` vs memray's own reporters
   (`memray stats`, `memray flamegraph`) on the same file: wall time and peak RSS.

    .venv/bin/python benchmarks/bench_heap.py [--batches 60000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
CHURN = str(ROOT / "scenarios" / "mem_churn.py")


def _work_args(batches: int) -> list[str]:
    # 16 × 1 KiB objects per batch: above pymalloc's 512-byte limit, so every one is a malloc
    return [CHURN, "--work", str(batches), "--size", "1024", "--batch", "16384"]


def _seconds(text: str) -> float:
    m = re.search(r"done batches=\d+ seconds=([\d.]+)", text)
    if not m:
        raise SystemExit(f"workload did not report its time:\n{text[-2000:]}")
    return float(m.group(1))


def _run(cmd: list[str], **kw) -> tuple[subprocess.CompletedProcess, float, int]:
    """Run ``cmd``; return the result, its wall time and the peak RSS (KiB) of the child."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT, **kw)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stderr[-2000:]}")
    return res, wall, peak if peak > before else -1


def bench_slowdown(batches: int, repeat: int, tmp: Path) -> None:
    plain, memray_run, perfkit = [], [], []
    env = dict(os.environ, NO_COLOR="1")
    for i in range(repeat):  # interleaved, so machine noise hits every mode alike
        res, _, _ = _run([PY, *_work_args(batches)])
        plain.append(_seconds(res.stdout))
        out = tmp / f"raw{i}.bin"
        res, _, _ = _run([PY, "-m", "memray", "run", "-q", "-f", "--no-compress", "-o", str(out), *_work_args(batches)])
        memray_run.append(_seconds(res.stdout))
        out.unlink()
        res, _, _ = _run([PY, "-m", "perfkit", "heap", "--json", "--", PY, *_work_args(batches)], env=env)
        perfkit.append(_seconds(res.stderr))
    p, m, k = (statistics.median(x) for x in (plain, memray_run, perfkit))
    print(f"slowdown on {batches * 16:,} allocations (median of {repeat}, workload time only):")
    print(f"  unprofiled          {p:8.3f} s   1.00x")
    print(f"  memray run          {m:8.3f} s   {m / p:5.2f}x")
    print(f"  perfkit heap --     {k:8.3f} s   {k / p:5.2f}x")
    print(f"  perfkit / memray    {k / m:5.2f}   (budget: ~1.00, perfkit adds nothing over memray)")


def bench_report(batches: int, repeat: int, tmp: Path, svg: bool) -> None:
    cap = tmp / "big.bin"
    _run([PY, "-m", "memray", "run", "-q", "-f", "--no-compress", "-o", str(cap), *_work_args(batches)])
    sys.path.insert(0, str(ROOT))
    import memray

    n = memray.FileReader(str(cap)).metadata.total_allocations
    print(f"report from a capture of {n:,} allocation records ({cap.stat().st_size / 1e6:.1f} MB):")
    env = dict(os.environ, NO_COLOR="1")
    outs = ["-o", str(tmp / "x.collapsed")]
    if svg:
        outs += ["-o", str(tmp / "x.svg")]
    rows = {
        "perfkit heap --from": [PY, "-m", "perfkit", "heap", "--from", str(cap), *outs],
        "memray stats": [PY, "-m", "memray", "stats", "--json", "-f", "-o", str(tmp / "s.json"), str(cap)],
        "memray flamegraph": [PY, "-m", "memray", "flamegraph", "-f", "-o", str(tmp / "f.html"), str(cap)],
    }
    results = {}
    for name, cmd in rows.items():
        walls, peaks = [], []
        for _ in range(repeat):
            # a fresh interpreter per run so ru_maxrss is that run's peak
            res = subprocess.run([PY, "-c", _MEASURE, *cmd], capture_output=True, text=True, timeout=900, cwd=ROOT,
                                 env=env)
            if res.returncode != 0:
                raise SystemExit(f"{name} failed:\n{res.stderr[-2000:]}")
            w, pk = res.stdout.split()[-2:]
            walls.append(float(w))
            peaks.append(int(pk))
        results[name] = (statistics.median(walls), max(peaks))
    anchor = results["memray flamegraph"]
    for name, (w, pk) in results.items():
        print(f"  {name:22s} {w:7.2f} s  {w / anchor[0]:5.2f}x   peak RSS {pk / 1024:7.1f} MiB  "
              f"{pk / anchor[1]:5.2f}x")
    print("  (ratios against memray flamegraph on the same file)")


_MEASURE = """
import resource, subprocess, sys, time
t0 = time.perf_counter()
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
if r.returncode:
    sys.stderr.write(r.stderr.decode(errors="replace")); sys.exit(r.returncode)
print(time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=62500, help="workload batches (16 allocations each)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-slowdown", action="store_true")
    ap.add_argument("--skip-report", action="store_true")
    args = ap.parse_args()
    from perfkit import formats

    with tempfile.TemporaryDirectory(prefix="perfkit-bench-heap-") as d:
        tmp = Path(d)
        if not args.skip_slowdown:
            bench_slowdown(args.batches, args.repeat, tmp)
        if not args.skip_report:
            bench_report(args.batches, args.repeat, tmp, svg=formats.available("svg"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
