"""Pure parts of `perfkit affinity`: tune statistics, advice rules, layout findings."""

from __future__ import annotations

import pytest
from affinity_fakes import PID, build, load

from perfkit.affinity import topology
from perfkit.affinity.advice import recommend
from perfkit.affinity.behaviour import Behaviour, ProcessBehaviour
from perfkit.affinity.findings import findings
from perfkit.affinity.tune_stats import rank, summarize
from perfkit.affinity.tuning import parse_throughput, substitute
from perfkit.affinity.workers import WorkerInfo

SPECS = {s["name"]: s for s in load()}


# ----------------------------------------------------------------------------- tune statistics

def test_ci_contains_mean_and_matches_t_table():
    s = summarize("x", [10.0, 12.0, 11.0, 13.0, 9.0])
    assert s.mean == pytest.approx(11.0)
    assert s.sd == pytest.approx(1.5811, abs=1e-3)
    # t(0.975, 4) = 2.776: half-width 2.776 * 1.5811 / sqrt(5) = 1.963
    assert s.ci_high - s.mean == pytest.approx(1.963, abs=2e-3)


def test_clear_winner_is_beyond_noise_and_recommended_even_if_pinned():
    r = rank({"2 workers, unpinned": [100, 101, 99, 100, 100], "2 workers, spread": [130, 131, 129, 130, 131]},
             unpinned={"2 workers, unpinned"})
    assert r.recommended.name == "2 workers, spread"
    loser = r.stats[1]
    assert not loser.within_noise and loser.diff_pct == pytest.approx(-23.2, abs=0.5)
    assert loser.diff_ci_pct[0] < loser.diff_pct < loser.diff_ci_pct[1] < 0
    assert "beyond noise" in r.verdict


def test_within_noise_recommends_unpinned():
    a = [100.0, 105.0, 95.0, 102.0, 98.0]  # unpinned
    b = [103.0, 97.0, 108.0, 99.0, 104.0]  # pinned: +2 % on average, well inside the spread
    r = rank({"2 workers, spread": b, "2 workers, unpinned": a}, unpinned={"2 workers, unpinned"})
    assert r.stats[0].name == "2 workers, spread" and r.all_within_noise
    assert r.recommended.name == "2 workers, unpinned"
    assert "stay unpinned" in r.verdict


def test_tiny_but_significant_difference_is_still_noise_below_min_effect():
    r = rank({"a": [100.0, 100.1, 100.0, 100.1], "b": [101.0, 101.1, 101.0, 101.1]}, min_effect=0.03)
    assert r.stats[1].p_value < 0.01 and r.stats[1].within_noise


def test_wall_time_lower_is_better():
    r = rank({"fast": [1.0, 1.1, 1.0], "slow": [2.0, 2.1, 2.0]}, higher_is_better=False, metric="wall_s")
    assert r.stats[0].name == "fast" and r.stats[1].diff_pct < -50


def test_throughput_line_parsing_and_placeholder():
    assert parse_throughput("ready\nitems=3\nthroughput=12.5\n") == 12.5
    assert parse_throughput("throughput: 3e2 req/s") == 300.0
    assert parse_throughput("nothing here") is None
    assert substitute(["app", "--workers={workers}", "-w", "{workers}"], 3) == ["app", "--workers=3", "-w", "3"]


# ----------------------------------------------------------------------------- advice

def beh(*procs):
    return Behaviour([ProcessBehaviour(*p) for p in procs], 3.0, 100)


def test_gil_bound_threads_mean_processes_equal_to_budget():
    rec = recommend(3.0, "quota 3 CPUs from /kubepods", beh((1, 8, 0.97, 0.05, 5.5, 1.0)))
    assert rec.kind == "gil-bound" and rec.processes == 3 and rec.threads == 1
    assert "processes, N = 3" in rec.summary
    assert any("want to run but only the GIL holder can" in r for r in rec.reasons)


