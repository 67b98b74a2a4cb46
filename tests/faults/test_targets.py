"""Fault matrix, part 3: targets that are not simply running — stopped, blocked, exec'ing
into another program, zombies, kernel threads, gone.  Each is named for what it is,
readers read it without resuming it, recorders keep what they got."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from harness import PY, ROOT, assert_no_helpers, assert_no_temp, assert_unharmed, free_pid, one_error, pk, target  # noqa: F401

from perfkit.procs import proc

pytestmark = pytest.mark.live


@pytest.fixture
def stopped(target):
    t = target("mem_selfcheck", "--duration", 120)
    os.kill(t.pid, signal.SIGSTOP)
    for _ in range(100):
        if proc.state(t.pid) == "T":
            break
        time.sleep(0.02)
    t.state0 = "T"
    yield t
    os.kill(t.pid, signal.SIGCONT)


@pytest.mark.parametrize("command", ["cpu", "heap"])
def test_recorders_refuse_a_stopped_target(pk, stopped, command):
    res = pk.run(command, "--pid", stopped.pid, "-d", "1")
    one_error(res, 3, "is stopped (SIGSTOP)", f"kill -CONT {stopped.pid}")
    assert_unharmed(stopped, state="T")
    assert_no_helpers([stopped.pid])
    assert_no_temp(pk)


@pytest.mark.parametrize("command", ["top", "doctor"])
def test_top_and_doctor_name_a_stopped_target_and_leave_it_stopped(pk, stopped, command):
    res = pk.run(command, "--pid", stopped.pid)
    assert res.returncode == 3, res.stderr
    assert "is stopped" in res.stdout + res.stderr and "Traceback" not in res.stderr
    assert_unharmed(stopped, state="T")
    assert_no_helpers([stopped.pid])


def test_threads_reads_a_stopped_target_without_resuming_it(pk, stopped):
    res = pk.run("threads", "--pid", stopped.pid, "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["thread_count"] >= 1 and doc["groups"], doc
    assert "without resuming it" in res.stderr
    assert_unharmed(stopped, state="T")
    assert_no_helpers([stopped.pid])


def test_leaks_watches_a_stopped_target_without_resuming_it(pk, stopped):
    res = pk.run("leaks", "--pid", stopped.pid, "-d", "2", "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert any("never resumed" in n for n in doc["notes"]), doc["notes"]
    assert_unharmed(stopped, state="T")


def test_triage_snapshots_a_stopped_target_without_resuming_it(pk, stopped):
    res = pk.run("triage", "--pid", stopped.pid, "-b", "10s", "--profile-top", "0", "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert any(f.get("kind") == "stopped" or "stopped" in json.dumps(f) for f in doc["findings"]), doc["findings"]
    assert_unharmed(stopped, state="T")


def test_affinity_show_leaves_a_stopped_target_stopped(pk, stopped):
    res = pk.run("affinity", "show", "--pid", stopped.pid, "--json")
    assert res.returncode == 0, res.stderr
    assert_unharmed(stopped, state="T")


def test_heap_on_a_blocked_target_fails_fast_and_leaves_it_attachable(pk, target):
    t = target("blocked", "--sleep", 3600)
    for _attempt in range(2):  # the second attempt sees the same target, not a damaged one
        t0 = time.monotonic()
        res = pk.run("heap", "--pid", t.pid, "-d", "2")
        took = time.monotonic() - t0
        line = one_error(res, 3, "is blocked", "the target was left as it was")
        assert "blocked.py" in line, line  # where the main thread waits
        assert took < 30, took  # seconds, not the old 60 s timeout (no timed asserts: a generous bound)
        assert_unharmed(t)
        assert_no_helpers([t.pid])
        assert_no_temp(pk)


def test_heap_after_a_blocked_target_wakes_tracks_it(pk, target):
    t = target("blocked", "--sleep", 6, "--work", 60)
    res = pk.run("heap", "--pid", t.pid, "-d", "2")
    assert res.returncode in (0, 3), res.stderr  # blocked (3) or it woke during the attach (0)
    assert t.proc.stdout.readline().startswith("woke")  # the pending call gdb queued ran, harmlessly
    res = pk.run("heap", "--pid", t.pid, "-d", "2", "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["recording"]["heap"]["totals"]["alloc_count"] > 0
    assert_unharmed(t)
    assert_no_helpers([t.pid])


def test_cpu_on_a_blocked_target_is_fine(pk, target):
    t = target("blocked", "--sleep", 3600)
    res = pk.run("cpu", "--pid", t.pid, "-d", "1", "--idle", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["total"] > 0
    assert_unharmed(t)


@pytest.mark.parametrize("into", ["sleep 60", "self"])
def test_heap_on_a_target_that_execs_ends_early_and_keeps_the_capture(pk, target, into):
    t = target("exec_into", "--after", "2", "--into", into)
    t0 = time.monotonic()
    res = pk.run("heap", "--pid", t.pid, "-d", "20", "-o", "heap.perfkit", "--json")
    took = time.monotonic() - t0
    assert took < 20 + 15, took  # heap -d N ends within N + 15 s in every case
    if res.returncode == 0:
        doc = json.loads(res.stdout)
        assert doc["target_exited"] is True
        assert any("exec'd into" in n for n in doc["recording"]["notes"]), doc["recording"]["notes"]
        assert (pk.out / "heap.perfkit").stat().st_size > 0
    else:  # the exec came while memray was still attaching (a loaded machine)
        one_error(res, 3, "exec'd into")
    assert t.alive() and proc.tracer(t.pid) == 0
    assert_no_helpers([t.pid])
    assert_no_temp(pk)


def test_cpu_on_a_target_that_execs_stops_and_says_so(pk, target):
    t = target("exec_into", "--after", "1.5", "--into", "sleep 60")
    res = pk.run("cpu", "--pid", t.pid, "-d", "20", "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["target_exited"] is True and doc["recording"]["duration_s"] < 15
    assert any("exec'd into 'sleep 60'" in n for n in doc["quality"]["notes"]), doc["quality"]
    assert_no_helpers([t.pid])


def test_leaks_on_a_target_that_execs_reports_until_then(pk, target):
    t = target("exec_into", "--after", "1.5", "--into", "sleep 60")
    res = pk.run("leaks", "--pid", t.pid, "-d", "20", "--interval", "0.2", "-o", "leaks.json")
    assert res.returncode == 3, res.stderr
    assert "exec'd into 'sleep 60'" in res.stderr and "Traceback" not in res.stderr
    doc = json.loads((pk.out / "leaks.json").read_text())
    assert doc["gone_how"] == "exec" and doc["samples"] >= 3


@pytest.fixture
def zombie():
    p = subprocess.Popen([PY, "-c", "pass"])
    for _ in range(200):
        if proc.state(p.pid) == "Z":
            break
        time.sleep(0.01)
    yield p.pid
    p.wait()


@pytest.mark.parametrize("argv", [["cpu", "-d", "1"], ["heap", "-d", "1"], ["threads"], ["leaks", "-d", "2"]],
                         ids=lambda a: a[0])
def test_zombie_is_named_a_zombie(pk, zombie, argv):
    res = pk.run(argv[0], "--pid", zombie, *argv[1:])
    one_error(res, 3, "zombie")


@pytest.mark.parametrize("argv", [["cpu", "-d", "1"], ["heap", "-d", "1"], ["threads"], ["leaks", "-d", "2"]],
                         ids=lambda a: a[0])
def test_kernel_thread_is_named_a_kernel_thread(pk, argv):
    res = pk.run(argv[0], "--pid", 2, *argv[1:])
    one_error(res, 3, "kernel thread")


@pytest.mark.parametrize("argv", [["cpu", "-d", "1"], ["heap", "-d", "1"], ["threads"], ["leaks", "-d", "2"],
                                  ["affinity", "show"], ["top"], ["triage", "-b", "5s"]], ids=lambda a: a[0])
def test_gone_pid_is_no_such_process(pk, argv):
    pid = free_pid()
    args = [argv[0], *argv[1:], "--pid", pid] if argv[0] == "affinity" else [argv[0], "--pid", pid, *argv[1:]]
    res = pk.run(*args)
    one_error(res, 3)
    assert "no such process" in res.stderr or "not found" in res.stderr or "exited" in res.stderr, res.stderr
