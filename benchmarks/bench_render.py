"""Render/convert benchmark: a ~100k-unique-stack collapsed profile to SVG, HTML, pprof
and speedscope with the real CLI, against flamegraph.pl on the same input.

    python benchmarks/bench_render.py [--flamegraph /tmp/FlameGraph/flamegraph.pl]
                                      [--profile big.collapsed] [--stacks 100000] [--repeat 1]

flamegraph.pl is taken from --flamegraph or $FLAMEGRAPH_PL (it is never vendored);
without it only perfkit's numbers are printed.  Each run is a separate process: wall
time, CPU time (user+sys) and peak RSS (from wait4) include interpreter start-up and
reading the input.  On a shared, busy machine compare CPU times (wall includes waiting).
Budget: SVG ≤ 3 s and ≤ 1 GB, several times faster than flamegraph.pl.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(cmd: list[str], stdout=None) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds (user+sys), peak RSS MiB) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=stdout or subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err.strip()}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0


def best(cmd, repeat, stdout_path=None):
    results = []
    for _ in range(repeat):
        if stdout_path:
            with open(stdout_path, "wb") as f:
                results.append(run(cmd, f))
        else:
            results.append(run(cmd))
    return min(r[0] for r in results), min(r[1] for r in results), max(r[2] for r in results)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flamegraph", default=os.environ.get("FLAMEGRAPH_PL"), help="path to flamegraph.pl")
    ap.add_argument("--profile", help="collapsed input (default: generated with gen_profile.py)")
    ap.add_argument("--stacks", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=1, help="runs per task (best wall time is reported)")
    args = ap.parse_args(argv)
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="perfkit-bench-") as tmp:
        src = Path(args.profile) if args.profile else Path(tmp) / "big.collapsed"
        if not args.profile:
            subprocess.run([py, str(ROOT / "benchmarks" / "gen_profile.py"), str(src), "--stacks", str(args.stacks)],
                           check=True)
        size_mb = src.stat().st_size / 1e6
        lines = sum(1 for _ in open(src, "rb"))
        print(f"input: {src.name}: {lines:,} unique stacks, {size_mb:.1f} MB collapsed text")
        rows = []
        for label, suffix in (("svg", ".svg"), ("html", ".html"), ("pprof", ".pb.gz"), ("speedscope", ".speedscope.json"),
                              ("perfkit", ".perfkit")):
            out = Path(tmp) / f"out{suffix}"
            wall, cpu, rss = best([py, "-m", "perfkit", "convert", str(src), "-o", str(out)], args.repeat)
            rows.append((f"perfkit → {label}", wall, cpu, rss, out.stat().st_size / 1e6))
        pl = None
        if args.flamegraph:
            out = Path(tmp) / "pl.svg"
            wall, cpu, rss = best(["perl", args.flamegraph, str(src)], args.repeat, stdout_path=out)
            pl = (wall, cpu)
            rows.append(("flamegraph.pl → svg", wall, cpu, rss, out.stat().st_size / 1e6))
        print(f"{'task':<24}{'wall s':>8}{'cpu s':>8}{'peak MiB':>10}{'out MB':>8}   vs flamegraph.pl (wall, cpu)")
        for label, wall, cpu, rss, out_mb in rows:
            ratio = (f"{pl[0] / wall:5.1f}x, {pl[1] / cpu:4.1f}x faster"
                     if pl and not label.startswith("flamegraph") else "")
            print(f"{label:<24}{wall:>8.2f}{cpu:>8.2f}{rss:>10.0f}{out_mb:>8.1f}   {ratio}")
        svg_wall, svg_cpu, svg_rss = rows[0][1], rows[0][2], rows[0][3]
        ok = svg_cpu <= 3.0 and svg_rss <= 1024
        print(f"budget (svg ≤ 3 s, ≤ 1 GiB): {'met' if ok else 'MISSED'} ({svg_wall:.2f} s wall, {svg_cpu:.2f} s cpu, "
              f"{svg_rss:.0f} MiB){'  [wall > cpu: the machine is busy]' if svg_wall > 1.3 * svg_cpu else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
