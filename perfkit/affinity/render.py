"""Terminal views for `perfkit affinity` (rich renderables; untrusted names as Text)."""

from __future__ import annotations

from perfkit.console import plain


def _table(title: str, *cols: str, right: tuple[str, ...] = ()):
    """A table that fits the terminal: numbers keep their width, text is ellipsized, never split."""
    from perfkit.render.fit import Col, FitTable

    return FitTable([Col(c, "right") if c in right else Col(c, flex=True, min_width=max(4, len(c)))
                     for c in cols], title=title)


def topology_lines(topo_json: dict, budget_json: dict):
    from rich.text import Text

    t = Text()
    t.append("CPUs: ", style="bold")
    t.append(f"{topo_json['logical_cpus']} logical online ({topo_json['online']}), "
             f"{topo_json['physical_cores']} physical cores, SMT {'on' if topo_json['smt'] else 'off'}, "
             f"{len(topo_json['numa_nodes'])} NUMA node(s), {len(topo_json['llc_groups'])} LLC group(s)")
    if topo_json["offline"]:
        t.append(f", offline {topo_json['offline']}")
    t.append("\n")
    t.append("Budget: ", style="bold")
    t.append(f"{budget_json['cpus']:g} CPUs — {budget_json['reason']}; usable CPUs {budget_json['usable']}")
    return t


def workers_table(workers: list[dict], title: str):
    from rich.text import Text

    t = _table(title, "pid", "role", "name", "allowed", "last CPU", "CPU %", "wait %", "ctx/s", "threads", "status",
               right=("pid", "last CPU", "CPU %", "wait %", "ctx/s", "threads"))
    for w in workers:
        t.add_row(str(w["pid"]), w["role"], Text(plain(w["name"])), w["allowed"],
                  "" if w["last_cpu"] is None else str(w["last_cpu"]), f"{w['cpu_percent']:.0f}",
                  f"{w['runq_wait_percent']:.0f}",
                  f"{w['ctx_per_s']:.0f}", str(w["threads"]), w.get("status", ""))
    return t


def findings_text(items: list[dict]):
    from rich.text import Text

    t = Text()
    if not items:
        t.append("no layout problems found", style="green")
        return t
    for i, f in enumerate(items):
        if i:
            t.append("\n")
        t.append(f"! {f['kind']}: ", style="yellow")
        t.append(f["message"])
    return t


def plan_table(plan: dict, names: dict[int, str] | None = None):
    from rich.text import Text

    t = _table(f"{plan['strategy']} plan, one {plan.get('unit', 'cpu')} per worker (usable CPUs {plan['usable']})",
               "worker pid", "name", "now", "planned CPUs",
               right=("worker pid",))
    for a in plan["assignments"]:
        t.add_row(str(a["pid"]) if a["pid"] > 0 else "-", Text(plain(a.get("name") or (names or {}).get(a["pid"], ""))),
                  a["current"] or "", a["cpus"])
    return t


def plan_equivalents(plan: dict):
    from rich.text import Text

    t = Text()
    t.append("equivalent commands:\n", style="bold")
    for line in plan["taskset"]:
        t.append(f"  {line}\n")
    t.append("systemd unit ([Service], applies to the whole service, not per worker):\n", style="bold")
    for line in plan["systemd"]:
        t.append(f"  {line}\n")
    if plan.get("gunicorn_post_fork"):
        t.append("gunicorn (keeps the layout for respawned workers):\n", style="bold")
        for line in plan["gunicorn_post_fork"].splitlines():
            t.append(f"  {line}\n")
    for n in plan["notes"]:
        t.append(f"note: {n}\n", style="yellow")
    return t


def recommendation_text(rec: dict, behaviour: dict):
    from rich.text import Text

    t = Text()
    t.append(rec["summary"] + "\n", style="bold")
    for r in rec["reasons"]:
        t.append(f"  · {r}\n")
    if rec.get("decided_text"):
        t.append(f"  {rec['decided_text']}\n", style="dim")
    window = behaviour.get("cpu_window_s")
    title = "measured (py-spy --nonblocking; CPUs from /proc" + (f" over {window:g} s)" if window else ")")
    tbl = _table(title, "pid", "threads", "GIL held", "idle", "running thr.", "CPUs",
                 right=("pid", "threads", "GIL held", "idle", "running thr.", "CPUs"))
    for p in behaviour["processes"]:
        tbl.add_row(str(p["pid"]), str(p["threads"]), f"{p['gil_share']:.0%}", f"{p['idle_share']:.0%}",
                    f"{p['active_threads']:.1f}", f"{p['cpu']:.2f}")
    return t, tbl


def ranking_table(ranking: dict):
    metric = ranking["metric"]
    t = _table(f"tune: {metric} ({'higher' if ranking['higher_is_better'] else 'lower'} is better), 95 % CI",
               "rank", "candidate", "mean", "95 % CI", "vs best", "diff 95 % CI", "p", "verdict",
               right=("rank", "mean", "vs best", "p"))
    for s in ranking["ranking"]:
        if s["rank"] == 1:
            verdict, vs, dci, p = "best", "", "", ""
        else:
            verdict = "within noise" if s["within_noise"] else "worse"
            vs = f"{s['diff_vs_best_pct']:+.1f} %"
            lo, hi = s["diff_ci95_pct"]
            dci = f"n/a ({s.get('diff_ci_note') or 'too few runs'})" if lo is None or hi is None else \
                f"{lo:+.1f} … {hi:+.1f} %"
            p = f"{s['p_value']:.3f}"
        ci = f"n/a ({s.get('ci_note') or 'too few runs'})" if None in s["ci95"] else \
            f"{s['ci95'][0]:.4g} … {s['ci95'][1]:.4g}"
        t.add_row(str(s["rank"]), s["name"], f"{s['mean']:.4g}", ci,
                  vs, dci, p, verdict)
    return t
