"""Render benchmark: perfkit's flame graphs against flamegraph.pl, side by side, as ratios.

    python benchmarks/bench_render.py --flamegraph /tmp/fg/flamegraph.pl
        [--sizes 100000,1000000] [--repeat 3] [--repeat-large 1] [--workdir DIR]
        [--anchor-max 1000000]

For each size a collapsed profile is generated (benchmarks/gen_profile.py, deterministic;
kept in --workdir to reuse), converted once to speedscope and pprof, then these runs
are interleaved (one round = every task once, so a change of machine load hits all of
them alike):

* ``flamegraph.pl big.collapsed > pl.svg``  (the anchor; from --flamegraph or $FLAMEGRAPH_PL,
  never vendored; skipped above --anchor-max stacks if you want a short run)
* ``perfkit flame big.collapsed -o x.svg``
* ``perfkit flame big.collapsed -o x.svg -o x.html``
* ``perfkit flame big.speedscope.json -o x.svg`` and ``perfkit flame big.pb.gz -o x.svg``

Every run is its own process: CPU time (user+sys) and peak RSS come from wait4 and
include interpreter start-up and reading the input.  Medians over the rounds are
printed, with ratios to flamegraph.pl's median (CPU and peak RSS).  On a shared, busy
machine compare CPU, not wall.  Budgets (issue 15, DESIGN.md):

* ~100k stacks collapsed → SVG: CPU ≤ 0.33 × flamegraph.pl's;
* 1M stacks collapsed → SVG + HTML: ≤ 30 s CPU and ≤ 1 GiB peak RSS.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SVG_RATIO_BUDGET = 0.33
LARGE_CPU_BUDGET = 30.0
LARGE_RSS_BUDGET_MIB = 1024.0


def run(cmd: list[str], stdout_path: Path | None = None, env: dict | None = None) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds (user+sys), peak RSS MiB) of one child process."""
    out = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
    try:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, env=env)
        err = proc.stderr.read()  # drained while it runs (a full pipe would stall the child)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    finally:
        if stdout_path:
            out.close()
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err.decode(errors='replace').strip()}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0


def generate(workdir: Path, stacks: int) -> Path:
    src = workdir / f"gen{stacks}.collapsed"
    if not src.exists():
        tmp = src.with_suffix(".tmp")
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gen_profile.py"), str(tmp), "--stacks", str(stacks)],
                       check=True)
        tmp.rename(src)
    return src


def tasks(src: Path, workdir: Path, flamegraph: str | None, py: str) -> list[tuple[str, list[str], Path | None]]:
    """(label, command, stdout file) of every timed run for one input."""
    out = workdir / "out"
    stem = src.with_suffix("")
    pk = [py, "-m", "perfkit"]
    rows = []
    if flamegraph:
        rows.append(("flamegraph.pl → svg", ["perl", flamegraph, str(src)], out.with_suffix(".pl.svg")))
    rows += [
        ("perfkit collapsed → svg", pk + ["flame", str(src), "-o", str(out) + ".svg"], None),
        ("perfkit collapsed → svg+html", pk + ["flame", str(src), "-o", str(out) + ".svg", "-o", str(out) + ".html"],
         None),
        ("perfkit speedscope → svg", pk + ["flame", f"{stem}.speedscope.json", "-o", str(out) + ".svg"], None),
        ("perfkit pprof → svg", pk + ["flame", f"{stem}.pb.gz", "-o", str(out) + ".svg"], None),
    ]
    return rows


