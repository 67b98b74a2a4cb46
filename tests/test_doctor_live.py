"""`perfkit doctor` against real processes: as root and as user nobody against a
root-owned target, a target whose interpreter cannot import memray (a fresh venv),
missing tools, a broken project config — and its prediction checked against what
`perfkit cpu --pid` / `perfkit heap --pid` then really do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PY, ROOT, SCENARIOS, free_pid, one_error, perfkit_cmd, require_nobody, run_perfkit, scenario

pytestmark = [pytest.mark.live, pytest.mark.timeout(180)]


def doctor_json(*args: str, prefix: list[str] | None = None, env: dict | None = None) -> tuple[int, dict]:
    e = {**os.environ, "NO_COLOR": "1", **(env or {})}
    res = subprocess.run([*(prefix or []), *perfkit_cmd(), "doctor", "--json", *args], capture_output=True,
                         text=True, timeout=120, env=e, cwd="/" if prefix else ROOT)
    return res.returncode, json.loads(res.stdout)


def by_name(doc: dict) -> dict[str, dict]:
    return {c["name"]: c for c in doc["checks"]}


def test_doctor_as_root_on_a_root_owned_target_says_cpu_works_and_it_does():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    with scenario("cpu_split", "--duration", "60") as s:
        code, doc = doctor_json("--pid", str(s.pid))
        checks = by_name(doc)
        assert code == 0 and doc["exit_code"] == 0, doc
        assert doc["would_work"] == {f"cpu --pid {s.pid}": True, f"heap --pid {s.pid}": True}
        assert checks["ptrace (attach)"]["ok"] and "root" in checks["ptrace (attach)"]["detail"]
        ver = f"{sys.version_info[0]}.{sys.version_info[1]}"
        assert f"CPython {ver}" in checks["Python"]["detail"]
        assert checks["memray in the target"]["ok"]
        assert checks["py-spy reads it"]["ok"]
        # the prediction holds
        res = run_perfkit("cpu", "--pid", s.pid, "-d", "1", "--json", timeout=60)
        assert res.returncode == 0, res.stderr
        assert s.alive()


def test_doctor_as_nobody_on_a_root_owned_target_says_why_and_cpu_agrees():
    prefix = require_nobody()
    with scenario("cpu_split", "--duration", "60") as s:
        code, doc = doctor_json("--pid", str(s.pid), prefix=prefix)
        checks = by_name(doc)
        assert code == 3 and doc["exit_code"] == 3, doc
        assert doc["would_work"][f"cpu --pid {s.pid}"] is False
        attach = checks["ptrace (attach)"]
        assert not attach["ok"] and attach["status"] == "fail" and attach["exit_code"] == 3
        assert "uid 0" in attach["detail"] and "65534" in attach["detail"]
        assert "CAP_SYS_PTRACE" in attach["hint"] and "perfkit cpu -- python app.py" in attach["hint"]
        assert "py-spy reads it" not in checks  # no probe once a static check already fails
        # what perfkit cpu then says: the same exit code, and it points to doctor
        res = subprocess.run([*prefix, *perfkit_cmd(), "cpu", "--pid", str(s.pid), "-d", "1"], capture_output=True,
                             text=True, timeout=60, cwd="/", env={**os.environ, "NO_COLOR": "1"})
        one_error(res, 3, "permission denied", f"perfkit doctor --pid {s.pid}")
        # the human report names the failure and its fix, one check per line
        res = subprocess.run([*prefix, *perfkit_cmd(), "doctor", "--pid", str(s.pid)], capture_output=True,
                             text=True, timeout=60, cwd="/", env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"})
        assert res.returncode == 3
        assert "[FAIL] ptrace (attach): permission denied" in res.stdout
        assert "fix: run as root" in res.stdout
        assert f"perfkit cpu --pid {s.pid}: would fail" in res.stdout
        assert s.alive()


@pytest.fixture(scope="module")
def bare_venv(tmp_path_factory) -> Path:
    """A venv of the same interpreter without memray (nor anything else)."""
    d = tmp_path_factory.mktemp("bare") / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(d)], check=True, timeout=120)
    py = d / "bin" / "python"
    probe = subprocess.run([str(py), "-c", "import memray"], capture_output=True, timeout=60)
    if probe.returncode == 0:
        pytest.skip(f"memray is importable from a bare venv of {base} (installed globally)")
    return py


def test_doctor_finds_memray_missing_in_the_targets_interpreter_and_heap_agrees(bare_venv):
    proc = subprocess.Popen([str(bare_venv), str(SCENARIOS / "cpu_split.py"), "--duration", "60"],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout.readline().startswith("ready")
        code, doc = doctor_json("--pid", str(proc.pid))
        checks = by_name(doc)
        mem = checks["memray in the target"]
        assert not mem["ok"] and mem["status"] == "fail" and mem["needs"] == ["heap"], mem
        assert str(bare_venv) in mem["detail"] and "not installed" in mem["detail"]
        assert "install memray" in mem["hint"]
        assert checks["Python"]["detail"].endswith("via argv[0])")  # the venv's python, not the base one
        # cpu does not need memray: doctor still exits 0, and says heap would fail
        assert code == 0 and doc["would_work"][f"heap --pid {proc.pid}"] is False
        assert doc["would_work"][f"cpu --pid {proc.pid}"] is True
        # and perfkit heap --pid does fail on exactly that, pointing back to doctor
        res = run_perfkit("heap", "--pid", proc.pid, "-d", "1", timeout=120)
        one_error(res, 4, "memray is not importable", f"perfkit doctor --pid {proc.pid}")
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_doctor_without_a_pid_checks_the_host():
    code, doc = doctor_json()
    names = set(by_name(doc))
    assert {"py-spy", "memray (perfkit)", "gdb", "ptrace (launched programs)", "container",
            "temporary directory", "project config"} <= names
    assert code == 0 and doc["would_work"]["cpu -- CMD"] is True


def test_doctor_with_py_spy_missing_exits_4():
    code, doc = doctor_json(env={"PERFKIT_PYSPY": "/nonexistent/py-spy"})
    assert code == 4
    assert not by_name(doc)["py-spy"]["ok"]


def test_doctor_on_a_missing_pid_exits_3():
    code, doc = doctor_json("--pid", str(free_pid()))
    assert code == 3 and "no such process" in by_name(doc)["target"]["detail"]


def test_doctor_reports_a_broken_project_config_other_commands_refuse_it(tmp_path):
    cfg = tmp_path / "pyproject.toml"
    cfg.write_text("[tool.perfkit]\nrat = 200\n")
    code, doc = doctor_json(env={"PERFKIT_CONFIG": str(cfg)})
    assert code == 2
    c = by_name(doc)["project config"]
    assert not c["ok"] and "unknown key 'rat'" in c["detail"] and "rate" in c["hint"]
    one_error(run_perfkit("cpu", "--", PY, "-c", "pass", env={"PERFKIT_CONFIG": str(cfg)}), 2, "unknown key 'rat'")


def test_root_asks_another_users_interpreter_as_that_user():
    """The target's environment runs code when its interpreter starts (sitecustomize, .pth):
    doctor as root must not run it as root."""
    import shutil
    import tempfile

    require_nobody()
    from perfkit import preflight

    d = tempfile.mkdtemp(prefix="perfkit-doctor-test-")
    try:
        os.chmod(d, 0o777)
        Path(d, "sitecustomize.py").write_text(
            f"import os\nopen(os.path.join({d!r}, 'uid-%d' % os.getuid()), 'w').close()\n")
        proc = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3",
                                 "-c", "import time; print('ready', flush=True); time.sleep(30)"],
                                stdout=subprocess.PIPE, text=True, cwd="/", env={**os.environ, "PYTHONPATH": d})
        try:
            assert proc.stdout.readline().startswith("ready")
            for f in os.listdir(d):
                if f.startswith("uid-"):
                    os.unlink(os.path.join(d, f))
            info = preflight.ask_interpreter(proc.pid)
            assert info.version is not None, info
            ran_as = sorted(f for f in os.listdir(d) if f.startswith("uid-"))
            assert ran_as == ["uid-65534"], ran_as
        finally:
            proc.kill()
            proc.wait()
            proc.stdout.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)
