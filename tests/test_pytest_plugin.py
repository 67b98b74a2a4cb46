"""perfkit's pytest plugin, driven by REAL pytest runs (subprocesses) in a temporary project.

Truths of the generated project (its test file's docstring says the same):
* ``test_spin_a`` and ``test_spin_b`` each run ``spin(N)``, a pure-Python loop of N iterations
  (~2-3 ms at N=20000 here); ``SLOW_A=3`` makes ``test_spin_a`` run 3N iterations, so
  its CPU per call triples and ``test_spin_b`` is untouched;
* ``test_buffer`` holds a bytearray of ``BUF_MB`` MiB (default 4) at its peak;
  ``BUF_MB=8`` doubles its peak heap;
* ``test_limited_*`` carry ``perfkit_limit`` markers whose limits they do / do not meet.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import PY, ROOT, require_tool

pytestmark = pytest.mark.live

JUNIT_XSD = ROOT / "tools" / "schemas" / "junit-10.xsd"

PROJECT_TESTS = '''
"""Truth: test_spin_a / test_spin_b each spin N=20000 loop iterations (SLOW_A=3 triples a's);
test_buffer's peak is a BUF_MB MiB bytearray (default 4); the limited tests meet or break
their perfkit_limit markers as their names say."""
import os

import pytest

SLOW_A = float(os.environ.get("SLOW_A", "1"))
BUF_MB = int(os.environ.get("BUF_MB", "4"))
CALLS = []


def spin(n):
    acc = 0
    for i in range(n):
        acc = (acc * 31 + i) & 0xFFFFFFFF
    return acc


def test_spin_a():
    assert spin(int(20000 * SLOW_A)) >= 0


def test_spin_b():
    assert spin(20000) >= 0


def test_buffer():
    buf = bytearray(BUF_MB << 20)
    assert len(buf) == BUF_MB << 20


@pytest.mark.perfkit_limit(memory="1 MiB")
def test_limited_memory_exceeded():
    buf = bytearray(3 << 20)
    assert buf


@pytest.mark.perfkit_limit(memory="64 MiB", cpu="2 s")
def test_limited_within():
    assert spin(2000) >= 0


@pytest.mark.perfkit_limit(cpu="200 us")
def test_limited_cpu_exceeded():
    assert spin(20000) >= 0


def test_not_repeatable():
    CALLS.append(1)
    assert len(CALLS) == 1
'''


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "GITHUB_", "PERFKIT_")) and k not in ("SLOW_A", "BUF_MB")}
    env["COLUMNS"] = "200"
    env.update(extra)
    return env


@pytest.fixture
def project(tmp_path) -> Path:
    (tmp_path / "pyproject.toml").write_text("[tool.pytest.ini_options]\naddopts = '-p no:cacheprovider'\n")
    (tmp_path / "test_work.py").write_text(textwrap.dedent(PROJECT_TESTS))
    return tmp_path


def pytest_run(project: Path, *args: str, timeout: float = 180, **env) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "pytest", "-q", "-rA", "--color=no", *args], cwd=project, env=_env(**env),
                          capture_output=True, text=True, timeout=timeout)


def outcomes(res: subprocess.CompletedProcess) -> dict[str, str]:
    """test name -> PASSED / FAILED from pytest's -rA short summary."""
    out = {}
    for line in res.stdout.splitlines():
        for word in ("PASSED", "FAILED", "ERROR", "SKIPPED"):
            if line.startswith(word + " ") and "::" in line:
                out[line.split("::", 1)[1].split(" ", 1)[0]] = word
    return out


def test_plugin_is_registered_and_inert_without_its_options(project):
    """Loaded into every pytest run: options and marker present, nothing heavy imported."""
    (project / "conftest.py").write_text(textwrap.dedent('''
        import json, sys
        def pytest_sessionfinish(session):
            with open("modules.json", "w") as f:
                json.dump(sorted(sys.modules), f)
    '''))
    (project / "test_plain.py").write_text("def test_x():\n    assert 1 + 1 == 2\n")
    res = pytest_run(project, "--strict-markers", "test_plain.py")
    assert res.returncode == 0, res.stdout + res.stderr
    import json

    mods = set(json.loads((project / "modules.json").read_text()))
    assert "perfkit.gate.pytest_plugin" in mods  # the entry point is installed and loaded
    heavy = {"perfkit.gate.pytest_session", "perfkit.gate.runner", "perfkit.gate.report", "perfkit.stats",
             "rich", "memray", "typer", "psutil", "numpy"}
    assert not heavy & mods, heavy & mods
    helptext = pytest_run(project, "--help").stdout
    assert "--perfkit-record=FILE" in helptext and "--perfkit-check=FILE" in helptext
    markers = pytest_run(project, "--markers").stdout
    assert "@pytest.mark.perfkit_limit(" in markers
    off = pytest_run(project, "-p", "no:perfkit", "--perfkit-record", "x.json")
    assert off.returncode == 4 and "unrecognized arguments" in off.stderr  # -p no:perfkit turns it off


def test_null_rerun_passes_and_a_3x_slowdown_fails_only_that_test(project):
    base = project / ".perfkit" / "baseline.json"
    sel = ["-k", "spin_a or spin_b"]
    rec = pytest_run(project, "--perfkit-record", str(base), *sel)
    assert rec.returncode == 0, rec.stdout + rec.stderr
    assert "baseline written to" in rec.stdout and oct(base.stat().st_mode & 0o777) == "0o600"
    null = pytest_run(project, "--perfkit-check", str(base), *sel)
    assert null.returncode == 0, null.stdout + null.stderr
    assert outcomes(null) == {"test_spin_a": "PASSED", "test_spin_b": "PASSED"}
    assert "perfkit gate check: PASS — 0 regression(s)" in null.stdout

    junit, md, summary = project / "out" / "gate.xml", project / "gate.md", project / "summary.md"
    slow = pytest_run(project, "--perfkit-check", str(base), "--perfkit-junit", str(junit), "--perfkit-markdown",
                      str(md), *sel, SLOW_A="3", GITHUB_STEP_SUMMARY=str(summary), GITHUB_ACTIONS="true")
    assert slow.returncode == 1, slow.stdout + slow.stderr
    assert outcomes(slow) == {"test_spin_a": "FAILED", "test_spin_b": "PASSED"}
    line = next(ln for ln in slow.stdout.splitlines() if ln.startswith("perfkit: cpu regression"))
    # truth: 3x the loop work -> CPU per call about +200 % (call overhead is negligible)
    change = float(line.split("regression: ")[1].split("%")[0])
    assert 120 <= change <= 320, line
    assert "baseline " in line and "per call" in line
    # the gate's reports: JUnit (one case per test x metric), markdown, step summary, annotations
    root = ET.parse(junit).getroot()
    cases = {c.get("classname"): c for c in root.iter("testcase")}
    fail = cases["perfkit.gate.test_work.py::test_spin_a"].find("failure")
    assert fail is not None and fail.get("message").startswith("cpu regression")
    assert cases["perfkit.gate.test_work.py::test_spin_b"].find("failure") is None
    assert root.find("testsuite").get("hostname") and root.find("testsuite").get("timestamp")
    assert "spin\\_a" in md.read_text() and "regression" in md.read_text()
    assert summary.read_text() == md.read_text() + "\n"
    assert "::error title=perfkit gate%3A test_work.py%3A%3Atest_spin_a cpu::" in slow.stdout
    import xmlschema

    xmlschema.XMLSchema(str(require_tool(JUNIT_XSD, "junit-10.xsd (pytest's sdist)"))).validate(str(junit))


def test_memory_limits_and_cpu_limits_fail_with_the_measured_number(project):
    res = pytest_run(project, "-k", "limited")
    assert res.returncode == 1, res.stdout + res.stderr
    assert outcomes(res) == {"test_limited_memory_exceeded": "FAILED", "test_limited_within": "PASSED",
                             "test_limited_cpu_exceeded": "FAILED"}
    mem = next(ln for ln in res.stdout.splitlines() if ln.startswith("perfkit: peak heap"))
    # truth: a 3 MiB bytearray (memray traces Python's allocators: the number is exact)
    assert mem.startswith("perfkit: peak heap 3.0 MiB") and "exceeds the limit memory=1 MiB" in mem, mem
    cpu = next(ln for ln in res.stdout.splitlines() if ln.startswith("perfkit: cpu "))
    assert "per call (median of" in cpu and "exceeds the limit cpu=200 us" in cpu, cpu
    measured = cpu.split("perfkit: cpu ")[1].split(" per call")[0]
    assert measured.endswith("ms") and float(measured.split()[0]) > 0.2, cpu


def test_memory_metrics_recorded_and_a_doubled_buffer_is_a_regression(project):
    base = project / "mem.json"
    sel = ["-k", "test_buffer or spin_b"]
    rec = pytest_run(project, "--perfkit-record", str(base), "--perfkit-memory", "--perfkit-max-rounds", "10", *sel)
    assert rec.returncode == 0, rec.stdout + rec.stderr
    import json

    entry = json.loads(base.read_text())["benchmarks"]["test_work.py::test_buffer"]
    peak = sorted(entry["metrics"]["heap_peak"])
    assert 4 << 20 <= peak[0] and peak[-1] < (4 << 20) * 1.05, peak  # truth: the 4 MiB buffer is the peak
    res = pytest_run(project, "--perfkit-check", str(base), "--perfkit-memory", *sel, BUF_MB="8")
    assert res.returncode == 1, res.stdout + res.stderr
    assert outcomes(res) == {"test_buffer": "FAILED", "test_spin_b": "PASSED"}
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("perfkit: heap_peak regression"))
    assert "+100" in line or "+99" in line, line  # 4 MiB -> 8 MiB


