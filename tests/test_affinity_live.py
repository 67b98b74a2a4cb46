"""`perfkit affinity` against live scenario processes (pool, GIL-bound, IO-bound).

Truths (see each scenario's docstring): the pool's master only supervises and each
worker is CPU-bound; gil_server holds the GIL nearly all the time; io_server waits
~99 % of the time.  Tolerances are wide because the 2-core box is shared.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time

import pytest

from conftest import PY, ROOT, one_error, require_nobody, run_perfkit, scenario, scenario_cmd

pytestmark = pytest.mark.live


def cpus_allowed(pid: int) -> str:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Cpus_allowed_list:"):
                return line.split(":", 1)[1].strip()
    raise AssertionError("no Cpus_allowed_list")


def thread_masks(pid: int) -> set[str]:
    out = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            out |= {ln.split(":", 1)[1].strip() for ln in f if ln.startswith("Cpus_allowed_list:")}
    return out


def full_mask() -> str:
    from perfkit.affinity.topology import format_cpulist

    return format_cpulist(os.sched_getaffinity(0))


def wait_respawn(sc, old: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = sc.proc.stdout.readline()
        if line.startswith(f"respawned {old} "):
            return int(line.split()[2])
    raise AssertionError("the pool did not respawn the worker")


def test_show_pool_tree_and_budget():
    with scenario("worker_pool", "--workers", "2", "--duration", "30") as sc:
        workers = [int(x) for x in sc.ready_line.split()[1:]]
        doc = json.loads(run_perfkit("affinity", "show", "--pid", sc.pid, "--interval", "1", "--json",
                                     check=True).stdout)
    procs = {p["pid"]: p for p in doc["processes"]}
    assert set(procs) == {sc.pid, *workers}
    assert procs[sc.pid]["role"] == "master"
    # truth: the master only supervises, each worker always wants a whole CPU.  The box is
    # shared, so CPU % alone varies with load; on CPU + waiting on the run queue does not:
    # each worker ~100 % (>= 70 %), the master ~0 (< 20 %).
    demand = {pid: p["cpu_percent"] + p["runq_wait_percent"] for pid, p in procs.items()}
    assert all(demand[w] >= 70 for w in workers), demand
    assert demand[sc.pid] < 20, demand
    assert all(procs[w]["status"] == "unpinned" for w in workers)
    assert doc["budget"]["cpus"] == len(os.sched_getaffinity(0))
    assert doc["budget"]["usable"] == full_mask()


def test_show_flags_oversubscription():
    n = len(os.sched_getaffinity(0)) + 1
    with scenario("worker_pool", "--workers", n, "--duration", "30") as sc:
        doc = json.loads(run_perfkit("affinity", "show", "--pid", sc.pid, "--interval", "1", "--json",
                                     check=True).stdout)
    over = [f for f in doc["findings"] if f["kind"] == "oversubscribed"]
    assert over and over[0]["message"].startswith(f"{n} busy workers for a budget of {n - 1} CPUs")


def test_apply_pins_each_worker_reset_restores_and_late_worker_is_unpinned(tmp_path):
    state = tmp_path / "state.json"
    with scenario("worker_pool", "--workers", "2", "--duration", "40") as sc:
        workers = [int(x) for x in sc.ready_line.split()[1:]]
        plan = json.loads(run_perfkit("affinity", "plan", "--pid", sc.pid, "--json", check=True).stdout)["plan"]
        planned = {a["pid"]: a["cpus"] for a in plan["assignments"]}
        assert set(planned) == set(workers)
        allowed = sorted(os.sched_getaffinity(0))
        assert sorted(int(c) for c in planned.values()) == allowed[:2]  # one worker per core, distinct CPUs
        doc = json.loads(run_perfkit("affinity", "apply", "--pid", sc.pid, "--state", state, "--json",
                                     check=True).stdout)
        assert {a["pid"]: a["cpus"] for a in doc["result"]["applied"]} == planned
        for w in workers:
            assert cpus_allowed(w) == planned[w]
            assert thread_masks(w) == {planned[w]}  # every thread, like taskset -a
        assert cpus_allowed(sc.pid) == full_mask()  # master untouched
        assert stat.S_IMODE(state.stat().st_mode) == 0o600
        # a worker that dies is respawned by the master: the new one is not pinned
        os.kill(workers[1], signal.SIGKILL)
        late = wait_respawn(sc, workers[1])
        show = json.loads(run_perfkit("affinity", "show", "--pid", sc.pid, "--state", state, "--interval", "0.3",
                                      "--json", check=True).stdout)
        status = {p["pid"]: p["status"] for p in show["processes"]}
        assert status[workers[0]] == "pinned"
        assert status[late] == "unpinned"
        assert any(f["kind"] == "unpinned" and str(late) in f["message"] for f in show["findings"])
        res = json.loads(run_perfkit("affinity", "reset", "--state", state, "--json", check=True).stdout)
        assert [r["pid"] for r in res["restored"]] == [workers[0]]
        assert res["gone"] == [workers[1]]
        assert cpus_allowed(workers[0]) == full_mask()
        assert not state.exists()


def test_pid_gone_mid_apply_rest_applied_or_rolled_back(tmp_path):
    plan_file = tmp_path / "plan.json"
    with scenario("worker_pool", "--workers", "2", "--duration", "40") as sc:
        workers = sorted(int(x) for x in sc.ready_line.split()[1:])
        run_perfkit("affinity", "plan", "--pid", sc.pid, "-o", plan_file, check=True)
        assert stat.S_IMODE(plan_file.stat().st_mode) == 0o600
        os.kill(workers[1], signal.SIGKILL)  # gone between plan and apply
        wait_respawn(sc, workers[1])
        planned = {a["pid"]: a["cpus"] for a in json.loads(plan_file.read_text())["assignments"]}
        # all-or-nothing: the first worker was pinned, then rolled back
        res = run_perfkit("affinity", "apply", "--plan", plan_file, "--all-or-nothing", "--state",
                          tmp_path / "s1.json")
        assert res.returncode == 3, res.stderr
        assert f"pid {workers[1]} exited" in res.stderr and "rolled back" in res.stderr
        assert "Traceback" not in res.stderr
        assert cpus_allowed(workers[0]) == full_mask()
        # default: the rest is applied, and it says so
        res = run_perfkit("affinity", "apply", "--plan", plan_file, "--state", tmp_path / "s2.json")
        assert res.returncode == 3
        assert f"pid {workers[1]} exited" in res.stderr and "the rest were applied" in res.stderr
        assert cpus_allowed(workers[0]) == planned[workers[0]]
        run_perfkit("affinity", "reset", "--state", tmp_path / "s2.json", check=True)
        assert cpus_allowed(workers[0]) == full_mask()


def test_cpus_outside_the_allowed_set_are_refused(tmp_path):
    with scenario("worker_pool", "--workers", "1", "--duration", "30") as sc:
        w = int(sc.ready_line.split()[1])
        for args in (["apply", "--assign", f"{w}=7"], ["apply", "--pid", sc.pid, "--cpus", "0-9"],
                     ["plan", "--pid", sc.pid, "--cpus", "5"]):
            res = run_perfkit("affinity", *args, "--state", tmp_path / "s.json") if args[0] == "apply" else \
                run_perfkit("affinity", *args)
            assert res.returncode == 2, (args, res.stderr)
            assert "outside the CPUs allowed" in res.stderr and "Traceback" not in res.stderr
            assert len(res.stderr.strip().splitlines()) <= 2
        assert cpus_allowed(w) == full_mask()
        # a worker restricted before (taskset) is never widened
        os.sched_setaffinity(w, {0})
        res = run_perfkit("affinity", "apply", "--assign", f"{w}=0-1", "--state", tmp_path / "s.json")
        assert res.returncode == 2 and "outside the CPUs allowed" in res.stderr
        assert cpus_allowed(w) == "0"


def test_eperm_as_nobody_against_a_root_process(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to start a process nobody may not touch")
    with scenario("worker_pool", "--workers", "1", "--duration", "30") as sc:
        w = int(sc.ready_line.split()[1])
        env = {k: v for k, v in os.environ.items() if k != "RUST_BACKTRACE"}
        env.update(NO_COLOR="1", PERFKIT_STATE_DIR="/nonexistent/perfkit-state")
        res = subprocess.run([*require_nobody(), PY, "-m", "perfkit",
                              "affinity", "apply", "--assign", f"{w}=0"], capture_output=True, text=True,
                             timeout=60, cwd=ROOT, env=env)
        assert res.returncode == 3, res.stderr
        assert "permission denied (EPERM)" in res.stderr and "Traceback" not in res.stderr
        assert cpus_allowed(w) == full_mask()


def test_bad_targets():
    res = run_perfkit("affinity", "show", "--pid", "999999999")
    assert res.returncode == 3 and "no such process" in res.stderr
    res = run_perfkit("affinity", "reset", "--state", "/nonexistent/state.json")
    assert res.returncode == 2 and "nothing to reset" in res.stderr
    res = run_perfkit("affinity", "apply", "--assign", "12=abc")
    assert res.returncode == 2 and "bad CPU list" in res.stderr
    res = run_perfkit("affinity", "tune", "--layouts", "diagonal", "--", PY, "-c", "pass")
    assert res.returncode == 2 and "unknown layout" in res.stderr


@pytest.mark.parametrize("name,kind", [("gil_server", "gil-bound"), ("io_server", "waiting")])
def test_recommend_tells_gil_bound_from_io_bound(name, kind):
    with scenario(name, "--duration", "30") as sc:
        doc = json.loads(run_perfkit("affinity", "recommend", "--pid", sc.pid, "--duration", "1.5", "--json",
                                     check=True).stdout)
    rec = doc["recommendation"]
    assert rec["kind"] == kind, doc
    p = doc["behaviour"]["processes"][0]
    if kind == "gil-bound":
        assert p["gil_share"] >= 0.35 and rec["processes"] == doc["budget"]["whole_cpus"]
        assert "processes" in rec["summary"]
    else:
        assert p["gil_share"] < 0.2 and p["cpu"] < 0.5 and rec["threads_per_process"] >= 2
        assert "threads/async" in rec["summary"]


def test_tune_ranks_pool_candidates_and_judges_noise():
    cmd = scenario_cmd("worker_pool", "--workers", "{workers}", "--duration", "0.4", "--item", "5000")
    doc = json.loads(run_perfkit("affinity", "tune", "--workers", "1,2", "--layouts", "spread", "--repeat", "3",
                                 "--warmup", "1", "--json", "--", *cmd, check=True, timeout=180).stdout)
    assert doc["metric"] == "throughput" and doc["higher_is_better"]
    names = [s["name"] for s in doc["ranking"]]
    assert sorted(names) == sorted(["1 workers, unpinned", "1 workers, spread", "2 workers, unpinned",
                                    "2 workers, spread"])
    # an interval reaching 0 (3 runs on a loaded box) is withheld with its reason, never printed
    assert all(s["n"] == 3 and (s["ci95"][0] <= s["mean"] <= s["ci95"][1] if None not in s["ci95"]
                                else s["ci95"] == [None, None] and s["ci_note"]) for s in doc["ranking"])
    assert [s["rank"] for s in doc["ranking"]] == [1, 2, 3, 4]
    pinned = {s["name"]: s["pinned_processes"] for s in doc["ranking"]}
    assert pinned["2 workers, spread"] == 2 and pinned["2 workers, unpinned"] == 0
    assert doc["recommended"] in names and doc["verdict"]
    # it says when differences are within noise (on 2 shared cores, most are)
    if any(s["within_noise"] for s in doc["ranking"][1:]):
        assert "within noise" in doc["verdict"]
    if doc["all_within_noise"]:
        assert "every candidate is within noise of the best" in doc["verdict"]
    # if the recommendation is pinned, it must be beyond noise versus every unpinned candidate
    rec = next(s for s in doc["ranking"] if s["name"] == doc["recommended"])
    if rec["layout"] != "unpinned":
        assert all(not s["within_noise"] for s in doc["ranking"] if s["layout"] == "unpinned")


def test_tune_wall_time_when_no_throughput_line_and_failing_workload():
    doc = json.loads(run_perfkit("affinity", "tune", "--workers", "1", "--repeat", "3", "--warmup", "0", "--json",
                                 "--", PY, "-c", "import time; time.sleep(0.05)", check=True).stdout)
    assert doc["metric"] == "wall_s" and not doc["higher_is_better"]
    assert all(0.04 < v < 5 for s in doc["ranking"] for v in s["values"])
    # an interval is either sound (positive wall time) or flagged, never impossible
    for s in doc["ranking"]:
        assert (s["ci95"][0] is None and s["ci_note"]) or s["ci95"][0] > 0, s
    res = run_perfkit("affinity", "tune", "--workers", "1", "--repeat", "3", "--warmup", "0", "--",
                      PY, "-c", "import sys; sys.exit('boom')")
    assert res.returncode == 3 and "every run of the workload failed" in res.stderr and "boom" in res.stderr


def test_tune_refuses_fewer_repeats_than_an_interval_needs():
    res = run_perfkit("affinity", "tune", "--workers", "1", "--repeat", "2", "--", PY, "-c", "pass")
    one_error(res, 2, "--repeat 2 is too few", "--repeat 3")


MARKUP_CHILD = r"""
import os, sys, time
with open('/proc/self/comm', 'w') as f:
    f.write('[red]x\x1b[2J')
