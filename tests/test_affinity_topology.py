"""Budget and plans on fake /sys + /proc trees (tests/fixtures/topologies/topologies.json)."""

from __future__ import annotations

import json

import pytest
from affinity_fakes import PID, build, load

from perfkit.affinity import topology
from perfkit.affinity.plan import Assignment, cpu_order, make_plan
from perfkit.affinity.topology import format_cpulist, parse_cpulist

SPECS = load()


@pytest.fixture(params=SPECS, ids=[s["name"] for s in SPECS])
def fake(request, tmp_path):
    spec = request.param
    return spec, str(build(spec, tmp_path))


def test_at_least_twelve_fixtures_cover_the_cases():
    names = {s["name"] for s in SPECS}
    assert len(names) >= 12
    modes = {s["cgroup"]["mode"] for s in SPECS}
    assert {"v1", "v2", "hybrid"} <= modes


def test_budget_and_reason(fake):
    spec, root = fake
    exp = spec["expect"]
    b = topology.budget(PID, root)
    assert b.cpus == pytest.approx(exp["budget"])
    assert b.whole == exp["whole"]
    assert b.reason == exp["reason"]
    assert format_cpulist(b.usable) == exp["usable"]
    if "throttled" in exp:  # counted where the quota bites
        assert b.limits.throttling["nr_throttled"] == exp["throttled"]
        assert b.limits.throttling["cgroup"] == exp.get("throttled_cgroup", b.limits.quota.cgroup)


def test_plans(fake):
    spec, root = fake
    topo = topology.read_topology(root)
    b = topology.budget(PID, root, topo)
    for strategy in ("spread", "compact"):
        for n, cpus in spec["expect"].get(strategy, {}).items():
            ws = [Assignment(pid=i + 1, cpus=[], current=b.mask) for i in range(int(n))]
            plan = make_plan(topo, b.usable, ws, strategy)
            assert [a.cpus[0] for a in plan.assignments] == cpus, (strategy, n)


def test_plans_never_leave_the_usable_set_and_use_cores_before_siblings(fake):
    spec, root = fake
    topo = topology.read_topology(root)
    b = topology.budget(PID, root, topo)
    usable = set(b.usable)
    for strategy in ("spread", "compact"):
        order = cpu_order(topo, b.usable, strategy)
        assert sorted(order) == sorted(usable)
        cores_seen, sibling_started = set(), False
        n_cores = len({topo.cpus[c].core_key for c in usable})
        for c in order:
            key = topo.cpus[c].core_key
            if key in cores_seen:
                sibling_started = True
            elif sibling_started:
                pytest.fail(f"{strategy}: a new core after a sibling in {order}")
            cores_seen.add(key)
        assert len(cores_seen) == n_cores
        ws = [Assignment(pid=i + 1, cpus=[], current=b.mask) for i in range(len(usable) + 2)]
        plan = make_plan(topo, b.usable, ws, strategy)
        assert all(set(a.cpus) <= usable for a in plan.assignments)


def test_topology_facts_numa_and_smt(tmp_path):
    spec = next(s for s in SPECS if s["name"] == "numa-2-nodes")
    topo = topology.read_topology(str(build(spec, tmp_path)))
    j = topo.to_json()
    assert j["physical_cores"] == 8 and j["logical_cpus"] == 16 and j["smt"] is True
    assert j["numa_nodes"] == {"0": "0-3,8-11", "1": "4-7,12-15"}
    assert j["llc_groups"] == ["0-3,8-11", "4-7,12-15"]


def test_offline_cpus_listed(tmp_path):
    spec = next(s for s in SPECS if s["name"] == "offline-cpus")
    topo = topology.read_topology(str(build(spec, tmp_path)))
    assert topo.offline == [6, 7] and topo.online == [0, 1, 2, 3, 4, 5]
    # the siblings of 2 and 3 are offline: those cores have one usable thread
    assert topo.cpus[2].siblings == (2,)


def test_plan_never_widens_an_inherited_mask(tmp_path):
    spec = next(s for s in SPECS if s["name"] == "v2-plain-smt")
    root = str(build(spec, tmp_path))
    topo = topology.read_topology(root)
    ws = [Assignment(pid=1, cpus=[], current=[0, 1, 2, 3, 4, 5, 6, 7]),
          Assignment(pid=2, cpus=[], current=[5, 6]),  # restricted by taskset before
          Assignment(pid=3, cpus=[], current=[0, 1, 2, 3, 4, 5, 6, 7])]
    plan = make_plan(topo, list(range(8)), ws, "spread")
    got = {a.pid: a.cpus for a in plan.assignments}
    assert got[2][0] in (5, 6)
    assert got == {1: [0], 2: [5], 3: [2]} or got[2][0] in (5, 6)
    assert any("never widened" in n for n in plan.notes)


