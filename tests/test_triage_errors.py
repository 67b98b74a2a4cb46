"""Bad input for perfkit triage: one clear line, the documented exit code, no bundle."""

from __future__ import annotations

import os
import subprocess

import pytest

from conftest import free_pid as _free_pid
from conftest import one_error, run_perfkit

pytestmark = pytest.mark.live


def _one_error(res: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    one_error(res, code, *needles)
    assert res.stdout == ""


@pytest.mark.parametrize("budget", ["soon", "1s", "0", "3h", "-5"])
def test_bad_budget(tmp_path, budget):
    _one_error(run_perfkit("triage", "--budget", budget, "-o", tmp_path / "b"), 2, "--budget")
    assert not (tmp_path / "b").exists()


def test_no_such_pid(tmp_path):
    _one_error(run_perfkit("triage", "--pid", _free_pid(), "-o", tmp_path / "b"), 3, "no such process")
    assert not (tmp_path / "b").exists()


def test_not_python_without_python_children(tmp_path):
    proc = subprocess.Popen(["sleep", "30"])
    try:
        res = run_perfkit("triage", "--pid", proc.pid, "-o", tmp_path / "b")
    finally:
        proc.kill()
        proc.wait()
    _one_error(res, 3, "not a Python process", "no Python children")


def test_output_dir_not_empty(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "keep.txt").write_text("mine")
    _one_error(run_perfkit("triage", "--pid", os.getpid(), "-o", tmp_path / "b"), 2, "not empty")
    assert (tmp_path / "b" / "keep.txt").read_text() == "mine"


def test_output_parent_missing(tmp_path):
    _one_error(run_perfkit("triage", "-o", tmp_path / "no" / "such" / "b.tar.gz"), 2, "does not exist")


def test_output_is_a_file(tmp_path):
    f = tmp_path / "plain"
    f.write_text("x")
    _one_error(run_perfkit("triage", "-o", f), 2, "a file with that name exists")


def test_invalid_pid_and_unknown_flag(tmp_path):
    _one_error(run_perfkit("triage", "--pid", "0", "-o", tmp_path / "b"), 2, "invalid pid")
    res = run_perfkit("triage", "--frobnicate")
    assert res.returncode == 2 and "Traceback" not in res.stderr