pid = os.fork()
if pid == 0:
    time.sleep(30); os._exit(0)
print('ready', pid, flush=True)
time.sleep(30)
"""


def test_show_escapes_untrusted_process_names_and_dry_run_changes_nothing():
    proc = subprocess.Popen([PY, "-c", MARKUP_CHILD], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        line = proc.stdout.readline()
        child = int(line.split()[1])
        res = run_perfkit("affinity", "show", "--pid", proc.pid, "--interval", "0.2", check=True)
        assert "[red]x\\x1b[2J" in res.stdout  # shown literally, control char escaped
        assert "\x1b[2J" not in res.stdout
        res = run_perfkit("affinity", "apply", "--pid", proc.pid, "--dry-run", check=True)
        assert "taskset -a -p -c 0" in res.stdout
        assert cpus_allowed(child) == full_mask()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_tune_ctrl_c_ranks_what_was_measured_and_leaves_no_workload_behind():
    cmd = scenario_cmd("worker_pool", "--workers", "{workers}", "--duration", "0.4", "--item", "5000")
    env = dict(os.environ, NO_COLOR="1")
    proc = subprocess.Popen([PY, "-m", "perfkit", "affinity", "tune", "-w", "1", "--repeat", "20", "--warmup", "0",
                             "--json", "--", *cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, env=env)
    time.sleep(4.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    doc = json.loads(out)
    assert doc["interrupted"] and all(1 <= s["n"] < 20 for s in doc["ranking"])
    assert "Traceback" not in err
    time.sleep(0.3)
    left = subprocess.run(["pgrep", "-f", "worker_pool.py --workers 1 --duration 0.4 --item 5000"],
                          capture_output=True, text=True).stdout.split()
    assert left == []


def test_reapply_with_another_layout_plans_from_the_saved_original(tmp_path):
    state = tmp_path / "state.json"
    with scenario("worker_pool", "--workers", "2", "--duration", "30") as sc:
        workers = [int(x) for x in sc.ready_line.split()[1:]]
        run_perfkit("affinity", "apply", "--pid", sc.pid, "--state", state, check=True)
        assert all(len(cpus_allowed(w).split(",")) == 1 and "-" not in cpus_allowed(w) for w in workers)
        # perfkit's own pinning is not an inherited mask: a new layout may use whole nodes again
        run_perfkit("affinity", "apply", "--pid", sc.pid, "--state", state, "--per-worker", "node", check=True)
        from perfkit.affinity.topology import format_cpulist, read_topology

        nodes = {format_cpulist(v) for v in read_topology().nodes().values()}
        assert all(cpus_allowed(w) in nodes for w in workers)
        run_perfkit("affinity", "apply", "--assign", f"{workers[0]}=1", "--pid", sc.pid, "--state", state,
                    check=True)
        assert cpus_allowed(workers[0]) == "1"
        saved = json.loads(state.read_text())["processes"]
        assert all(saved[str(w)]["original"] == full_mask() for w in workers)
        run_perfkit("affinity", "reset", "--pid", sc.pid, "--state", state, check=True)
        assert all(cpus_allowed(w) == full_mask() for w in workers)


def _v1_cpu_root() -> str | None:
    """The host's cgroup v1 cpu hierarchy if this test may create cgroups there (root)."""
    from perfkit.affinity.topology import read_mounts

    if os.geteuid() != 0:
        return None
    for m in read_mounts("self"):
        if m.fstype == "cgroup" and "cpu" in m.controllers and m.root == "/":
            return m.mountpoint if os.access(m.mountpoint, os.W_OK) else None
    return None