def test_fractional_budget_rounds_down_but_never_to_zero():
    assert recommend(1.5, "quota", beh((1, 1, 0.99, 0.0, 1.0, 1.0))).processes == 1
    assert recommend(0.5, "quota", beh((1, 1, 0.99, 0.0, 1.0, 0.5))).processes == 1


def test_waiting_means_threads():
    rec = recommend(2.0, "2 online CPUs", beh((1, 9, 0.01, 0.98, 0.1, 0.05)))
    assert rec.kind == "waiting" and rec.threads >= 16
    assert "threads/async are fine" in rec.summary


def test_mixed():
    assert recommend(4.0, "r", beh((1, 4, 0.2, 0.5, 1.0, 0.6))).kind == "mixed"


def test_pool_oversubscribed_reason():
    rec = recommend(2.0, "r", beh(*[(i, 1, 0.95, 0.02, 1.0, 0.66) for i in range(3)]))
    assert rec.kind == "gil-bound" and any("oversubscribed" in r for r in rec.reasons)


# ----------------------------------------------------------------------------- findings

def worker(pid, allowed, last, cpu, role="worker"):
    return WorkerInfo(pid, 1, "python", [], role, allowed, last, cpu, 0, 0, 0.0, 1, 0.0)


def fake(name, tmp_path):
    root = str(build(SPECS[name], tmp_path))
    topo = topology.read_topology(root)
    return topo, topology.budget(PID, root, topo)


def test_oversubscription_against_a_quota(tmp_path):
    topo, bud = fake("v1-docker-quota", tmp_path)  # 8 CPUs but quota 2
    ws = [worker(1, list(range(8)), None, 1.0, "master")] + [worker(i, list(range(8)), i, 90.0) for i in range(2, 6)]
    kinds = {f.kind: f.message for f in findings(ws, topo, bud)}
    assert "oversubscribed" in kinds and "4 busy workers for a budget of 2 CPUs" in kinds["oversubscribed"]
    assert "quota 2 CPUs from /docker/abc" in kinds["oversubscribed"]


def test_smt_siblings_shared_while_cores_idle(tmp_path):
    topo, bud = fake("v2-plain-smt", tmp_path)  # siblings (0,4) (1,5) ...
    ws = [worker(2, [0], 0, 95.0), worker(3, [4], 4, 95.0)]
    fs = findings(ws, topo, bud)
    assert [f.kind for f in fs] == ["smt-shared"] and "2, 3" in fs[0].message
    assert findings([worker(2, [0], 0, 95.0), worker(3, [1], 1, 95.0)], topo, bud) == []


def test_cross_numa_and_throttling(tmp_path):
    topo, bud = fake("numa-2-nodes", tmp_path)
    fs = findings([worker(2, list(range(16)), 3, 10.0), worker(3, [4], 4, 10.0)], topo, bud,
                  {"nr_periods": 50, "nr_throttled": 12, "throttled_s": 0.4, "cgroup": "/app"})
    kinds = [f.kind for f in fs]
    assert kinds.count("cross-numa") == 1 and "worker 2" in fs[0].message
    assert "throttled" in kinds


# ----------------------------------------------------------------------------- rendering

def render(renderable) -> str:
    from rich.console import Console

    con = Console(width=160, record=True, no_color=True, file=open("/dev/null", "w"))
    con.print(renderable)
    return con.export_text()


def test_ranking_table_says_within_noise_and_best():
    from perfkit.affinity.render import ranking_table

    r = rank({"2 workers, spread": [103.0, 97.0, 108.0, 99.0, 104.0],
              "2 workers, unpinned": [100.0, 105.0, 95.0, 102.0, 98.0],
              "1 workers, unpinned": [50.0, 51.0, 49.0, 50.0, 50.5]}, unpinned={"2 workers, unpinned", "1 workers, "
                                                                                                       "unpinned"})
    text = render(ranking_table(r.to_json()))
    names = ("2 workers, spread", "2 workers, unpinned", "1 workers, unpinned")
    lines = {n: ln for ln in text.splitlines() for n in names if f"  {n}  " in ln}
    assert "best" in lines["2 workers, spread"]
    assert "within noise" in lines["2 workers, unpinned"]
    assert "worse" in lines["1 workers, unpinned"] and "-51.0 %" in lines["1 workers, unpinned"]
    assert r.recommended.name == "2 workers, unpinned"


