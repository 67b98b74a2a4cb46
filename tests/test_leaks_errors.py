"""`perfkit leaks` bad input and hostile targets: one-line errors with documented exit
codes, partial reports when the target vanishes, and what could not be measured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from conftest import ROOT, perfkit_cmd, require_nobody, run_perfkit, scenario
from conftest import one_error as one_line_error

pytestmark = pytest.mark.live



def test_no_such_pid_exits_3():
    res = run_perfkit("leaks", "--pid", "999999999", "-d", "2")
    assert res.returncode == 3
    assert "no such process" in one_line_error(res)


def test_invalid_pid_exits_2():
    res = run_perfkit("leaks", "--pid", "0", "-d", "2")
    assert res.returncode == 2
    one_line_error(res)


def test_zombie_exits_3():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        for _ in range(100):  # wait until it has exited but is not reaped
            with open(f"/proc/{child.pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            time.sleep(0.05)
        res = run_perfkit("leaks", "--pid", str(child.pid), "-d", "2")
        assert res.returncode == 3
        assert "zombie" in one_line_error(res)
    finally:
        child.wait()


def test_bad_output_suffix_and_coarse_interval_exit_2(tmp_path):
    res = run_perfkit("leaks", "--pid", str(os.getpid()), "-d", "2", "-o", str(tmp_path / "report.pdf"))
    assert res.returncode == 2
    assert "report format" in one_line_error(res)
    res = run_perfkit("leaks", "--pid", str(os.getpid()), "-d", "2", "--interval", "1")
    assert res.returncode == 2
    assert "too coarse" in one_line_error(res)
    res = run_perfkit("leaks", "--pid", str(os.getpid()), "-d", "2", "-o", str(tmp_path / "nodir" / "r.html"))
    assert res.returncode == 2
    one_line_error(res)


def test_pid_vanishing_mid_run_reports_what_was_seen(tmp_path):
    out = tmp_path / "gone.md"
    with scenario("fd_leak", "--rate", "5", "--duration", "4") as sc:
        res = run_perfkit("leaks", "--pid", str(sc.pid), "-d", "15", "--interval", "0.2", "--json", "-o", str(out))
    assert res.returncode == 3, res.stderr
    assert f"pid {sc.pid} exited" in res.stderr and "Traceback" not in res.stderr
    doc = json.loads(res.stdout)
    assert 2.0 < doc["gone_at_s"] < 8.0
    assert doc["samples"] >= 10
    assert any("exited" in n for n in doc["notes"])
    assert doc["series"]["fds"], "the samples until exit are kept"
    text = out.read_text()
    assert "exited" in text
    assert (out.stat().st_mode & 0o777) == 0o600


def test_another_users_process_reports_what_could_not_be_measured():
    with scenario("steady", "--kind", "thread_pool", "--duration", "30") as sc:
        env = dict(os.environ, NO_COLOR="1", COLUMNS="200")
        res = subprocess.run([*require_nobody(), *perfkit_cmd(),
                              "leaks", "--pid", str(sc.pid), "-d", "3", "--interval", "0.2", "--json"],
                             capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    by = {r["resource"]: r for r in doc["resources"]}
    assert by["fds"]["measured"] is False and "permission denied" in by["fds"]["why_unmeasured"]
    assert by["sockets"]["measured"] is False
    assert by["threads"]["measured"] and by["memory"]["measured"]
    assert by["threads"]["end_value"] >= 2
    assert any("fds: not measured" in n for n in doc["notes"])
    # the human view says it too
    with scenario("steady", "--kind", "thread_pool", "--duration", "30") as sc:
        res = subprocess.run([*require_nobody(), *perfkit_cmd(),
                              "leaks", "--pid", str(sc.pid), "-d", "2", "--interval", "0.2"],
                             capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert "fds: not measured (permission denied" in res.stdout


def test_launch_mode_watches_the_command_and_stops_it(tmp_path):
    from conftest import scenario_cmd

    html, js = tmp_path / "r.html", tmp_path / "r.json"
    res = run_perfkit("leaks", "-d", "6", "--interval", "0.2", "--json", "-o", str(html), "-o", str(js),
                      "--", *scenario_cmd("fd_leak", "--rate", "5", "--duration", "60"))
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    saved = json.loads(js.read_text())
    assert saved["verdicts"] == doc["verdicts"] and saved["series"]["fds"] == doc["series"]["fds"]
    page = html.read_text()
    assert page.count("<svg") == 5 + 2  # every resource, plus PSS and USS
    assert (html.stat().st_mode & 0o777) == 0o600
    assert doc["leaks"] == ["fds"]
    assert doc["cmdline"][-4:] == ["--rate", "5", "--duration", "60"]
    assert doc["gone_at_s"] is None
    assert subprocess.run(["pgrep", "-f", "fd_leak.py --rate 5 --duration 60"], capture_output=True).returncode == 1


def test_target_and_command_together_is_a_usage_error():
    res = run_perfkit("leaks", "--pid", "1", "--", "python", "-c", "pass")
    assert res.returncode == 2
    one_line_error(res)
    res = run_perfkit("leaks")
    assert res.returncode == 2
    assert "no target" in one_line_error(res)


def test_a_non_python_process_is_watched_without_stacks():
    proc = subprocess.Popen(["sleep", "30"])
    try:
        res = run_perfkit("leaks", "--pid", str(proc.pid), "-d", "2", "--interval", "0.2", "--json")
    finally:
        proc.kill()
        proc.wait()
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["leaks"] == []
    assert {r["resource"]: r["end_value"] for r in doc["resources"]}["threads"] == 1
