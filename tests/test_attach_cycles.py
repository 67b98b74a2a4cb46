"""100 attach/detach cycles of `cpu` (py-spy) and 20 of `heap` (memray attach through gdb)
on one self-checking target (scenarios/mem_selfcheck.py): afterwards it is alive, still
computes the right digests, and carries nothing of ours — no extra thread, fd or pipe,
TracerPid 0, code pages identical to its files, memory grown by no more than memray's
one-time cost, nothing printed by memray.

memray's one-time cost, left by the first heap attach and never again: its modules and
native library stay imported (a few MiB of RSS), and that library's libunwind opens one
self-pipe (both ends in the target, O_NONBLOCK|O_CLOEXEC: ``_ULx86_64_init_mem_validate``,
seen with ``strace -k``) that it keeps for the life of the process.

Short recordings keep this to about a minute and a half on an idle 2-core machine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from conftest import PY, SCENARIOS
from perfkit.procs import codecheck, proc

pytestmark = pytest.mark.live

CPU_CYCLES = 100
HEAP_CYCLES = 20
MEMRAY_ONE_TIME = 24 << 20  # memray's modules and native library, loaded once by the first attach
PER_CYCLE_SLACK = 4 << 20  # after the first heap cycle: allocator noise, never a per-cycle leak


def _fds(pid: int) -> dict[str, int]:
    kinds = {"pipe": 0, "socket": 0, "other": 0}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        kinds["pipe" if link.startswith("pipe:") else "socket" if link.startswith("socket:") else "other"] += 1
    return kinds


def _settled(pid: int, threads: int, fds: dict, timeout: float = 5.0) -> tuple[int, dict]:
    end = time.monotonic() + timeout
    while True:
        now_t, now_f = proc.stat(pid).num_threads, _fds(pid)
        if (now_t == threads and now_f == fds) or time.monotonic() > end:
            return now_t, now_f
        time.sleep(0.05)


def _status(p: subprocess.Popen) -> tuple[int, int]:
    p.send_signal(signal.SIGUSR1)
    while True:
        line = p.stdout.readline()
        assert line, "target ended"
        if line.startswith("status"):
            kv = dict(part.split("=") for part in line.split()[1:])
            return int(kv["rounds"]), int(kv["failures"])


@pytest.fixture
def selfcheck(tmp_path):
    err = open(tmp_path / "target.err", "w")
    p = subprocess.Popen([PY, str(SCENARIOS / "mem_selfcheck.py"), "--items", "1500", "--duration", "900"],
                         stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True)
    assert p.stdout.readline().startswith("ready")
    yield p, tmp_path / "target.err"
    p.kill()
    p.wait()
    err.close()


def test_cpu_and_heap_attach_detach_cycles_leave_nothing_behind(selfcheck, tmp_path, monkeypatch):
    from perfkit.target import Target
    from perfkit.tools import memray, pyspy

    p, errfile = selfcheck
    pid = p.pid
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    threads0, fds0 = proc.stat(pid).num_threads, _fds(pid)
    rss0 = proc.rss(pid)
    rounds0, failures = _status(p)
    assert failures == 0

    for i in range(CPU_CYCLES):
        res = pyspy.record(Target(pid=pid), pyspy.RecordOptions(duration=0.15, rate=200))
        assert res.profile.recording.samples is not None
        assert proc.tracer(pid) == 0, f"cpu cycle {i}: still traced"
    t, f = _settled(pid, threads0, fds0)
    assert (t, f) == (threads0, fds0), f"after {CPU_CYCLES} cpu cycles: threads {t}, fds {f}"
    assert proc.rss(pid) - rss0 < PER_CYCLE_SLACK, (proc.rss(pid), rss0)
    rounds1, failures = _status(p)
    assert failures == 0 and rounds1 > rounds0

    rss_after_first = None
    samples = []
    for i in range(HEAP_CYCLES):
        res = memray.capture(Target(pid=pid), memray.MemrayOptions(duration=1))
        heap = res.profile.recording.heap
        assert heap is not None and heap.totals.get("alloc_count", 0) > 0, f"heap cycle {i}: nothing tracked"
        assert not res.interrupted and not res.target_exited
        if i == 0:  # memray's one-time cost: libunwind's self-pipe (see the docstring)
            fds1 = dict(fds0, pipe=fds0["pipe"] + 2)
        t, f = _settled(pid, threads0, fds1)
        assert (t, f) == (threads0, fds1), f"heap cycle {i}: threads {t}, fds {f} (before: {threads0}, {fds1})"
        assert proc.tracer(pid) == 0
        if i == 0:
            rss_after_first = proc.rss(pid)
        samples.append(proc.rss(pid))
    assert not codecheck.stray_breakpoints(pid)
    assert rss_after_first - rss0 < MEMRAY_ONE_TIME, (rss_after_first, rss0)
    assert max(samples) - rss_after_first < PER_CYCLE_SLACK, samples
    rounds2, failures = _status(p)
    assert failures == 0 and rounds2 > rounds1, (rounds1, rounds2, failures)
    assert p.poll() is None and proc.state(pid) in ("R", "S")
    assert "memray" not in errfile.read_text()
    assert os.listdir(tmp_path) == ["target.err"], os.listdir(tmp_path)
