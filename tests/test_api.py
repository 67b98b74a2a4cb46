"""The Python API (perfkit.api) used as a program would: only ``perfkit.api`` is imported.

Real recordings of scenarios with known truths (scenarios/cpu_split.py: spin_a 75 %,
spin_b 25 %; scenarios/mem_peak.py: a 32 MiB peak at its PEAK LINE), files written and
read back, transforms, and the CLI's errors with their exit codes — never SystemExit,
nothing printed on stdout."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from perfkit import api

pytestmark = [pytest.mark.live, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parent.parent
SCEN = ROOT / "scenarios"
PY = sys.executable


def shares(prof) -> dict[str, float]:
    return {r.function: r.self_pct for r in api.top_functions(prof, limit=None)}


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """One launched recording shared by the file/transform tests (4 s at 100 Hz)."""
    return api.record_cpu(command=[PY, str(SCEN / "cpu_split.py"), "--duration", "4"])


def test_record_a_launched_command(launched, capsys):
    rec = launched.recording
    assert rec.launched and rec.exit_code == 0 and rec.requested_rate == 100
    assert launched.total(0) >= 300  # sqrt(.75*.25/300) = 2.5 pp: 10 pp below is 4 sigma
    s = shares(launched)
    assert abs(s["spin_a"] - 75) <= 10 and abs(s["spin_b"] - 25) <= 10
    assert capsys.readouterr().out == ""


def test_record_a_live_pid_and_dump_its_threads():
    proc = subprocess.Popen([PY, str(SCEN / "cpu_split.py"), "--duration", "30"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("ready")
        prof = api.record_cpu(pid=proc.pid, duration=2)
        assert prof.recording.attached and prof.recording.pid == proc.pid
        assert 1.5 <= prof.recording.duration_s <= 4
        assert max(shares(prof), key=shares(prof).get) in ("spin_a", "spin_b")
        stacks = api.thread_stacks(proc.pid)
        names = {f.get("name") for t in stacks for f in t.frames}
        assert "main" in names and (names & {"spin_a", "spin_b"})
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_files_round_trip_and_convert(launched, tmp_path):
    assert api.write(launched, tmp_path / "cpu.perfkit") == "perfkit"
    back = api.read(tmp_path / "cpu.perfkit")
    assert back.total(0) == launched.total(0) and shares(back) == shares(launched)
    assert os.stat(tmp_path / "cpu.perfkit").st_mode & 0o777 == 0o600
    assert api.convert(tmp_path / "cpu.perfkit", tmp_path / "cpu.pb.gz") == "pprof"
    assert api.read(tmp_path / "cpu.pb.gz").total(0) == launched.total(0)
    assert api.write(launched, tmp_path / "cpu.txt", "raw") == "collapsed"  # py-spy's name for folded stacks
    assert (tmp_path / "cpu.txt").read_bytes() == api.render(launched, "collapsed") == api.render(launched, "raw")
    assert api.render(launched, "flamegraph").startswith(b"<?xml")


def test_transforms_are_pure(launched):
    a = api.focus(launched, "spin_a")
    assert set(shares(a)) >= {"spin_a"} and "spin_b" not in shares(a)
    b = api.ignore(launched, "spin_a")
    assert "spin_a" not in shares(b)
    assert a.total(0) + b.total(0) == launched.total(0)
    assert api.merge_threads(launched).total(0) == launched.total(0)
    assert api.only_pids(launched, [launched.recording.pid]).total(0) == launched.total(0)
    assert shares(launched)["spin_a"] > 50  # the original is untouched
    assert api.diff(launched, launched).rows is not None


def test_heap_capture_of_a_launched_program():
    size = 32 << 20
    prof = api.capture_heap(command=[PY, str(SCEN / "mem_peak.py"), "--size", str(size), "--delay", "0.3",
                                     "--hold", "0.3", "--duration", "1.5"])
    summary = api.heap_summary(prof)
    assert abs(summary.peak_heap - size) <= 0.01 * size
    assert any(s.function == "spike" for s in summary.peak_sites)


def test_doctor_from_the_api():
    checks = {c.name: c for c in api.doctor()}
    assert checks["py-spy"].ok


@pytest.mark.parametrize("call,code,needle", [
    (lambda: api.record_cpu(), 2, "no target"),
    (lambda: api.record_cpu(pid=4_000_000), 3, "no such process"),
    (lambda: api.record_cpu(pid=-1), 2, "invalid pid"),
    (lambda: api.record_cpu(pid=1, duration=math.nan), 2, "finite"),
    (lambda: api.record_cpu(pid=1, rate=0), 2, "rate"),
    (lambda: api.record_cpu(command="python app.py"), 2, "list of strings"),
    (lambda: api.read("/nonexistent/x.perfkit"), 2, "no such file"),
    (lambda: api.top_functions("not a profile"), 2, "expected a perfkit Profile"),
])
def test_errors_are_the_clis(call, code, needle):
    with pytest.raises(api.PerfkitError) as exc:
        call()
    assert exc.value.exit_code == code and needle in exc.value.message


def test_bad_files_and_patterns(launched, tmp_path):
    with pytest.raises(api.UsageError, match="cannot tell the format"):
        api.write(launched, tmp_path / "x.unknown")
    with pytest.raises(api.UsageError, match="unknown format"):
        api.write(launched, tmp_path / "x.txt", "gif")
    with pytest.raises(api.UsageError, match="invalid focus regex"):
        api.focus(launched, "(")
    bad = tmp_path / "bad.perfkit"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(api.InputFormatError) as exc:
        api.read(bad)
    assert exc.value.exit_code == 2


def test_a_failing_program_with_check_raises_exit_3_and_keeps_the_profile():
    code = "import sys, time\nt = time.time()\nwhile time.time() - t < 1.5: pass\nsys.exit(5)"
    prof = api.record_cpu(command=[PY, "-c", code])
    assert prof.recording.exit_code == 5
    with pytest.raises(api.TargetError) as exc:
        api.record_cpu(command=[PY, "-c", code], check=True)
    assert exc.value.exit_code == 3 and "status 5" in exc.value.message
    assert exc.value.profile.total(0) > 0
