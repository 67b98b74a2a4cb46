"""The code itself is checked: the import layers hold (import-linter), ruff finds nothing,
and the types check (mypy).  Each tool runs as the real program on the real tree."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import IN_CI, ROOT

BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    exe = BIN / name
    if exe.exists():
        return str(exe)
    found = shutil.which(name)
    if found:
        return found
    if IN_CI:
        pytest.fail(f"{name} is not installed (test extras)")
    pytest.skip(f"{name} is not installed; run ./scripts/setup")


def _run(*cmd: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True, cwd=ROOT, timeout=timeout)


def test_import_layers_hold():
    res = _run(_tool("lint-imports"), "--no-cache")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "0 broken" in res.stdout


def test_ruff_finds_nothing():
    """The project's whole ruff configuration (pyproject.toml: E, F, W, I, B) on every tree."""
    res = _run(_tool("ruff"), "check", "--no-cache", "perfkit", "tests", "benchmarks", "scenarios")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]


def test_types_check():
    """mypy over perfkit/ (pyproject.toml's [tool.mypy]): annotations are kept true."""
    res = _run(_tool("mypy"), "--no-incremental", timeout=600)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "Success: no issues found" in res.stdout