def test_taskset_and_systemd_equivalents(tmp_path):
    spec = next(s for s in SPECS if s["name"] == "two-llc-groups")
    root = str(build(spec, tmp_path))
    topo = topology.read_topology(root)
    plan = make_plan(topo, list(range(8)), [Assignment(pid=100 + i, cpus=[]) for i in range(2)], "spread")
    assert plan.taskset_lines() == ["taskset -a -p -c 0 100", "taskset -a -p -c 4 101"]
    assert plan.systemd_lines() == ["CPUAffinity=0,4"]


@pytest.mark.parametrize("text,cpus", [("0-3,8,10-11", [0, 1, 2, 3, 8, 10, 11]), ("", []), ("5\n", [5]),
                                       ("0-6:2", [0, 2, 4, 6])])
def test_cpulist_round_trip(text, cpus):
    assert parse_cpulist(text) == cpus
    if cpus and ":" not in text:
        assert format_cpulist(cpus) == text.strip()


def test_cli_plan_on_a_fake_tree(tmp_path):
    from conftest import run_perfkit

    spec = next(s for s in SPECS if s["name"] == "numa-2-nodes")
    root = build(spec, tmp_path)
    res = run_perfkit("affinity", "plan", "--pid", PID, "--sysroot", root, "--workers", "4", "--json", check=True)
    doc = json.loads(res.stdout)
    assert [a["cpus"] for a in doc["plan"]["assignments"]] == ["0", "4", "1", "5"]
    assert doc["budget"]["cpus"] == 16
    res = run_perfkit("affinity", "plan", "--pid", PID, "--sysroot", root, "--workers", "2", "--cpus", "0-20")
    assert res.returncode == 2 and "outside the CPUs allowed" in res.stderr and "Traceback" not in res.stderr


def test_cli_plan_on_a_fake_container_shows_quota_reason(tmp_path):
    from conftest import run_perfkit

    spec = next(s for s in SPECS if s["name"] == "v2-nested-tighter-ancestor")
    root = build(spec, tmp_path)
    res = run_perfkit("affinity", "plan", "--pid", PID, "--sysroot", root, "--workers", "1", check=True)
    assert "quota 1.5 CPUs from /app.slice" in res.stdout


def test_cli_sysroot_needs_hypothetical_workers(tmp_path):
    from conftest import run_perfkit

    root = build(SPECS[0], tmp_path)
    res = run_perfkit("affinity", "plan", "--pid", PID, "--sysroot", root)
    assert res.returncode == 2 and "give --workers N" in res.stderr


@pytest.mark.parametrize("name,unit,n,want", [
    ("numa-2-nodes", "node", 3, ["0-3,8-11", "4-7,12-15", "0-3,8-11"]),
    ("numa-2-nodes", "core", 3, ["0,8", "4,12", "1,9"]),
    ("two-llc-groups", "llc", 2, ["0-3", "4-7"]),
    ("v2-plain-smt", "core", 2, ["0,4", "1,5"]),
    ("v2-cpuset-only", "core", 2, ["2,6", "3,7"]),
    ("taskset-only", "node", 2, ["1,3,5", "1,3,5"]),
])
def test_per_worker_units(tmp_path, name, unit, n, want):
    spec = next(s for s in SPECS if s["name"] == name)
    root = str(build(spec, tmp_path))
    topo = topology.read_topology(root)
    b = topology.budget(PID, root, topo)
    plan = make_plan(topo, b.usable, [Assignment(pid=i + 1, cpus=[], current=b.mask) for i in range(n)],
                     "spread", unit=unit)
    assert [format_cpulist(a.cpus) for a in plan.assignments] == want
    hook = plan.gunicorn_hook()
    ns: dict = {}
    exec(compile(hook, "gunicorn.conf.py", "exec"), ns)  # the hook is valid Python with the plan's CPUs
    assert [format_cpulist(g) for g in ns["PERFKIT_CPUS"]] == want


def test_per_worker_core_never_widens_a_single_cpu_mask(tmp_path):
    spec = next(s for s in SPECS if s["name"] == "v2-plain-smt")
    root = str(build(spec, tmp_path))
    topo = topology.read_topology(root)
    plan = make_plan(topo, list(range(8)), [Assignment(pid=7, cpus=[], current=[4])], "spread", unit="core")
    assert plan.assignments[0].cpus == [4]
