"""`perfkit affinity`: how many workers, on which cores — and proof the layout is better.

Subcommands: show, plan, apply, reset, recommend, tune.  Thin: parse → library
(collectors.topology / workers / behaviour / tune_runner, analysis.affinity_*) →
render → exit code.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from perfkit.options import MAX_DURATION, finite

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
                  no_args_is_help=True, help="Worker-to-core layout: show, plan, apply, reset, recommend, tune.")

_PID = typer.Option(..., "--pid", "-p", help="The master (or only) process.")
_JSON = typer.Option(False, "--json", help="Print one JSON document on stdout.")
_ROOT = typer.Option("/", "--sysroot", help="Read /sys and /proc under this directory (testing, offline analysis).")
_UNIT = typer.Option("cpu", "--per-worker", help="What each worker gets: cpu (one logical CPU), core, llc "
                                                  "(a last-level-cache group) or node (a NUMA node).")
_STRATEGY = typer.Option("spread", "--strategy", help="spread: cores across LLCs/NUMA nodes first; "
                                                           "compact: fill one LLC/node first.")


# ----------------------------------------------------------------------------- helpers


def _context(pid: int, root: str):
    from perfkit.affinity import topology

    topo = topology.read_topology(root)
    if root in ("/", ""):
        _check_alive(pid)
    bud = topology.budget(pid, root, topo)
    return topo, bud


def _check_alive(pid: int) -> None:
    from perfkit.affinity.workers import _proc
    from perfkit.errors import TargetExited

    p = _proc(pid)
    if p.status() == "zombie":
        raise TargetExited(f"pid {pid} has exited (zombie)")


def _build_plan(pid: int, root: str, strategy: str, cpus: Optional[str], workers: Optional[int], include_master: bool,
                unit: str = "cpu", state: str | None = None):
    from perfkit.affinity.masks import parse_cpus, planning_inputs
    from perfkit.affinity.plan import check_inside, make_plan
    from perfkit.console import warn
    from perfkit.errors import UsageError

    if root not in ("/", "") and workers is None:
        raise UsageError("--sysroot plans for hypothetical workers: give --workers N")
    topo, bud = _context(pid, root)
    usable = bud.usable
    if cpus:
        usable = parse_cpus(cpus)
        check_inside(usable, bud.usable, f"pid {pid}")
    ws = planning_inputs(pid, root, hypothetical=workers, state=state, include_master=include_master)
    if workers is None and not include_master and [w.pid for w in ws] == [pid]:
        warn(f"pid {pid} has no worker processes: planning for the process itself")
    return topo, bud, make_plan(topo, usable, ws, strategy, master=pid, unit=unit)


# ----------------------------------------------------------------------------- show


@app.command()
def show(
    pid: int = _PID,
    interval: float = typer.Option(1.0, "--interval", metavar="SECONDS", min=0.1, max=60, help="Seconds to measure CPU "
                                                                                               "% and rates."),
    state: Optional[Path] = typer.Option(None, "--state", help="Saved-masks file of a previous apply."),
    as_json: bool = _JSON,
) -> None:
    """The process tree (master + workers): masks, last CPU, CPU %, context switches, threads — and what is wrong."""
    from perfkit.affinity import topology, workers
    from perfkit.affinity.findings import findings, pin_status
    from perfkit.console import out_console, print_json

    topo, bud = _context(pid, "/")
    before = topology.read_throttling(bud.limits)
    snap = workers.snapshot(pid, interval)
    after = topology.read_throttling(bud.limits)
    delta = None
    if before and after:
        delta = {k: round(after[k] - before[k], 6) for k in ("nr_periods", "nr_throttled", "throttled_s")}
        delta["cgroup"] = after.get("cgroup") or (bud.limits.quota.cgroup if bud.limits.quota else "")
    saved = workers.load_state(workers.state_path(pid, str(state) if state else None)) or {"processes": {}}
    found = pin_status(snap, saved["processes"], bud.usable) + findings(snap, topo, bud, delta)
    doc = {"command": "affinity show", "pid": pid, "topology": topo.to_json(), "budget": bud.to_json(),
           "processes": [w.to_json() for w in snap], "throttling_delta": delta,
           "findings": [f.to_json() for f in found]}
    if as_json:
        print_json(doc)
        return
    from perfkit.affinity.render import findings_text, topology_lines, workers_table

    con = out_console()
    con.print(topology_lines(doc["topology"], doc["budget"]))
    con.print(workers_table(doc["processes"], f"pid {pid}: master and workers over {interval:g} s"))
    con.print(findings_text(doc["findings"]))


# ----------------------------------------------------------------------------- plan


@app.command()
def plan(
    pid: int = _PID,
    strategy: str = _STRATEGY,
    cpus: Optional[str] = typer.Option(None, "--cpus", help="Plan only on these CPUs (must be inside the allowed "
                                                            "set)."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", min=1, max=4096,
                                          help="Plan for N hypothetical workers instead of the live ones."),
    include_master: bool = typer.Option(False, "--include-master", help="Pin the master too (it usually only waits)."),
    unit: str = _UNIT,
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Save the plan (JSON) for apply --plan."),
    root: str = _ROOT,
    as_json: bool = _JSON,
) -> None:
    """Plan one CPU per worker: physical cores first, SMT siblings last, NUMA/LLC-local."""
    _plan_or_apply(pid, strategy, cpus, workers, include_master, output, root, as_json, dry_run=True, unit=unit)


def _plan_or_apply(pid, strategy, cpus, workers, include_master, output, root, as_json, *, dry_run, state=None,
                   all_or_nothing=False, unit="cpu"):
    from perfkit.console import out_console, print_json

    if output is not None:
        from perfkit.fileio import check_writable

        check_writable(output)
    topo, bud, p = _build_plan(pid, root, strategy, cpus, workers, include_master, unit,
                               str(state) if state else None)
    doc = {"command": "affinity plan" if dry_run else "affinity apply", "pid": pid, "budget": bud.to_json(),
           "topology": topo.to_json(), "plan": p.to_json(), "dry_run": dry_run}
    if output is not None:
        import json

        from perfkit.fileio import atomic_write

        atomic_write(output, json.dumps(doc["plan"], indent=2, sort_keys=True))
    if dry_run:
        if as_json:
            print_json(doc)
            return
        from perfkit.affinity.render import plan_equivalents, plan_table, topology_lines

        con = out_console()
        con.print(topology_lines(doc["topology"], doc["budget"]))
        con.print(plan_table(doc["plan"]))
        con.print(plan_equivalents(doc["plan"]))
        return
    _do_apply(pid, p.assignments, doc, state, all_or_nothing, as_json, strategy)


# ----------------------------------------------------------------------------- apply


@app.command()
def apply(
    pid: Optional[int] = typer.Option(None, "--pid", "-p", help="The master process (its workers get pinned)."),
    strategy: str = _STRATEGY,
    cpus: Optional[str] = typer.Option(None, "--cpus", help="Use only these CPUs (must be inside the allowed set)."),
    include_master: bool = typer.Option(False, "--include-master", help="Pin the master too."),
    unit: str = _UNIT,
    plan_file: Optional[Path] = typer.Option(None, "--plan", help="Apply a plan saved by `plan -o FILE`."),
    assign: Optional[List[str]] = typer.Option(None, "--assign", help="PID=CPUS, repeatable: pin exactly this."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be done; change nothing."),
    all_or_nothing: bool = typer.Option(False, "--all-or-nothing", help="If any worker fails, undo the others."),
    state: Optional[Path] = typer.Option(None, "--state", help="Where to save the original masks "
                                                               "[default: "
                                                               "~/.local/state/perfkit/affinity/pid-N.json]."),
    as_json: bool = _JSON,
) -> None:
    """Pin workers with sched_setaffinity (all their threads); original masks are saved for reset."""
    from perfkit.errors import UsageError

    if assign or plan_file:
        if assign and plan_file:
            raise UsageError("give either --assign or --plan, not both")
        from perfkit.affinity.masks import explicit_assignments

        assignments, master = explicit_assignments(assign, plan_file, pid, str(state) if state else None)
        doc = {"command": "affinity apply", "pid": master, "dry_run": dry_run,
               "plan": {"assignments": [a.to_json() for a in assignments]}}
        if dry_run:
            _print_plan_doc(doc, as_json)
            return
        _do_apply(master, assignments, doc, state, all_or_nothing, as_json, None)
        return
    if pid is None:
        raise UsageError("no target: give --pid N (the master), --plan FILE or --assign PID=CPUS")
    _plan_or_apply(pid, strategy, cpus, None, include_master, None, "/", as_json, dry_run=dry_run,
                   state=state, all_or_nothing=all_or_nothing, unit=unit)


def _print_plan_doc(doc: dict, as_json: bool) -> None:
    from perfkit.console import out_console, print_json

    if as_json:
        print_json(doc)
        return
    from perfkit.affinity.render import plan_table

    out_console().print(plan_table({"strategy": "explicit", "usable": "", **doc["plan"]}))


def _do_apply(master, assignments, doc, state, all_or_nothing, as_json, strategy):
    from perfkit.affinity import workers
    from perfkit.console import message, out_console, print_json
    from perfkit.errors import PermissionDenied, TargetError

    path = workers.state_path(master, str(state) if state else None)
    res = workers.apply(assignments, master=master, state_file=path, all_or_nothing=all_or_nothing,
                        strategy=strategy)
    doc["result"] = res.to_json()
    if as_json:
        print_json(doc)
    else:
        from perfkit.affinity.render import plan_table

        out_console().print(plan_table({"strategy": strategy or "explicit", "usable": doc.get("budget", {})
                                        .get("usable", ""), **doc["plan"]}))
    applied = ", ".join(f"{a['pid']}→{a['cpus']}" for a in res.applied) or "none"
    undo = f"perfkit affinity reset --pid {master}" + (f" --state {path}" if state else "")
    problems = []
    if res.gone:
        problems.append(f"pid {', '.join(map(str, res.gone))} exited (or was reused) before it could be pinned")
    if res.denied:
        problems.append(f"permission denied (EPERM) setting the affinity of pid {', '.join(map(str, res.denied))}")
    for r in res.rejected:
        problems.append(f"the kernel refused CPUs {r['cpus']} for pid {r['pid']}: {r['error']}")
    if not problems:
        if not as_json:
            message(f"pinned {len(res.applied)} process(es): {applied}; original masks saved in {path} "
                    f"(undo: {undo})")
        return
    if res.rolled_back:
        outcome = f"rolled back: nothing changed (the {len(res.applied)} already pinned were restored)"
    elif res.applied:
        outcome = f"the rest were applied: {applied}; undo with {undo}"
    else:
        outcome = "nothing was applied"
    hint = None
    if res.denied:
        hint = "run as the process's owner or root (CAP_SYS_NICE)"
    msg = "; ".join(problems) + f" — {outcome}"
    if res.denied and not res.gone:
        raise PermissionDenied(msg, hint)
    raise TargetError(msg, hint)


# ----------------------------------------------------------------------------- reset


@app.command()
def reset(
    pid: Optional[int] = typer.Option(None, "--pid", "-p", help="The master given to apply."),
    state: Optional[Path] = typer.Option(None, "--state", help="The saved-masks file (if not the default)."),
    as_json: bool = _JSON,
) -> None:
    """Restore the masks saved by apply."""
    from perfkit.affinity import workers
    from perfkit.console import message, print_json
    from perfkit.errors import PermissionDenied, UsageError

    if pid is None and state is None:
        raise UsageError("give --pid N (the master given to apply) or --state FILE")
    path = workers.state_path(pid or 0, str(state) if state else None)
    res = workers.reset(path)
    if as_json:
        print_json({"command": "affinity reset", "pid": pid, "state_file": path, **res.to_json()})
    else:
        restored = ", ".join(f"{r['pid']}→{r['cpus']}" for r in res.restored) or "none"
        message(f"restored {len(res.restored)} process(es): {restored}")
        if res.gone:
            message(f"already gone (nothing to restore): {', '.join(map(str, res.gone))}")
    if res.denied:
        raise PermissionDenied(f"permission denied restoring pid {', '.join(map(str, res.denied))}; "
                               f"their masks stay saved in {path}", "run as the process's owner or root")


# ----------------------------------------------------------------------------- recommend


@app.command()
def recommend(
    pid: int = _PID,
    duration: float = typer.Option(5.0, "--duration", "-d", min=0.5, max=600,
                                   help="Seconds per py-spy recording (three are made: --gil, running, --idle)."),
    rate: int = typer.Option(100, "--rate", "-r", min=10, max=1000, help="Samples per second."),
    as_json: bool = _JSON,
) -> None:
    """Worker / thread count with its reasoning: CPU budget + GIL-held and idle shares (py-spy)."""
    from perfkit.affinity.advice import recommend as advise
    from perfkit.affinity.behaviour import measure
    from perfkit.console import live_status, out_console, print_json
    from perfkit.target import check_pid

    check_pid(pid)
    topo, bud = _context(pid, "/")
    phase = {"name": "starting"}

    def line() -> str:
        return f"sampling pid {pid} with py-spy ({phase['name']}, {duration:g} s each of 3)…"

    with live_status(line):
        beh = measure(pid, duration=duration, rate=rate, on_phase=lambda n: phase.update(name=n))
    rec = advise(bud.cpus, bud.reason, beh)
    doc = {"command": "affinity recommend", "pid": pid, "budget": bud.to_json(), "behaviour": beh.to_json(),
           "recommendation": rec.to_json()}
    if as_json:
        print_json(doc)
        return
    from perfkit.affinity.render import recommendation_text

    text, table = recommendation_text(doc["recommendation"], doc["behaviour"])
    con = out_console()
    con.print(text)
    con.print(table)


# ----------------------------------------------------------------------------- tune


def _int_list(text: str, what: str) -> list[int]:
    from perfkit.errors import UsageError

    try:
        vals = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise UsageError(f"bad {what} {text!r}", "use e.g. 1,2,4") from None
    if not vals or min(vals) < 1:
        raise UsageError(f"bad {what} {text!r}: give positive integers")
    return vals


@app.command(context_settings={"allow_interspersed_args": False})
def tune(
    command: Optional[List[str]] = typer.Argument(None, help="The workload (after --); {workers} is replaced."),
    workers: Optional[str] = typer.Option(None, "--workers", "-w",
                                          help="Worker counts to try [default: 1, budget/2, budget, budget+1]."),
    layouts: str = typer.Option("unpinned,spread", "--layouts",
                                help="Comma list of unpinned, spread, compact (unpinned is always included)."),
    repeat: int = typer.Option(5, "--repeat", min=1, max=100,
                               help="Measured runs per candidate (interleaved; at least 3 for a 95 % interval)."),
    warmup: int = typer.Option(1, "--warmup", min=0, max=10, help="Unmeasured rounds first."),
    env_var: str = typer.Option("PERFKIT_WORKERS", "--env-var", help="Also pass the worker count in this variable."),
    timeout: float = typer.Option(300.0, "--timeout", min=1, callback=finite("--timeout", 1.0, MAX_DURATION, " s"),
                                 help="Seconds before one run is killed."),
    alpha: float = typer.Option(0.05, "--alpha", min=0.001, max=0.5, help="Significance level."),
    min_effect: float = typer.Option(0.03, "--min-effect", min=0.0, max=1.0,
                                     help="Differences smaller than this fraction are noise anyway."),
    as_json: bool = _JSON,
) -> None:
    """Run the workload under candidate worker counts and layouts; rank them with confidence intervals."""
    from perfkit.affinity import topology
    from perfkit.affinity.plan import STRATEGIES, cpu_order
    from perfkit.affinity.tune_stats import MIN_RUNS, rank
    from perfkit.affinity.tuning import candidate_name, run_matrix
    from perfkit.console import live_status, message, out_console, print_json
    from perfkit.errors import TargetError, UsageError
    from perfkit.target import resolve

    if repeat < MIN_RUNS:
        raise UsageError(f"--repeat {repeat} is too few: a 95 % interval needs at least {MIN_RUNS} runs per "
                         f"candidate (with 2, t = 12.7 and the interval can reach below zero)",
                         f"use --repeat {MIN_RUNS} or more (default 5)")
    target = resolve(None, command)
    topo = topology.read_topology()
    bud = topology.budget("self", "/", topo)
    whole = bud.whole
    counts = _int_list(workers, "--workers") if workers else sorted({max(1, whole // 2), whole, whole + 1})
    lays = list(dict.fromkeys(["unpinned"] + [x.strip() for x in layouts.split(",") if x.strip()]))
    for x in lays[1:]:
        if x not in STRATEGIES:
            raise UsageError(f"unknown layout {x!r}", "use unpinned, spread, compact")
    if not any("{workers}" in a for a in target.command):
        message(f"no {{workers}} in the command: the worker count is passed only as ${env_var}")
    orders = {x: cpu_order(topo, bud.usable, x) for x in lays[1:]}
    prog = {"round": 0, "cand": ""}
    rounds = warmup + repeat

    def line() -> str:
        return f"tune round {prog['round']}/{rounds} · {prog['cand']}"

    with live_status(line):
        m = run_matrix(target.command, counts, lays, orders, repeat=repeat, warmup=warmup, env_var=env_var,
                       timeout=timeout, on_progress=lambda r, name: prog.update(round=r, cand=name))
    results, failures, interrupted = m.results, m.failures, m.interrupted
    runs = [x for v in results.values() for x in v]
    if not runs and interrupted:
        from perfkit.errors import Interrupted

        raise Interrupted("interrupted before any measured run")
    if not runs:
        raise TargetError(f"every run of the workload failed ({failures[0] if failures else 'no runs'})",
                          "run the command by hand to check it")
    use_tp = all(x.throughput is not None for x in runs)
    samples = {k: [float((x.throughput if use_tp else x.wall_s) or 0.0) for x in v] for k, v in results.items()}
    meta = {candidate_name(n, lay): {"workers": n, "layout": lay,
                                     "pinned_processes": max((x.pinned for x in results[candidate_name(n, lay)]),
                                                             default=0)} for n in counts for lay in lays}
    ranking = rank(samples, higher_is_better=use_tp, metric="throughput" if use_tp else "wall_s", meta=meta,
                   alpha=alpha, min_effect=min_effect,
                   unpinned={candidate_name(n, "unpinned") for n in counts})
    doc = {"command": "affinity tune", "argv": target.command, "budget": bud.to_json(), "workers": counts,
           "layouts": lays, "repeat": repeat, "warmup": warmup, "failures": failures, "interrupted": interrupted,
           **ranking.to_json()}
    if as_json:
        print_json(doc)
        _tune_exit(interrupted)
        return
    from rich.text import Text

    from perfkit.affinity.render import ranking_table

    con = out_console()
    con.print(ranking_table(doc))
    con.print(Text("recommended: ", style="bold") + Text(str(doc["recommended"])))
    con.print(Text(doc["verdict"]))
    for f in failures[:5]:
        message(f"failed run: {f}")
    _tune_exit(interrupted)


def _tune_exit(interrupted: bool) -> None:
    if interrupted:
        from perfkit.console import message
        from perfkit.errors import EXIT_INTERRUPTED

        message("interrupted: the ranking covers the runs measured so far")
        raise typer.Exit(EXIT_INTERRUPTED)
