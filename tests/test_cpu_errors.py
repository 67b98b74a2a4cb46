"""Bad input for perfkit cpu: one clear line, the documented exit code, nothing lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, perfkit_cmd, require_nobody, run_perfkit, scenario, scenario_cmd
from conftest import free_pid as _free_pid
from conftest import one_error as _one_error

pytestmark = pytest.mark.live




def test_no_such_pid():
    res = run_perfkit("cpu", "--pid", _free_pid(), "-d", "1")
    _one_error(res, 3, "no such process")


def test_not_python():
    proc = subprocess.Popen(["sleep", "30"])
    try:
        res = run_perfkit("cpu", "--pid", proc.pid, "-d", "1")
    finally:
        proc.kill()
        proc.wait()
    _one_error(res, 3, "not a Python process", "sleep")


def test_no_target_is_usage_error():
    res = run_perfkit("cpu", "-d", "1")
    _one_error(res, 2, "no target")


def test_launch_command_not_found():
    res = run_perfkit("cpu", "--", "no-such-program-perfkit")
    _one_error(res, 3, "command not found")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start a root-owned target and drop to nobody")
def test_permission_denied_as_unprivileged_user():
    with scenario("cpu_split", "--duration", "30") as sc:
        env = dict(os.environ, NO_COLOR="1", PYTHONDONTWRITEBYTECODE="1", HOME="/tmp")
        res = subprocess.run([*require_nobody(), *perfkit_cmd(),
                              "cpu", "--pid", str(sc.pid), "-d", "1"], capture_output=True, text=True, timeout=60,
                             env=env, cwd="/tmp")
        assert sc.alive()
    _one_error(res, 3, "permission denied", "CAP_SYS_PTRACE")


def test_target_exits_mid_recording_profile_written(tmp_path):
    out = tmp_path / "short.perfkit"
    with scenario("cpu_split", "--duration", "2") as sc:
        res = run_perfkit("cpu", "--pid", sc.pid, "-d", "10", "-o", out, "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["target_exited"] is True
    assert doc["quality"]["duration_s"] < 9
    assert doc["quality"]["samples"] >= 50
    from perfkit.formats import read_profile

    assert read_profile(out).total(0) == doc["quality"]["samples"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_writes_profile_and_exits_130(tmp_path, sig):
    out = tmp_path / "partial.speedscope.json"
    with scenario("cpu_split", "--duration", "60") as sc:
        proc = subprocess.Popen([*perfkit_cmd(), "cpu", "--pid", str(sc.pid), "-d", "60", "-o", str(out)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                                env=dict(os.environ, NO_COLOR="1"))
        time.sleep(3)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)
        assert sc.alive(), "interrupting perfkit must not harm the target"
        # the target is not left stopped by ptrace
        state = Path(f"/proc/{sc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        assert state in ("R", "S"), state
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "interrupted" in stderr
    assert "spin_a" in stdout  # the partial top table is still shown
    from perfkit.formats import read_profile

    prof = read_profile(out)
    assert prof.total(0) >= 100  # ~3 s at 100 Hz


def test_pyspy_missing(tmp_path):
    """No py-spy next to the interpreter nor on PATH → exit 4 and how to install."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python").symlink_to(os.path.realpath(sys.executable))
    import site

    pythonpath = os.pathsep.join([str(ROOT), *site.getsitepackages()])
    env = dict(os.environ, PATH="/usr/bin:/bin", PYTHONPATH=pythonpath, NO_COLOR="1")
    env.pop("PERFKIT_PYSPY", None)
    res = subprocess.run([str(bindir / "python"), "-m", "perfkit", "cpu", "--",
                          *scenario_cmd("cpu_split", "--duration", "2")],
                         capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    _one_error(res, 4, "py-spy not found", "pip install py-spy")


def test_unwritable_output_fails_before_recording(tmp_path):
    with scenario("cpu_split", "--duration", "30") as sc:
        t0 = time.monotonic()
        res = run_perfkit("cpu", "--pid", sc.pid, "-d", "20", "-o", tmp_path / "missing" / "x.speedscope.json")
        took = time.monotonic() - t0
    _one_error(res, 2, "does not exist")
    assert took < 15, "must fail before the 20 s recording, not after"


def test_unknown_output_suffix_is_usage_error(tmp_path):
    res = run_perfkit("cpu", "-o", tmp_path / "x.weird", "--", *scenario_cmd("cpu_split", "--duration", "1"))
    _one_error(res, 2, "cannot tell the format")


def test_full_disk_is_a_clear_error(tmp_path):
    """Writing to a full device (/dev/full) reports 'no space left', exit 2, no traceback."""
    from perfkit.errors import OutputError
    from perfkit.fileio import atomic_write

    if not os.path.exists("/dev/full"):
        pytest.skip("/dev/full not available")
    import errno
    import unittest.mock as mock

    real_write = os.write

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    with mock.patch("os.write", full):
        with pytest.raises(OutputError) as exc:
            atomic_write(tmp_path / "x.collapsed", b"data")
    assert "no space left" in exc.value.message
    assert not list(tmp_path.iterdir()), "no half-written or temp file is left behind"
    assert real_write is os.write