def bench_size(stacks: int, args, env: dict) -> list[str]:
    workdir = Path(args.workdir)
    src = generate(workdir, stacks)
    stem = src.with_suffix("")
    py = sys.executable
    size_mb = src.stat().st_size / 1e6
    print(f"\n== {stacks:,} unique stacks, {size_mb:.0f} MB collapsed ({src})", flush=True)
    if not Path(f"{stem}.pb.gz").exists() or not Path(f"{stem}.speedscope.json").exists():
        wall, cpu, rss = run([py, "-m", "perfkit", "convert", str(src), "-o", f"{stem}.speedscope.json",
                              "-o", f"{stem}.pb.gz"], env=env)
        print(f"   (setup) convert → speedscope + pprof: {cpu:.2f} s CPU, {rss:.0f} MiB", flush=True)
    anchor = args.flamegraph if args.flamegraph and stacks <= args.anchor_max else None
    todo = tasks(src, workdir, anchor, py)
    repeat = args.repeat if stacks < 500_000 else args.repeat_large
    results: dict[str, list[tuple[float, float, float]]] = {label: [] for label, _, _ in todo}
    for _ in range(repeat):
        for label, cmd, stdout_path in todo:
            results[label].append(run(cmd, stdout_path, env=env))
    med = {label: tuple(statistics.median(r[i] for r in rs) for i in range(3)) for label, rs in results.items()}
    pl = med.get("flamegraph.pl → svg")
    print(f"   {'task':<30}{'wall s':>8}{'CPU s':>8}{'peak MiB':>10}   {'CPU ratio':>9} {'RSS ratio':>9}"
          f"   (medians of {repeat}; ratios to flamegraph.pl)")
    for label, (wall, cpu, rss) in med.items():
        ratio = f"{cpu / pl[1]:>9.2f} {rss / pl[2]:>9.2f}" if pl and label != "flamegraph.pl → svg" else ""
        print(f"   {label:<30}{wall:>8.2f}{cpu:>8.2f}{rss:>10.0f}   {ratio}")
    verdicts = []
    svg = med["perfkit collapsed → svg"]
    if pl and stacks < 500_000:
        r = svg[1] / pl[1]
        verdicts.append(f"{stacks:,} stacks → svg: CPU {r:.2f}× flamegraph.pl (budget ≤ {SVG_RATIO_BUDGET}×): "
                        f"{'met' if r <= SVG_RATIO_BUDGET else 'MISSED'}")
    if stacks >= 500_000:
        both = med["perfkit collapsed → svg+html"]
        ok = both[1] <= LARGE_CPU_BUDGET and both[2] <= LARGE_RSS_BUDGET_MIB
        verdicts.append(f"{stacks:,} stacks → svg+html: {both[1]:.1f} s CPU, {both[2]:.0f} MiB (budget ≤ "
                        f"{LARGE_CPU_BUDGET:.0f} s, ≤ {LARGE_RSS_BUDGET_MIB:.0f} MiB): {'met' if ok else 'MISSED'}")
        if pl:
            verdicts.append(f"{stacks:,} stacks → svg: CPU {svg[1] / pl[1]:.2f}× flamegraph.pl")
    return verdicts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flamegraph", default=os.environ.get("FLAMEGRAPH_PL"), help="path to flamegraph.pl")
    ap.add_argument("--sizes", default="100000,1000000", help="comma-separated unique-stack counts")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved rounds below 500k stacks")
    ap.add_argument("--repeat-large", type=int, default=1, help="interleaved rounds from 500k stacks")
    ap.add_argument("--anchor-max", type=int, default=10**9, help="run flamegraph.pl only up to this many stacks")
    ap.add_argument("--workdir", default="/tmp/perfkit-bench-render", help="generated inputs and outputs (reused)")
    args = ap.parse_args(argv)
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PERFKIT_MAX_INPUT=os.environ.get("PERFKIT_MAX_INPUT", "2G"), NO_COLOR="1")
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if not args.flamegraph:
        print("flamegraph.pl not given (--flamegraph or $FLAMEGRAPH_PL): perfkit's numbers only, no ratios")
    verdicts = []
    for n in (int(x) for x in args.sizes.split(",") if x.strip()):
        verdicts += bench_size(n, args, env)
    load = os.getloadavg()
    print(f"\nload average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    for v in verdicts:
        print("budget:", v)
    return 0


if __name__ == "__main__":
    sys.exit(main())