def test_a_test_that_cannot_repeat_is_not_measured_and_still_passes(project):
    res = pytest_run(project, "--perfkit-record", str(project / "b.json"), "-k", "not_repeatable")
    assert res.returncode == 0, res.stdout + res.stderr
    assert outcomes(res) == {"test_not_repeatable": "PASSED"}
    assert "not measured: round 1 raised AssertionError" in res.stdout


@pytest.mark.parametrize("args,needle", [
    (["--perfkit-check", "missing.json"], "no baseline at"),
    (["--perfkit-record", "a.json", "--perfkit-check", "b.json"], "not both"),
    (["--perfkit-record", "a.json", "--perfkit-metrics", "cpu,rss"], "'rss' is a benchmark-command metric"),
    (["--perfkit-record", "a.json", "--perfkit-min-effect", "cpu"], "expected METRIC=FRACTION"),
])
def test_usage_errors_stop_before_any_test_runs(project, args, needle):
    res = pytest_run(project, *args)
    assert res.returncode == 4, res.stdout + res.stderr  # pytest's usage-error status
    assert "ERROR: perfkit: " in res.stderr and needle in res.stderr, res.stderr
    assert "passed" not in res.stdout


def test_bad_marker_fails_that_test_with_the_reason(project):
    (project / "test_bad.py").write_text(
        "import pytest\n\n@pytest.mark.perfkit_limit(cpu='fast')\ndef test_bad():\n    pass\n\n"
        "def test_ok():\n    pass\n")
    res = pytest_run(project, "test_bad.py")
    assert outcomes(res) == {"test_bad": "FAILED", "test_ok": "PASSED"}
    assert "perfkit_limit: cpu='fast' is not a quantity" in res.stdout

