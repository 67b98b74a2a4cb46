"""`perfkit threads` against live scenarios with known thread states."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import one_error as _one_line_error
from conftest import perfkit_json, run_perfkit, scenario

pytestmark = pytest.mark.live



@pytest.fixture(scope="module")
def deadlock():
    with scenario("deadlock", "--idle-workers", "6", "--duration", "60") as sc:
        # ready locker-1=take_a_then_b:<line> locker-2=take_b_then_a:<line>
        fields = dict(part.split("=") for part in sc.ready_line.split()[1:])
        sc.truth = {name: (where.split(":")[0], int(where.split(":")[1])) for name, where in fields.items()}
        yield sc


def test_deadlocked_threads_show_their_lock_lines_and_idle_workers_are_one_group(deadlock):
    doc = perfkit_json("threads", "--pid", str(deadlock.pid), "--interval", "0.2")
    by_name = {t["name"]: t for t in doc["threads"]}
    for name, (function, line) in deadlock.truth.items():
        leaf = by_name[name]["frames"][0]
        assert (leaf["function"], leaf["line"]) == (function, line), by_name[name]["frames"]
        assert leaf["file"].endswith("scenarios/deadlock.py")
        assert by_name[name]["state"] == "idle" and by_name[name]["cpu_pct"] < 20
    workers = [g for g in doc["groups"] if g["app_frame"] and g["app_frame"]["function"] == "idle_worker"]
    assert len(workers) == 1, [g["summary"] for g in doc["groups"]]
    assert workers[0]["count"] == 6
    assert sorted(t["name"] for t in workers[0]["threads"]) == [f"idle-worker-{i}" for i in range(6)]
    assert doc["groups"][0] is not None and doc["groups"][0]["count"] == 6  # largest group first
    assert doc["thread_count"] == 9  # main + 2 lockers + 6 workers
    assert doc["gil_holders"] == []


def test_human_view_groups_like_a_goroutine_dump(deadlock):
    res = run_perfkit("threads", "--pid", str(deadlock.pid), "--interval", "0.2", check=True)
    out = res.stdout
    assert "6 threads in Condition.wait (<stdlib>/threading.py:" in out  # the one path style
    assert "from idle_worker (scenarios/deadlock.py:" in out
    line1 = deadlock.truth["locker-1"][1]
    assert f"1 thread in take_a_then_b (scenarios/deadlock.py:{line1})" in out
    assert "9 threads" in out and "GIL held by nobody" in out


def test_locals_are_opt_in(deadlock):
    plain = perfkit_json("threads", "--pid", str(deadlock.pid), "--interval", "0.1")
    assert not any("locals" in f for t in plain["threads"] for f in t["frames"])
    doc = perfkit_json("threads", "--pid", str(deadlock.pid), "--interval", "0.1", "--locals")
    worker = next(t for t in doc["threads"] if t["name"] == "idle-worker-0")
    frame = next(f for f in worker["frames"] if f["function"] == "idle_worker")
    assert any(v["name"] == "q" for v in frame.get("locals", [])), frame


def test_watch_reports_the_thread_count_trend(deadlock):
    doc = perfkit_json("threads", "--pid", str(deadlock.pid), "--interval", "0.2", "--watch", "--count", "2")
    assert doc["trend"] == [9, 9]
    assert len(doc["snapshots"]) == 2


def test_per_thread_cpu_follows_the_known_split():
    with scenario("cpu_threads", "--ratio", "75:25", "--duration", "30") as sc:
        doc = perfkit_json("threads", "--pid", str(sc.pid), "--interval", "2")
    by_name = {t["name"]: t for t in doc["threads"]}
    a, b = by_name["worker-a"]["cpu_pct"], by_name["worker-b"]["cpu_pct"]
    assert a > b > 0
    assert a + b <= 110  # they take turns: at most one core between them
    assert a / (a + b) == pytest.approx(0.75, abs=0.2)  # wall-clock slices: loose on a loaded machine


def test_all_processes_dumps_every_child():
    with scenario("cpu_workers", "--duty", "0.2,0.2", "--duration", "30") as sc:
        kids = [int(p) for p in sc.ready_line.split()[1:]]
        doc = perfkit_json("threads", "--pid", str(sc.pid), "--all-processes", "--interval", "0.3")
        single = perfkit_json("threads", "--pid", str(sc.pid), "--interval", "0.1")
    pids = {p["pid"] for p in doc["processes"]}
    assert pids == {sc.pid, *kids}
    assert all(p["error"] is None and p["threads"] >= 1 for p in doc["processes"])
    for kid in kids:
        stacks = [t for t in doc["threads"] if t["pid"] == kid]
        assert any(f["function"] == "worker_loop" for t in stacks for f in t["frames"])
    assert {p["pid"] for p in single["processes"]} == {sc.pid}


def test_bad_input():
    res = run_perfkit("threads", "--pid", "999999999")
    assert res.returncode == 3 and "no such process" in _one_line_error(res)
    res = run_perfkit("threads", "--pid", "1", "--count", "2")
    assert res.returncode == 2
    for bad in ("-1", "x"):
        res = run_perfkit("threads", "--pid", "1", "--rows", bad)
        assert res.returncode == 2 and "Invalid value for '--rows'" in _one_line_error(res)
    proc = subprocess.Popen(["sleep", "30"])
    try:
        res = run_perfkit("threads", "--pid", str(proc.pid))
        assert res.returncode == 3 and "not a Python process" in _one_line_error(res)
    finally:
        proc.kill()
        proc.wait()


def test_json_is_one_document(deadlock):
    res = run_perfkit("threads", "--pid", str(deadlock.pid), "--interval", "0.1", "--json", check=True)
    json.loads(res.stdout)


def test_watch_ends_cleanly_when_the_process_exits():
    with scenario("idle", "--duration", "2") as sc:
        res = run_perfkit("threads", "--pid", str(sc.pid), "--watch", "--interval", "0.3", "--json", timeout=60)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["trend"] and all(n == 1 for n in doc["trend"])
    assert f"pid {sc.pid} exited" in res.stderr


def test_many_threads_one_group_and_the_dump_pause_left_out_of_the_cpu_window():
    from perfkit.threads.snapshot import _PauseClock
    from perfkit.tools import pyspy

    with scenario("many_threads", "--threads", "200", "--busy", "1", "--duration", "60") as sc:
        doc = perfkit_json("threads", "--pid", str(sc.pid), "--interval", "0.2")
        table = run_perfkit("threads", "--pid", str(sc.pid), check=True).stdout
        every = run_perfkit("threads", "--pid", str(sc.pid), "--rows", "0", check=True).stdout
        # a blocking dump ptrace-stops the target (state t) for its stack walk; a non-blocking one never does
        clock = _PauseClock([sc.pid])
        pyspy.dump(sc.pid, nonblocking=False)
        blocking = clock.stop()[sc.pid]
        clock = _PauseClock([sc.pid])
        pyspy.dump(sc.pid, nonblocking=True)
        nonblocking = clock.stop()[sc.pid]
    assert doc["thread_count"] == 201
    top = doc["groups"][0]
    assert top["count"] == 199 and "threading.py" in top["where"]
    assert any(f["function"] == "parked_worker" for f in top["frames"])
    assert blocking > 0
    assert nonblocking == 0
    # the table lists 40 threads, busiest first, and folds the idle rest into one line
    rows = [ln for ln in table.splitlines() if ln.startswith(f"{sc.pid} ")]
    assert len(rows) == 40 and "busy_worker" in rows[0]
    assert "… 161 more idle threads" in table and "--rows 0 lists every thread" in table
    assert "199 threads in Condition.wait" in table
    assert len([ln for ln in every.splitlines() if ln.startswith(f"{sc.pid} ")]) == 201
    assert "more idle thread" not in every
