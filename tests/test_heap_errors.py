"""perfkit heap bad input: one clear line (+ hint), the documented exit code, no traceback,
and the target left as it was."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from conftest import ROOT, run_perfkit, scenario, scenario_cmd
from conftest import one_error as _one_error

pytestmark = pytest.mark.live



def _status(sc) -> tuple[int, int]:
    os.kill(sc.pid, signal.SIGUSR1)
    line = sc.proc.stdout.readline()
    assert line.startswith("status"), (line, getattr(sc, "proc", None) and sc.proc.poll())
    parts = dict(p.split("=") for p in line.split()[1:])
    return int(parts["rounds"]), int(parts["failures"])


def test_gdb_missing_says_how_to_install():
    with scenario("mem_selfcheck", "--duration", "30") as sc:
        res = run_perfkit("heap", "--pid", sc.pid, "-d", "1", env={"PATH": "/nonexistent"})
        _one_error(res, 4, "gdb not found", "apt-get install gdb")
        assert sc.alive()


def test_memray_not_importable_in_target_leaves_it_working():
    # -I -S: no site-packages, so the target's Python cannot import memray
    cmd = [sys.executable, "-I", "-S", scenario_cmd("mem_selfcheck")[1], "--duration", "60"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        assert proc.stdout.readline().startswith("ready")
        target = type("Target", (), {"pid": proc.pid, "proc": proc})
        before = _status(target)
        res = run_perfkit("heap", "--pid", proc.pid, "-d", "1")
        _one_error(res, 4, "memray is not importable", "target's environment")
        assert proc.poll() is None
        rounds, failures = _status(target)
        assert failures == 0 and rounds > before[0], "the target must keep computing correctly"
    finally:
        proc.kill()
        proc.wait()


def test_launched_python_without_memray():
    res = run_perfkit("heap", "--", sys.executable, "-I", "-S", "-c", "print('hi')")
    _one_error(res, 4, "memray is not importable", "pip install memray")


def test_non_python_pid():
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        res = run_perfkit("heap", "--pid", sleeper.pid, "-d", "1")
        _one_error(res, 3, "not a Python process")
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_non_python_command():
    res = run_perfkit("heap", "--", "sleep", "1")
    _one_error(res, 3, "not a Python interpreter")


def test_no_such_pid():
    _one_error(run_perfkit("heap", "--pid", "999999", "-d", "1"), 3, "no such process")


def test_no_target_and_conflicting_flags(tmp_path):
    _one_error(run_perfkit("heap"), 2, "no target")
    _one_error(run_perfkit("heap", "--from", tmp_path / "x.bin", "--pid", "1"), 2, "--from")


def test_unwritable_output_fails_before_tracking(tmp_path):
    _one_error(run_perfkit("heap", "-o", tmp_path / "nodir" / "x.perfkit", "--", sys.executable, "-c", "pass"),
               2, "does not exist")


@pytest.fixture(scope="module")
def capture_file(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("cap") / "c.bin"
    code = "keep = [bytearray(100000) for _ in range(50)]\nimport time\ntime.sleep(0.05)"
    subprocess.run([sys.executable, "-m", "memray", "run", "-q", "--no-compress", "-o", str(path), "-c", code],
                   check=True, timeout=60, capture_output=True)
    return path.read_bytes()


def test_from_capture_file_reads_it(tmp_path, capture_file):
    p = tmp_path / "good.bin"
    p.write_bytes(capture_file)
    res = run_perfkit("heap", "--from", p, "--json", check=True)
    import json

    doc = json.loads(res.stdout)
    assert doc["totals"]["alloc_bytes"] >= 50 * 100000
    assert doc["recording"]["heap"]["capture_complete"] is True


@pytest.mark.parametrize("kind", ["garbage", "empty", "header-only"])
def test_corrupt_capture_file(tmp_path, capture_file, kind):
    p = tmp_path / f"{kind}.bin"
    data = {"garbage": b"\x00not a memray file" * 10, "empty": b"", "header-only": capture_file[:40]}[kind]
    p.write_bytes(data)
    _one_error(run_perfkit("heap", "--from", p), 2, str(p))


def test_truncated_capture_file_reports_what_it_holds(tmp_path, capture_file):
    p = tmp_path / "cut.bin"
    p.write_bytes(capture_file[: len(capture_file) // 2])
    res = run_perfkit("heap", "--from", p)
    assert res.returncode in (0, 2), res.stderr
    assert "Traceback" not in res.stderr
    if res.returncode != 0:
        _one_error(res, 2, "corrupt or truncated")
    elif "incomplete" not in res.stdout + res.stderr:
        # memray's reader recomputes the header's totals from what it could read, so a
        # cut on a record boundary is not always detectable (docs/heap.md says so).
        # Then perfkit must report a subset of the real capture, never invent data.
        import json

        full = tmp_path / "full.bin"
        full.write_bytes(capture_file)
        a = json.loads(run_perfkit("heap", "--from", full, "--json", check=True).stdout)["totals"]
        b = json.loads(run_perfkit("heap", "--from", p, "--json", check=True).stdout)["totals"]
        assert 0 < b["alloc_bytes"] <= a["alloc_bytes"] and b["alloc_count"] <= a["alloc_count"]


def test_missing_capture_file(tmp_path):
    _one_error(run_perfkit("heap", "--from", tmp_path / "nope.bin"), 2, "no such file")


def test_heap_command_imports_nothing_heavy():
    code = ("import sys, perfkit.commands.heap, perfkit.tools.memray, perfkit.analysis.heap; "
            "bad = [m for m in ('memray', 'psutil', 'rich.table') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
