"""Benchmarks for `perfkit heap` (ratios against anchors; never run as tests).

1. Target slowdown on an allocation-heavy workload (scenarios/mem_churn.py --work N,
   ~1M malloc-sized allocations): unprofiled vs raw `memray run` vs `perfkit heap --`.
   The workload times itself (start-up excluded).  Budget: perfkit adds nothing over
   memray (perfkit / memray ≈ 1.0).
2. Turning a capture of ~1M allocations into the report and a flame graph:
   `perfkit heap --from CAPTURE -o x.collapsed [-o x.svg]` vs memray's own reporters
   (`memray stats`, `memray flamegraph`) on the same file: wall time and peak RSS.
3. Issue 15's two heap budgets, runs interleaved, medians, verdict printed:
   `perfkit heap --from CAPTURE -o x.html` vs `memray flamegraph CAPTURE` (≤ 1.0×), and
   `perfkit heap -o x.pb.gz -- python job.py` vs `memray run job.py` on a short job
   (mem_churn, `--job-batches`, ~0.7 s under memray run) (≤ 1.10×).  Whole-command
   wall time, start-up included.  Each is run a second time with the one Python pass
   over every record (the everything-allocated view) patched out: the what-if the
   owner's decision on that view needs.

    .venv/bin/python benchmarks/bench_heap.py [--batches 60000] [--repeat 3]
    .venv/bin/python benchmarks/bench_heap.py --budgets-only --repeat 7
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


def as_installed() -> None:
    """perfkit byte-compiled, as ``pip install`` leaves it.  An editable checkout run with
    PYTHONDONTWRITEBYTECODE=1 (this box's default) compiles every perfkit module from
    source on every start: 0.03-0.08 s that no installed perfkit pays."""
    subprocess.run([PY, "-m", "compileall", "-q", str(ROOT / "perfkit")], check=True, stdout=subprocess.DEVNULL)


def wall_of(cmd: list[str], env: dict, timeout: float = 900) -> float:
    """Wall seconds of one run of ``cmd`` (stdout dropped); a failed run ends the benchmark."""
    t0 = time.perf_counter()
    res = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout, cwd=ROOT, env=env)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stderr.decode(errors='replace')[-2000:]}")
    return wall


def side_by_side(title: str, perfkit: list[str], anchor: list[str], anchor_name: str, budget: float,
                 repeat: int) -> tuple[float, float, float]:
    """Interleaved runs (anchor, perfkit, anchor, ...) after one warm-up each; medians and the verdict."""
    env = dict(os.environ, NO_COLOR="1")
    wall_of(anchor, env)
    wall_of(perfkit, env)
    a, k = [], []
    for _ in range(repeat):
        a.append(wall_of(anchor, env))
        k.append(wall_of(perfkit, env))
    ma, mk = statistics.median(a), statistics.median(k)
    ratio = mk / ma
    print(f"{title} (median of {repeat} interleaved runs, wall):")
    print(f"  {anchor_name:34s} {ma:7.3f} s   1.00x")
    print(f"  {'perfkit':34s} {mk:7.3f} s   {ratio:5.2f}x   budget <= {budget:.2f}x: "
          f"{'within' if ratio <= budget else 'OVER'}")
    return ma, mk, ratio


def bench_budgets(batches: int, job_batches: int, repeat: int, tmp: Path) -> None:
    cap = tmp / "budget.bin"
    _run([PY, "-m", "memray", "run", "-q", "-f", "-o", str(cap), *_work_args(batches)])
    import memray

    n = memray.FileReader(str(cap)).metadata.total_allocations
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1/5/15 min)")
    side_by_side(f"heap --from a capture of {n:,} records -> HTML",
                 [PY, "-m", "perfkit", "heap", "--from", str(cap), "-o", str(tmp / "x.html")],
                 [PY, "-m", "memray", "flamegraph", "-f", "-o", str(tmp / "f.html"), str(cap)],
                 "memray flamegraph", 1.0, repeat)
    # what-if for the owner's decision (issue 15): the same command with the one Python
    # pass over every record (the everything-allocated view) left out, nothing else changed
    side_by_side("  ... what if the everything-allocated pass were left out",
                 [PY, "-c", _WITHOUT_ALLOCATED, "heap", "--from", str(cap), "-o", str(tmp / "y.html")],
                 [PY, "-m", "memray", "flamegraph", "-f", "-o", str(tmp / "f.html"), str(cap)],
                 "memray flamegraph", 1.0, repeat)
    job = _work_args(job_batches)
    side_by_side(f"heap -o x.pb.gz -- python job.py ({job_batches * 16:,} allocations)",
                 [PY, "-m", "perfkit", "heap", "-o", str(tmp / "x.pb.gz"), "--", PY, *job],
                 [PY, "-m", "memray", "run", "-q", "-f", "-o", str(tmp / "run.bin"), *job],
                 "memray run", 1.10, repeat)
    side_by_side("  ... what if the everything-allocated pass were left out",
                 [PY, "-c", _WITHOUT_ALLOCATED, "heap", "-o", str(tmp / "y.pb.gz"), "--", PY, *job],
                 [PY, "-m", "memray", "run", "-q", "-f", "-o", str(tmp / "run.bin"), *job],
                 "memray run", 1.10, repeat)


_WITHOUT_ALLOCATED = """
import sys
from perfkit.formats import memray_capture as mc
mc._allocated = lambda reader, native, cap, src: ({}, int(reader.metadata.total_allocations))
from perfkit.entry import main
sys.argv = ["perfkit", *sys.argv[1:]]
main()
"""

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
    ap.add_argument("--job-batches", type=int, default=20000, help="batches of the short job (launch budget)")
    ap.add_argument("--budgets-only", action="store_true", help="only issue 15's two side-by-side ratios")
    args = ap.parse_args()
    as_installed()
    from perfkit import formats

    with tempfile.TemporaryDirectory(prefix="perfkit-bench-heap-") as d:
        tmp = Path(d)
        if args.budgets_only:
            bench_budgets(args.batches, args.job_batches, args.repeat, tmp)
            return 0
        if not args.skip_slowdown:
            bench_slowdown(args.batches, args.repeat, tmp)
        if not args.skip_report:
            bench_report(args.batches, args.repeat, tmp, svg=formats.available("svg"))
        bench_budgets(args.batches, args.job_batches, args.repeat, tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