def test_plan_and_workers_views_escape_untrusted_names():
    from perfkit.affinity.render import plan_table, workers_table

    evil = "[bold]x[/bold]\x1b]0;pwn\x07"
    w = worker(5, [0], 0, 10.0).to_json()
    w["name"] = evil
    text = render(workers_table([w], "t"))
    assert "[bold]x[/bold]\\x1b]0;pwn\\x07" in text
    plan = {"strategy": "spread", "unit": "cpu", "usable": "0-1",
            "assignments": [{"pid": 5, "cpus": "0", "current": "0-1", "name": evil}]}
    assert "[bold]x[/bold]" in render(plan_table(plan))


# ----------------------------------------------------------------------------- plan properties

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from perfkit.affinity.plan import Assignment, cpu_order, make_plan  # noqa: E402
from perfkit.affinity.topology import Cpu, Topology  # noqa: E402


@st.composite
def topologies(draw):
    packages = draw(st.integers(1, 2))
    cores = draw(st.integers(1, 6))
    smt = draw(st.integers(1, 2))
    llcs = draw(st.sampled_from([1, 2])) if cores % 2 == 0 else 1
    split = draw(st.booleans())
    cpus = {}
    for p in range(packages):
        for c in range(cores):
            ids = [(t * packages * cores + p * cores + c) if split else ((p * cores + c) * smt + t) for t in range(smt)]
            for cid in ids:
                cpus[cid] = Cpu(cid, p, c, p, p * 100 + c // (cores // llcs), tuple(sorted(ids)))
    online = sorted(cpus)
    usable = draw(st.lists(st.sampled_from(online), min_size=1, unique=True))
    masks = draw(st.lists(st.one_of(st.none(), st.lists(st.sampled_from(online), min_size=1, unique=True)),
                          min_size=1, max_size=12))
    return Topology(cpus=cpus), sorted(usable), masks


@settings(max_examples=150, deadline=None)
@given(topologies(), st.sampled_from(["spread", "compact"]), st.sampled_from(["cpu", "core", "llc", "node"]))
def test_plan_properties(case, strategy, unit):
    topo, usable, masks = case
    order = cpu_order(topo, usable, strategy)
    assert sorted(order) == usable
    # physical cores first: no new core appears after a second thread of a core
    seen, second = set(), False
    for c in order:
        k = topo.cpus[c].core_key
        if k in seen:
            second = True
        else:
            assert not second
            seen.add(k)
    ws = [Assignment(pid=i + 1, cpus=[], current=m) for i, m in enumerate(masks)]
    plan = make_plan(topo, usable, ws, strategy, unit=unit)
    got = {a.pid: a.cpus for a in plan.assignments}
    for w in ws:
        allowed = set(usable) & (set(w.current) if w.current is not None else set(usable))
        if not allowed:
            assert w.pid not in got  # nothing usable inside its mask: left alone, with a note
            continue
        cpus = set(got[w.pid])
        assert cpus and cpus <= allowed  # never outside the usable set, never wider than its mask
    if unit == "cpu" and all(m is None for m in masks):
        use = [sum(1 for a in plan.assignments if a.cpus == [c]) for c in order]
        assert max(use) - min(use) <= 1  # balanced
        assert use == sorted(use, reverse=True)  # and in preference order


def test_single_run_candidates_give_valid_json_and_render():
    import json as _json

    from perfkit.affinity.render import ranking_table

    r = rank({"a": [10.0], "b": [9.0, 9.5]})
    doc = r.to_json()
    _json.loads(_json.dumps(doc, allow_nan=False))  # no NaN/Infinity in the document
    text = render(ranking_table(doc))
    assert "n/a" in text
