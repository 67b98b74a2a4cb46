"""Quality of `perfkit gate compare` on this machine: false alarms, detection, cost.

Runs the real gate (perfkit.gate.flow.compare, the code behind the CLI) on
scenarios/bench_slowdown.py:

* null trials      base and head are the same command: any "regression" is a false alarm;
* slowdown trials  head has --slowdown F (F x more work, all in `checksum`), F in --sizes;
                   detection = the `cpu` metric decided "regression";
* memory trials    head has --mem-increase F (peak buffer F x larger);
                   detection = `heap_peak` decided "regression" (rss reported too);
* callgrind trials (--callgrind-k > 0) instructions only, null and +F slowdown.

Prints, per condition: trials, false-alarm / detection / inconclusive rates and the
median and max wall time per check; then one JSON line with everything.

    .venv/bin/python benchmarks/gate_quality.py --k 20 --parts null,cpu,mem,callgrind
    (also: ``check`` = record once, then K unpaired checks of the same code; ``wall``)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from perfkit.gate import flow  # noqa: E402
from perfkit.gate.config import Benchmark, GateConfig  # noqa: E402

SCENARIO = str(ROOT / "scenarios" / "bench_slowdown.py")


def cmd(work: int, slowdown: float = 0.0, mem: float = 0.0) -> list[str]:
    return [sys.executable, SCENARIO, "--quiet", "--work", str(work), "--slowdown", str(slowdown),
            "--mem-increase", str(mem)]


def one_check(metrics: tuple[str, ...], base: list[str], head: list[str], args) -> tuple[dict, float]:
    cfg = GateConfig(benchmarks=[Benchmark("bench", base, cwd=str(ROOT))], metrics=metrics,
                     repetitions=args.repetitions, max_repetitions=args.max_repetitions,
                     deterministic_repetitions=3, warmups=1, alpha=args.alpha, profile=False)
    t0 = time.monotonic()
    res = flow.compare(cfg, flow.Side(command=base), flow.Side(command=head))
    return {r.metric: r.decision for r in res.all_results()}, time.monotonic() - t0


def run_condition(label: str, k: int, metrics, base, head, focus: list[str], args, out: list) -> None:
    decisions, walls = [], []
    for i in range(k):
        d, w = one_check(metrics, base, head, args)
        decisions.append(d)
        walls.append(w)
        print(f"  {label} trial {i + 1}/{k}: {d} ({w:.1f} s)", file=sys.stderr, flush=True)
    row = {"condition": label, "trials": k, "median_check_s": round(statistics.median(walls), 2),
           "max_check_s": round(max(walls), 2)}
    any_reg = sum(1 for d in decisions if "regression" in d.values())
    row["any_regression_rate"] = round(any_reg / k, 3)
    for m in focus:
        for dec in ("regression", "inconclusive", "no change", "improvement"):
            row[f"{m}:{dec}"] = round(sum(1 for d in decisions if d.get(m) == dec) / k, 3)
    out.append(row)
    parts = [f"{label:<22} k={k:<3} any-regression {row['any_regression_rate'] * 100:5.1f}%"]
    for m in focus:
        parts.append(f"{m}: regr {row[f'{m}:regression'] * 100:5.1f}% inconcl {row[f'{m}:inconclusive'] * 100:5.1f}%")
    parts.append(f"check {row['median_check_s']:.1f} s (max {row['max_check_s']:.1f})")
    print(" | ".join(parts), flush=True)


def check_mode(k: int, metrics, args, out: list) -> None:
    """`record` once, then K `check`s of the same command: unpaired, across time, so the
    machine's drift between the two moments is part of what is measured."""
    c = cmd(args.work)
    cfg = GateConfig(benchmarks=[Benchmark("bench", c, cwd=str(ROOT))], metrics=metrics,
                     repetitions=args.repetitions, max_repetitions=args.max_repetitions,
                     deterministic_repetitions=3, warmups=1, alpha=args.alpha, profile=False)
    base, _ = flow.record(cfg)
    decisions, walls = [], []
    for i in range(k):
        t0 = time.monotonic()
        res = flow.check(cfg, base)
        walls.append(time.monotonic() - t0)
        d = {r.metric: r.decision for r in res.all_results()}
        decisions.append(d)
        print(f"  check-mode null trial {i + 1}/{k}: {d} ({walls[-1]:.1f} s)", file=sys.stderr, flush=True)
    row = {"condition": "check-mode null", "trials": k, "median_check_s": round(statistics.median(walls), 2),
           "max_check_s": round(max(walls), 2),
           "any_regression_rate": round(sum("regression" in d.values() for d in decisions) / k, 3)}
    for m in metrics:
        for dec in ("regression", "inconclusive"):
            row[f"{m}:{dec}"] = round(sum(d.get(m) == dec for d in decisions) / k, 3)
    out.append(row)
    print(f"{'check-mode null':<22} k={k:<3} any-regression {row['any_regression_rate'] * 100:5.1f}% | "
          + " | ".join(f"{m}: regr {row[f'{m}:regression'] * 100:5.1f}% inconcl {row[f'{m}:inconclusive'] * 100:5.1f}%"
                       for m in metrics)
          + f" | check {row['median_check_s']:.1f} s (max {row['max_check_s']:.1f})", flush=True)


