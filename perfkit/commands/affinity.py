"""`perfkit affinity`: how many workers, on which cores — and proof the layout is better.

Subcommands: show, plan, apply, reset, recommend, tune.  Thin: parse → library
(collectors.topology / workers / behaviour / tune_runner, analysis.affinity_*) →
render → exit code.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
                  no_args_is_help=True, help="Worker-to-core layout: show, plan, apply, reset, recommend, tune.")

_PID = typer.Option(..., "--pid", "-p", help="The master (or only) process.")
_JSON = typer.Option(False, "--json", help="Print one JSON document on stdout.")
_ROOT = typer.Option("/", "--sysroot", help="Read /sys and /proc under this directory (testing, offline analysis).")
_UNIT = typer.Option("cpu", "--per-worker", help="What each worker gets: cpu (one logical CPU), core, llc "
                                                  "(a last-level-cache group) or node (a NUMA node).")
_STRATEGY = typer.Option("spread", "--strategy", "-s", help="spread: cores across LLCs/NUMA nodes first; "
                                                           "compact: fill one LLC/node first.")


# ----------------------------------------------------------------------------- helpers


def _context(pid: int, root: str):
    from perfkit.collectors import topology

    topo = topology.read_topology(root)
    if root in ("/", ""):
        _check_alive(pid)
    bud = topology.budget(pid, root, topo)
    return topo, bud


def _check_alive(pid: int) -> None:
    from perfkit.collectors.workers import _proc
    from perfkit.errors import TargetExited

    p = _proc(pid)
    if p.status() == "zombie":
        raise TargetExited(f"pid {pid} has exited (zombie)")


def _parse_cpus(text: str):
    from perfkit.collectors.topology import parse_cpulist
    from perfkit.errors import UsageError

    try:
        cpus = parse_cpulist(text)
    except ValueError:
        raise UsageError(f"bad CPU list {text!r}", "use e.g. 0-3,8") from None
    if not cpus:
        raise UsageError(f"empty CPU list {text!r}")
    return cpus


def _worker_assignments(pid: int, root: str, hypothetical: int | None, state: str | None = None):
    """Assignments (without CPUs yet) for the live workers of ``pid`` or N hypothetical ones."""
    from perfkit.analysis.affinity_plan import Assignment
    from perfkit.collectors.topology import allowed_cpus

    if hypothetical is not None:
        mask = allowed_cpus(pid, root)
        return [Assignment(pid=-(i + 1), cpus=[], current=mask, name=f"worker {i + 1}") for i in range(hypothetical)]
    from perfkit.collectors.topology import parse_cpulist
    from perfkit.collectors.workers import _is_helper, load_state, state_path, tree

    try:  # masks perfkit set itself are not "inherited": plan from the saved originals
        saved = (load_state(state_path(pid, state)) or {}).get("processes", {})
    except Exception:
        saved = {}
    out = []
    for p in tree(pid)[1:]:
        if _is_helper(p):
            continue
        try:
            current, ct = allowed_cpus(p.pid), p.create_time()
            entry = saved.get(str(p.pid))
            if entry and abs(float(entry.get("create_time", 0)) - ct) < 0.05:
                current = parse_cpulist(entry["original"]) or current
            out.append(Assignment(pid=p.pid, cpus=[], current=current, name=p.name(), create_time=ct))
        except Exception:
            continue
    return out


def _build_plan(pid: int, root: str, strategy: str, cpus: Optional[str], workers: Optional[int], include_master: bool,
                unit: str = "cpu", state: str | None = None):
    from perfkit.analysis.affinity_plan import Assignment, check_inside, make_plan
    from perfkit.collectors.topology import allowed_cpus
    from perfkit.errors import UsageError

    if root not in ("/", "") and workers is None:
        raise UsageError("--sysroot plans for hypothetical workers: give --workers N")
    topo, bud = _context(pid, root)
    usable = bud.usable
    if cpus:
        chosen = _parse_cpus(cpus)
        check_inside(chosen, usable, f"pid {pid}")
        usable = chosen
    ws = _worker_assignments(pid, root, workers, state)
    if include_master or not ws:
        if not ws and workers is None:
            from perfkit.console import warn

            warn(f"pid {pid} has no worker processes: planning for the process itself")
        import psutil

        ct = psutil.Process(pid).create_time() if root in ("/", "") else None
        ws = [Assignment(pid=pid, cpus=[], current=allowed_cpus(pid, root), name="master", create_time=ct)] + ws
    if not ws:
        raise UsageError("nothing to plan")
    plan = make_plan(topo, usable, ws, strategy, master=pid, unit=unit)
    return topo, bud, plan


# ----------------------------------------------------------------------------- show


@app.command()
def show(
    pid: int = _PID,
    interval: float = typer.Option(1.0, "--interval", "-i", min=0.1, max=60, help="Seconds to measure CPU % and rates."),
    state: Optional[Path] = typer.Option(None, "--state", help="Saved-masks file of a previous apply."),
    as_json: bool = _JSON,
) -> None:
    """The process tree (master + workers): masks, last CPU, CPU %, context switches, threads — and what is wrong."""
    from perfkit.analysis.affinity_findings import Finding, findings
    from perfkit.collectors import topology, workers
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
    master = next((w for w in snap if w.role == "master"), None)
    unpinned_late = []
    for w in snap:
        entry = saved["processes"].get(str(w.pid))
        if entry and entry.get("applied") == topology.format_cpulist(w.allowed):
            w.status = "pinned"
        elif master is not None and w.allowed == master.allowed and w.role == "worker":
            w.status = "unpinned"
            if saved["processes"]:
                unpinned_late.append(w.pid)
        elif w.allowed == bud.usable:
            w.status = "unpinned"
        else:
            w.status = "restricted"
    found = findings(snap, topo, bud, delta)
    if unpinned_late:
        found.append(Finding("unpinned", f"worker(s) {', '.join(map(str, unpinned_late))} are not pinned "
                                         "(started after the last apply?): run perfkit affinity apply again"))
    doc = {"command": "affinity show", "pid": pid, "topology": topo.to_json(), "budget": bud.to_json(),
           "processes": [w.to_json() for w in snap], "throttling_delta": delta,
           "findings": [f.to_json() for f in found]}
    if as_json:
        print_json(doc)
        return
    from perfkit.render.affinity import findings_text, topology_lines, workers_table

    con = out_console()
    con.print(topology_lines(doc["topology"], doc["budget"]))
    con.print(workers_table(doc["processes"], f"pid {pid}: master and workers over {interval:g} s"))
    con.print(findings_text(doc["findings"]))


# ----------------------------------------------------------------------------- plan


@app.command()
def plan(
    pid: int = _PID,
    strategy: str = _STRATEGY,
    cpus: Optional[str] = typer.Option(None, "--cpus", help="Plan only on these CPUs (must be inside the allowed set)."),
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
        from perfkit.render.affinity import plan_equivalents, plan_table, topology_lines

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
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Show what would be done; change nothing."),
    all_or_nothing: bool = typer.Option(False, "--all-or-nothing", help="If any worker fails, undo the others."),
    state: Optional[Path] = typer.Option(None, "--state", help="Where to save the original masks "
                                                               "[default: ~/.local/state/perfkit/affinity/pid-N.json]."),
    as_json: bool = _JSON,
) -> None:
    """Pin workers with sched_setaffinity (all their threads); original masks are saved for reset."""
    from perfkit.errors import UsageError

    if assign or plan_file:
        if assign and plan_file:
            raise UsageError("give either --assign or --plan, not both")
        assignments, master = _explicit(assign, plan_file, pid, str(state) if state else None)
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
    from perfkit.render.affinity import plan_table

    out_console().print(plan_table({"strategy": "explicit", "usable": "", **doc["plan"]}))


def _explicit(assign, plan_file, pid, state=None):
    """Assignments from --assign PID=CPUS or a saved plan; each checked against its own mask."""
    import json

    from perfkit.analysis.affinity_plan import Assignment, check_inside
    from perfkit.collectors import topology
    from perfkit.errors import InputFormatError, UsageError

    out = []
    master = pid
    if plan_file is not None:
        try:
            doc = json.loads(Path(plan_file).read_text())
            master = master or doc.get("master")
            for a in doc["assignments"]:
                out.append(Assignment(pid=int(a["pid"]), cpus=_parse_cpus(a["cpus"]), current=None,
                                      name=a.get("name", ""), create_time=a.get("create_time")))
        except FileNotFoundError:
            raise UsageError(f"no such plan file: {plan_file}") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputFormatError(f"{plan_file} is not a perfkit affinity plan ({type(exc).__name__})",
                                   "create one with: perfkit affinity plan --pid N -o plan.json") from None
    for item in assign or []:
        left, sep, right = item.partition("=")
        if not sep or not left.strip().isdigit():
            raise UsageError(f"bad --assign {item!r}", "use PID=CPUS, e.g. --assign 4242=0-1")
        out.append(Assignment(pid=int(left), cpus=_parse_cpus(right)))
    if not out:
        raise UsageError("the plan has no assignments")
    topo = topology.read_topology()
    from perfkit.collectors.workers import create_time, load_state, state_path

    try:  # masks perfkit set itself are not "inherited": check against the saved originals
        saved = (load_state(state_path(int(master or out[0].pid), state)) or {}).get("processes", {})
    except Exception:
        saved = {}
    for a in out:
        mask = topology.allowed_cpus(a.pid)
        if mask is None:
            continue  # gone: reported by apply
        entry = saved.get(str(a.pid))
        ct = create_time(a.pid)
        if entry and ct is not None and abs(float(entry.get("create_time", 0)) - ct) < 0.05:
            mask = topology.parse_cpulist(entry["original"]) or mask
        a.current = mask
        bud = topology.budget(a.pid, "/", topo)
        # never outside the cgroup/online set, never wider than the worker's current mask
        check_inside(a.cpus, sorted(set(bud.usable) & set(mask)), f"pid {a.pid}")
    if master is None:
        master = out[0].pid
    return out, int(master)


def _do_apply(master, assignments, doc, state, all_or_nothing, as_json, strategy):
    from perfkit.collectors import workers
    from perfkit.console import message, out_console, print_json
    from perfkit.errors import PermissionDenied, TargetError

    path = workers.state_path(master, str(state) if state else None)
    res = workers.apply(assignments, master=master, state_file=path, all_or_nothing=all_or_nothing,
                        strategy=strategy)
    doc["result"] = res.to_json()
    if as_json:
        print_json(doc)
    else:
        from perfkit.render.affinity import plan_table

        out_console().print(plan_table({"strategy": strategy or "explicit", "usable": doc.get("budget", {})
                                        .get("usable", ""), **doc["plan"]}))
    applied = ", ".join(f"{a['pid']}→{a['cpus']}" for a in res.applied) or "none"
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
                    f"(undo: perfkit affinity reset --pid {master})")
        return
    if res.rolled_back:
        outcome = f"rolled back: nothing changed (the {len(res.applied)} already pinned were restored)"
    elif res.applied:
        outcome = (f"the rest were applied: {applied}; undo with perfkit affinity reset --pid {master}")
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
    from perfkit.collectors import workers
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
    from perfkit.analysis.affinity_advice import recommend as advise
    from perfkit.collectors.behaviour import measure
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
    from perfkit.render.affinity import recommendation_text

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
    layouts: str = typer.Option("unpinned,spread", "--layouts", "-l",
                                help="Comma list of unpinned, spread, compact (unpinned is always included)."),
    repeat: int = typer.Option(5, "--repeat", min=2, max=100, help="Measured runs per candidate (interleaved)."),
    warmup: int = typer.Option(1, "--warmup", min=0, max=10, help="Unmeasured rounds first."),
    env_var: str = typer.Option("PERFKIT_WORKERS", "--env-var", help="Also pass the worker count in this variable."),
    timeout: float = typer.Option(300.0, "--timeout", min=1, help="Seconds before one run is killed."),
    alpha: float = typer.Option(0.05, "--alpha", min=0.001, max=0.5, help="Significance level."),
    min_effect: float = typer.Option(0.03, "--min-effect", min=0.0, max=1.0,
                                     help="Differences smaller than this fraction are noise anyway."),
    as_json: bool = _JSON,
) -> None:
    """Run the workload under candidate worker counts and layouts; rank them with confidence intervals."""
    from perfkit.analysis.affinity_plan import STRATEGIES, cpu_order
    from perfkit.analysis.tune_stats import rank
    from perfkit.collectors import topology
    from perfkit.collectors.tune_runner import run_once
    from perfkit.console import live_status, message, out_console, print_json
    from perfkit.errors import TargetError, UsageError
    from perfkit.target import resolve

    target = resolve(None, command)
    topo = topology.read_topology()
    bud = topology.budget("self", "/", topo)
    whole = bud.whole
    counts = _int_list(workers, "--workers") if workers else sorted({max(1, whole // 2), whole, whole + 1})
    lays = ["unpinned"] + [x.strip() for x in layouts.split(",") if x.strip() and x.strip() != "unpinned"]
    for x in lays[1:]:
        if x not in STRATEGIES:
            raise UsageError(f"unknown layout {x!r}", "use unpinned, spread, compact")
    if not any("{workers}" in a for a in target.command):
        message(f"no {{workers}} in the command: the worker count is passed only as ${env_var}")
    orders = {x: cpu_order(topo, bud.usable, x) for x in lays[1:]}
    cands = [(n, lay) for n in counts for lay in dict.fromkeys(lays)]
    results: dict[str, list] = {f"{n} workers, {lay}": [] for n, lay in cands}
    failures: list[str] = []
    rounds = warmup + repeat
    prog = {"round": 0, "cand": ""}

    def line() -> str:
        return f"tune round {prog['round']}/{rounds} · {prog['cand']}"

    interrupted = False
    with live_status(line):
        try:
            for r in range(rounds):
                prog["round"] = r + 1
                k = r % len(cands)
                for n, lay in cands[k:] + cands[:k]:  # interleaved, rotated each round
                    name = f"{n} workers, {lay}"
                    prog["cand"] = name
                    res = run_once(target.command, n, lay, orders.get(lay, []), env_var=env_var, timeout=timeout)
                    if not res.ok:
                        failures.append(f"{name}: {res.error}")
                        continue
                    if r >= warmup:
                        results[name].append(res)
        except KeyboardInterrupt:  # rank what was measured, then exit 130
            interrupted = True
    runs = [x for v in results.values() for x in v]
    if not runs and interrupted:
        from perfkit.errors import Interrupted

        raise Interrupted("interrupted before any measured run")
    if not runs:
        raise TargetError(f"every run of the workload failed ({failures[0] if failures else 'no runs'})",
                          "run the command by hand to check it")
    use_tp = all(x.throughput is not None for x in runs)
    samples = {k: [(x.throughput if use_tp else x.wall_s) for x in v] for k, v in results.items()}
    meta = {f"{n} workers, {lay}": {"workers": n, "layout": lay,
                                     "pinned_processes": max((x.pinned for x in results[f"{n} workers, {lay}"]),
                                                             default=0)} for n, lay in cands}
    ranking = rank(samples, higher_is_better=use_tp, metric="throughput" if use_tp else "wall_s", meta=meta,
                   alpha=alpha, min_effect=min_effect,
                   unpinned={f"{n} workers, unpinned" for n in counts})
    doc = {"command": "affinity tune", "argv": target.command, "budget": bud.to_json(), "workers": counts,
           "layouts": lays, "repeat": repeat, "warmup": warmup, "failures": failures, "interrupted": interrupted,
           **ranking.to_json()}
    if as_json:
        print_json(doc)
        _tune_exit(interrupted)
        return
    from rich.text import Text

    from perfkit.render.affinity import ranking_table

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
