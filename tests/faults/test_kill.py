"""Fault matrix, part 1: perfkit is SIGKILLed mid-work (OOM kill, kill -9, a CI runner's
hard stop).  Nothing it started may outlive it, the target must be exactly as before,
nothing half-written may replace an old output, and the next run sweeps its scratch."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from harness import PY, Runner, assert_no_helpers, assert_no_temp, assert_unharmed, pk, target, tracing, wait_until  # noqa: F401

from perfkit.procs import proc

pytestmark = pytest.mark.live

OLD = "old output\n"


def _marker_alive(marker: str) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != os.getpid():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    cmd = f.read()
                    # perfkit's own command line names the marker too: only what it started counts
                    if marker.encode() in cmd and b"-m\0perfkit\0" not in cmd and proc.alive(int(d)):
                        out.append(int(d))
            except OSError:
                pass
    return out


def _kill(p: subprocess.Popen) -> None:
    p.send_signal(signal.SIGKILL)
    p.wait(10)


def _old_output(pk: Runner, name: str):
    path = pk.out / name
    path.write_text(OLD)
    return path


def _sweeps(pk: Runner, t) -> None:
    """The next run removes what the killed one left in TMPDIR (named by its dead pid)."""
    res = pk.run("cpu", "--pid", t.pid, "-d", "0.5")
    assert res.returncode == 0, res.stderr
    assert_no_temp(pk)


def test_kill_cpu_attached(pk, target):
    t = target("mem_selfcheck", "--duration", 120)
    out = _old_output(pk, "cpu.perfkit")
    p = pk.spawn("cpu", "--pid", t.pid, "-d", 60, "-o", out)
    assert wait_until(lambda: proc.tracer(t.pid) or any("py-spy" in h for h in _helpers_of(t.pid)), 20)
    time.sleep(0.5)
    _kill(p)
    assert_no_helpers([t.pid])
    assert_unharmed(t)
    assert out.read_text() == OLD
    _sweeps(pk, t)


def _helpers_of(pid: int) -> list[str]:
    from harness import helpers

    return helpers([pid])


def test_kill_heap_while_tracking_stops_tracking_within_seconds(pk, target):
    t = target("mem_selfcheck", "--duration", 120)
    threads0 = proc.stat(t.pid).num_threads
    p = pk.spawn("heap", "--pid", t.pid, "-d", 60, "-o", _old_output(pk, "heap.perfkit"))
    assert wait_until(lambda: proc.maps_mention(t.pid, "/memray/_memray") and not tracing(t.pid), 40)
    time.sleep(1.0)
    _kill(p)
    # the guard runs memray detach: memray's timer thread is gone long before the 60 s
    assert wait_until(lambda: proc.stat(t.pid).num_threads == threads0 and not tracing(t.pid), 25), \
        proc.stat(t.pid).num_threads
    assert_no_helpers([t.pid])
    assert_unharmed(t)
    assert (pk.out / "heap.perfkit").read_text() == OLD
    _sweeps(pk, t)


def test_kill_heap_while_gdb_waits_on_a_blocked_target(pk, target):
    """The worst moment: gdb's int3 bytes are in malloc/free and perfkit dies."""
    t = target("blocked", "--sleep", 3600)
    p = pk.spawn("heap", "--pid", t.pid, "-d", 5)
    assert wait_until(lambda: tracing(t.pid) and "t" not in proc.thread_activity(t.pid)[2], 30)
    time.sleep(0.5)
    _kill(p)
    assert_no_helpers([t.pid])
    assert_unharmed(t)  # includes: code pages identical to the files (no breakpoint left)
    _sweeps(pk, t)


def test_kill_leaks(pk, target):
    t = target("mem_selfcheck", "--duration", 120)
    p = pk.spawn("leaks", "--pid", t.pid, "-d", 60, "-o", "report.html")
    time.sleep(2.0)
    _kill(p)
    assert_no_helpers([t.pid])
    assert_unharmed(t)
    assert not (pk.out / "report.html").exists()


@pytest.mark.parametrize("argv", [
    ["cpu", "--"], ["heap", "--"], ["leaks", "-d", "60", "--"],
], ids=["cpu-launched", "heap-launched", "leaks-launched"])
def test_kill_launched_program_dies_too(pk, argv):
    marker = f"perfkit-fault-{os.getpid()}-{argv[0]}"
    p = pk.spawn(*argv, PY, "-c", "import time, sys; time.sleep(120)", marker)
    assert wait_until(lambda: _marker_alive(marker), 30)
    time.sleep(0.5)
    _kill(p)
    assert wait_until(lambda: not _marker_alive(marker), 15), _marker_alive(marker)
    assert_no_helpers()


def test_kill_gate_compare_benchmark_dies_too(pk):
    marker = f"perfkit-fault-{os.getpid()}-gate"
    cmd = f"{PY} -c 'import time; time.sleep(120)' {marker}"
    p = pk.spawn("gate", "compare", "--base-cmd", cmd, "--head-cmd", cmd, "-m", "cpu", "--repetitions", "2",
                 "--max-repetitions", "2", "--warmups", "0", "--timeout", "300")
    assert wait_until(lambda: _marker_alive(marker), 30)
    _kill(p)
    assert wait_until(lambda: not _marker_alive(marker), 15), _marker_alive(marker)
    assert_no_helpers()


def test_kill_affinity_tune_workload_dies_too(pk):
    marker = f"perfkit-fault-{os.getpid()}-tune"
    p = pk.spawn("affinity", "tune", "-w", "1", "--timeout", "300", "--", PY, "-c",
                 "import time; time.sleep(120)", marker, "{workers}")
    assert wait_until(lambda: _marker_alive(marker), 30)
    _kill(p)
    assert wait_until(lambda: not _marker_alive(marker), 15), _marker_alive(marker)
    assert_no_helpers()


def test_kill_triage_leaves_target_and_sweeps_staging(pk, target):
    t = target("mem_selfcheck", "--duration", 120)
    p = pk.spawn("triage", "--pid", t.pid, "-b", "20s", "-o", "bundle")
    time.sleep(2.5)
    _kill(p)
    assert_no_helpers([t.pid])
    assert_unharmed(t)
    assert not (pk.out / "bundle").exists()
    res = pk.run("triage", "--pid", t.pid, "-b", "8s", "-o", "bundle", "--profile-top", "0")
    assert res.returncode == 0, res.stderr
    assert [e for e in os.listdir(pk.out) if e.startswith(".perfkit-")] == []
    assert_unharmed(t)


def test_kill_threads_watch(pk, target):
    t = target("mem_selfcheck", "--duration", 120)
    p = pk.spawn("threads", "--pid", t.pid, "--watch", "--interval", "0.2")
    time.sleep(2.0)
    _kill(p)
    assert_no_helpers([t.pid])
    assert_unharmed(t)


def test_kill_top(pk, target):
    t = target("mem_selfcheck", "--duration", 120)
    p = pk.spawn("top", "--pid", t.pid)
    assert wait_until(lambda: any("py-spy" in h for h in _helpers_of(t.pid)), 20)
    time.sleep(1.0)
    _kill(p)
    assert_no_helpers([t.pid])
    assert_unharmed(t)
