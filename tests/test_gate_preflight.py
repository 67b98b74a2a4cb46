"""The gate checks its preconditions before any benchmark runs (issue 17: it used to run 82 s
of benchmarks before saying memray was missing).

Every benchmark here touches a marker file when it runs: a failed precondition must be
reported with its exit code and fix while that file still does not exist.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest

from conftest import PY, one_error, run_perfkit
from perfkit.gate import preflight

FAST = ["--repetitions", "3", "--max-repetitions", "3", "--warmups", "0"]


def touching_argv(marker) -> list[str]:
    return [PY, "-c", f"open({str(marker)!r}, 'a').write('ran\\n')"]


def touching(marker) -> str:
    return shlex.join(touching_argv(marker))


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory) -> str:
    """An interpreter without memray: a fresh venv (no pip, no site-packages of ours)."""
    d = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(d / "v")], check=True, timeout=120)
    py = d / "v" / "bin" / "python"
    assert subprocess.run([str(py), "-c", "import memray"], capture_output=True).returncode != 0
    return str(py)


def test_memray_missing_from_the_benchmarks_interpreter_fails_before_any_run(tmp_path, bare_python):
    marker = tmp_path / "ran"
    cmd = shlex.join([bare_python, "-c", f"open({str(marker)!r}, 'a').write('x')"])
    res = run_perfkit("gate", "compare", "--base-cmd", cmd, "--head-cmd", cmd, "-m", "cpu,heap_peak", *FAST)
    one_error(res, 4, f"memray is not installed for {bare_python}", "needed for heap_peak",
              f"{bare_python} -m pip install memray")
    assert not marker.exists()


def test_valgrind_missing_fails_before_any_run(tmp_path):
    marker = tmp_path / "ran"
    res = run_perfkit("gate", "check", "--baseline", tmp_path / "b.json", "-m", "instructions", *FAST,
                      "--", PY, "-c", "pass", env={"PERFKIT_VALGRIND": "", "PATH": "/nonexistent"})
    # no baseline yet: the usage error comes first (exit 2) ...
    one_error(res, 2, "no baseline at")
    res = run_perfkit("gate", "compare", "--base-cmd", touching(marker), "--head-cmd", touching(marker),
                      "-m", "instructions", *FAST, env={"PATH": "/nonexistent"})
    one_error(res, 4, "valgrind not found", "apt-get install valgrind")
    assert not marker.exists()


def test_pyspy_missing_fails_before_any_run_when_explanations_are_on(tmp_path):
    marker = tmp_path / "ran"
    res = run_perfkit("gate", "compare", "--base-cmd", touching(marker), "--head-cmd", touching(marker),
                      "-m", "cpu", *FAST, env={"PERFKIT_PYSPY": str(tmp_path / "no-py-spy")})
    one_error(res, 4, "is not an executable", "--no-profile")
    assert not marker.exists()
    ok = run_perfkit("gate", "compare", "--base-cmd", touching(marker), "--head-cmd", touching(marker),
                     "-m", "cpu", *FAST, "--no-profile", env={"PERFKIT_PYSPY": str(tmp_path / "no-py-spy")})
    assert ok.returncode in (0, 1), ok.stderr  # without explanations py-spy is not needed
    assert marker.exists()


def test_unwritable_diff_dir_fails_before_any_run(tmp_path):
    marker = tmp_path / "ran"
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    res = run_perfkit("gate", "compare", "--base-cmd", touching(marker), "--head-cmd", touching(marker),
                      "-m", "cpu", *FAST, "--diff-dir", blocker)
    one_error(res, 2, f"cannot write into {blocker}: it is not a directory")
    assert not marker.exists()


def test_every_benchmarks_command_and_cwd_is_checked_before_the_first_runs(tmp_path):
    marker = tmp_path / "ran"
    cfg = tmp_path / "pyproject.toml"
    cfg.write_text(f"""
[tool.perfkit.gate]
metrics = ["cpu"]
profile = false
[tool.perfkit.gate.benchmarks.first]
command = {json.dumps(touching_argv(marker))}
[tool.perfkit.gate.benchmarks.second]
command = "no-such-benchmark-program --flag"
""")
    res = run_perfkit("gate", "record", "--config", cfg, *FAST, "--baseline", tmp_path / "b.json")
    one_error(res, 3, "benchmark 'second' (baseline): cannot run 'no-such-benchmark-program'")
    assert not marker.exists()
    cfg.write_text(cfg.read_text().replace('command = "no-such-benchmark-program --flag"',
                                           f'command = {json.dumps(touching_argv(marker))}\ncwd = "gone"'))
    res = run_perfkit("gate", "record", "--config", cfg, *FAST, "--baseline", tmp_path / "b.json")
    one_error(res, 3, "working directory", "gone does not exist")
    assert not marker.exists()


def test_ptrace_scope_check(monkeypatch):
    from perfkit.procs import proc

    monkeypatch.setattr(proc, "sysctl", lambda name: "3")
    c = preflight.ptrace()
    assert not c.ok and "ptrace_scope is 3" in c.detail and "--no-profile" in c.hint and c.error.exit_code == 4
    monkeypatch.setattr(proc, "sysctl", lambda name: "2")
    monkeypatch.setattr(proc, "has_capability", lambda bit, pid=None: False)
    assert not preflight.ptrace().ok
    monkeypatch.setattr(proc, "has_capability", lambda bit, pid=None: True)
    assert preflight.ptrace().ok
    monkeypatch.setattr(proc, "sysctl", lambda name: "1")
    assert preflight.ptrace().ok


def test_require_names_the_other_problems(tmp_path):
    checks = [preflight.Check("a", True), preflight.Check("b", False, "first problem", "fix b"),
              preflight.Check("c", False, "second problem", "fix c")]
    with pytest.raises(preflight.ToolMissing) as exc:
        preflight.require(checks)
    assert exc.value.message == "first problem" and "fix b" in exc.value.hint and "second problem" in exc.value.hint
    assert preflight.writable_dir(tmp_path / "new" / "deeper").ok  # created when needed
    assert preflight.command(["definitely-not-a-program-xyz"], what="x").ok is False
    assert preflight.command([PY, "-c", "pass"], what="x").ok