def test_live_nested_cgroup_quota_budget_throttling_and_oversubscription():
    """A real v1 parent with a 0.5 CPU quota over the process's own cgroup without one (v1
    refuses a child quota above its parent's): the budget is the ancestor's."""
    base = _v1_cpu_root()
    if base is None:
        pytest.skip("needs root and a writable cgroup v1 cpu hierarchy")
    outer = os.path.join(base, f"perfkit-test-{os.getpid()}")
    inner = os.path.join(outer, "inner")
    os.makedirs(inner)
    try:
        for d, quota in ((outer, 50000), (inner, -1)):
            with open(os.path.join(d, "cpu.cfs_period_us"), "w") as f:
                f.write("100000")
            with open(os.path.join(d, "cpu.cfs_quota_us"), "w") as f:
                f.write(str(quota))
        # a group competes as one entity: a high weight lets it reach its (0.5 CPU) quota
        # on a busy shared box, so the quota — not the other load — is what throttles it
        with open(os.path.join(outer, "cpu.shares"), "w") as f:
            f.write("20480")

        def enter():
            with open(os.path.join(inner, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))

        with scenario("worker_pool", "--workers", "2", "--duration", "30", preexec_fn=enter) as sc:
            time.sleep(0.5)
            doc = json.loads(run_perfkit("affinity", "show", "--pid", sc.pid, "--interval", "1", "--json",
                                         check=True).stdout)
            rec = run_perfkit("affinity", "plan", "--pid", sc.pid, check=True).stdout
        name = "/" + os.path.basename(outer)
        assert doc["budget"]["cpus"] == 0.5 and doc["budget"]["whole_cpus"] == 1
        assert doc["budget"]["reason"] == f"quota 0.5 CPUs from {name} (cgroup v1)"
        kinds = {f["kind"]: f["message"] for f in doc["findings"]}
        assert kinds["oversubscribed"].startswith("2 busy workers for a budget of 0.5 CPUs")
        delta = doc["throttling_delta"]
        assert delta["cgroup"] == name and delta["nr_periods"] > 0  # read where the quota bites
        assert delta["nr_throttled"] > 0 and name in kinds["throttled"]
        # truth: together the workers get at most the quota, 0.5 CPU (+ scheduling slack)
        workers_cpu = sum(p["cpu_percent"] for p in doc["processes"] if p["role"] == "worker")
        assert workers_cpu <= 65
        assert f"quota 0.5 CPUs from {name}" in rec
    finally:
        for d in (inner, outer):
            for _ in range(50):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)