def _instructions_per_unit(work: int) -> tuple[float, float]:
    from perfkit.gate import bench

    def count(w: int) -> float:
        spec = bench.RunSpec("probe", cmd(w), cwd=str(ROOT), env={"PYTHONHASHSEED": "0"}, timeout=600)
        tmp = tempfile.mkdtemp(prefix="gateq-")
        try:
            return bench.run_callgrind(spec, tmp)["instructions"]
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    one, full = count(1), count(work)
    return (full - one) / (work - 1), full


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=20, help="trials per condition")
    ap.add_argument("--callgrind-k", type=int, default=5, help="trials per callgrind condition")
    ap.add_argument("--sizes", default="0.02,0.05,0.10,0.20")
    ap.add_argument("--work", type=int, default=1000, help="scenario work units (~0.15 s of CPU)")
    ap.add_argument("--callgrind-work", type=int, default=200)
    ap.add_argument("--repetitions", type=int, default=10)
    ap.add_argument("--max-repetitions", type=int, default=30)
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--parts", default="null,cpu,mem,callgrind")
    args = ap.parse_args(argv)
    sizes = [float(s) for s in args.sizes.split(",")]
    parts = set(args.parts.split(","))
    out: list[dict] = []
    from perfkit.gate.metrics import DEFAULT_METRICS as default_metrics
    t0 = time.monotonic()
    print(f"gate quality: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}, k={args.k}, work={args.work}, "
          f"repetitions {args.repetitions}..{args.max_repetitions}, alpha {args.alpha}", flush=True)
    if "wall" in parts:  # opt-in metric: null and +10 % with cpu and wall
        run_condition("null (cpu+wall)", args.k, ("cpu", "wall"), cmd(args.work), cmd(args.work),
                      ["cpu", "wall"], args, out)
    if "null" in parts:
        run_condition("null (default metrics)", args.k, default_metrics, cmd(args.work), cmd(args.work),
                      list(default_metrics), args, out)
    if "check" in parts:
        check_mode(args.k, default_metrics, args, out)
    if "cpu" in parts:
        for f in sizes:
            run_condition(f"slowdown +{f * 100:g}%", args.k, default_metrics, cmd(args.work),
                          cmd(args.work, slowdown=f), ["cpu"], args, out)
    if "mem" in parts:
        for f in sizes:
            run_condition(f"memory +{f * 100:g}%", args.k, ("rss", "heap_peak", "allocations"), cmd(args.work),
                          cmd(args.work, mem=f), ["heap_peak", "rss", "allocations"], args, out)
    if "callgrind" in parts and args.callgrind_k:
        w = args.callgrind_work
        run_condition("callgrind null", args.callgrind_k, ("instructions",), cmd(w), cmd(w), ["instructions"],
                      args, out)
        # --slowdown is relative to the loop work; interpreter start-up is a fixed number of
        # instructions, so scale it to make the whole run's instruction count grow by F
        per_unit, total = _instructions_per_unit(w)
        for f in sizes[:1]:
            slow = f * total / (per_unit * w)
            print(f"callgrind: {total:,.0f} instructions at --work {w}, {per_unit:,.0f} per unit: "
                  f"--slowdown {slow:.4f} adds {f * 100:g}% instructions", flush=True)
            run_condition(f"callgrind +{f * 100:g}% instr", args.callgrind_k, ("instructions",), cmd(w),
                          cmd(w, slowdown=slow), ["instructions"], args, out)
    print(f"total {time.monotonic() - t0:.0f} s", flush=True)
    print(json.dumps({"gate_quality": out}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
