"""perfkit.analysis.idle on hand-made py-spy profiles with known /proc CPU readings."""

from __future__ import annotations

import pytest

from perfkit import paths
from perfkit.analysis.idle import blocking_line, correct, is_blocking
from perfkit.model import CPU_NS, SAMPLES, Frame, Labels, ProfileBuilder, Recording

P = 10_000_000  # 100 Hz


@pytest.fixture(autouse=True)
def _cwd(tmp_path):
    paths.configure([], cwd=str(tmp_path))
    yield
    paths.configure(None, cwd=None)


def _profile(tmp_path, stacks, thread_cpu, *, idle=False):
    b = ProfileBuilder([SAMPLES, CPU_NS])
    for frames, n, tid in stacks:
        b.add(frames, (n, n * P), Labels(1, tid, f"t{tid}"))
    p = b.build()
    p.default_index = 1
    p.recording = Recording(kind="cpu", requested_rate=100, samples=sum(n for _, n, _ in stacks),
                            options={"idle": idle, "gil": False},
                            thread_cpu={"window_s": 5.0, "hz": 100, "threads": [
                                {"pid": 1, "tid": tid, "name": f"t{tid}", "new": False, "cpu_start_s": 10.0,
                                 "cpu_end_s": 10.0 + cpu, "covered_s": 5.0} for tid, cpu in thread_cpu.items()]})
    return p


def test_blocking_leaves_and_lines(tmp_path):
    src = tmp_path / "app.py"
    src.write_text("def main():\n    time.sleep(1)\n    x = ', '.join(y)\n    q.get()\n    d.get(k)\n")
    assert is_blocking("select", "/usr/lib/python3.11/selectors.py")
    assert is_blocking("epoll_wait", "libc.so.6") and is_blocking("__GI___poll", "")
    assert not is_blocking("select", "/srv/venv/lib/python3.11/site-packages/sqlalchemy/sql/_selectable.py")
    assert not is_blocking("wait", str(src))  # the user's own function named wait is work
    assert blocking_line(str(src), 2) and blocking_line(str(src), 4)
    assert not blocking_line(str(src), 3) and not blocking_line(str(src), 5) and not blocking_line(str(src), 99)


def test_sleeping_thread_is_idle_and_cpu_comes_from_proc(tmp_path):
    src = tmp_path / "app.py"
    src.write_text("def main():\n    time.sleep(30)\n\ndef work():\n    spin()\n")
    main = [Frame("<module>", str(src), 1), Frame("main", str(src), 2)]  # leaf line sleeps
    spin_a = [Frame("work", str(src), 5)]
    wait = [Frame("run", str(src), 5), Frame("wait", "/usr/lib/python3.11/threading.py", 327)]
    p = _profile(tmp_path, [(main, 20, 10), (spin_a, 380, 11), (wait, 30, 12), ([Frame("work", str(src), 5)], 90, 12)],
                 {10: 0.0, 11: 3.75, 12: 1.25})
    out, corr = correct(p)
    assert corr.blocking == 50  # 20 in main's time.sleep line, 30 in threading's wait
    assert out.recording.samples == 470 and out.recording.idle_correction["reclassified"] == 50
    cpu = {}
    for s in out.samples:
        cpu[s.labels.tid] = cpu.get(s.labels.tid, 0) + s.values[1]
    assert cpu == {11: 3_750_000_000, 12: 1_250_000_000}  # /proc's CPU time, spread over the samples
    assert corr.calibrated == 2
    assert "reclassified as idle" in corr.note()


def test_samples_beyond_a_threads_cpu_time_are_removed(tmp_path):
    src = tmp_path / "app.py"
    src.write_text("def loop():\n    handle()\n")
    busy = [Frame("loop", str(src), 2)]
    p = _profile(tmp_path, [(busy, 400, 1), (busy, 100, 2)], {1: 4.0, 2: 0.3})
    out, corr = correct(p)
    assert corr.ticks == 70  # thread 2 had CPU for 30 samples, not 100
    per = {}
    for s in out.samples:
        per[s.labels.tid] = per.get(s.labels.tid, 0) + s.values[0]
    assert per == {1: 400, 2: 30}


def test_within_noise_nothing_is_removed_and_idle_profiles_are_untouched(tmp_path):
    src = tmp_path / "app.py"
    src.write_text("def loop():\n    handle()\n")
    busy = [Frame("loop", str(src), 2)]
    p = _profile(tmp_path, [(busy, 104, 1)], {1: 1.0})  # 4 over 100 expected: within 3 sigma
    out, corr = correct(p)
    assert corr.ticks == 0 and sum(s.values[0] for s in out.samples) == 104
    q = _profile(tmp_path, [(busy, 104, 1)], {1: 0.0}, idle=True)
    assert correct(q)[0] is q and correct(q)[1].skipped


def test_the_timeline_follows_the_corrected_samples(tmp_path):
    from perfkit.model import Timeline

    src = tmp_path / "app.py"
    src.write_text("def main():\n    time.sleep(30)\n\ndef loop():\n    handle()\n")
    sleep = [Frame("main", str(src), 2)]
    busy = [Frame("loop", str(src), 5)]
    p = _profile(tmp_path, [(sleep, 3, 1), (busy, 100, 2)], {1: 0.0, 2: 0.5})  # thread 2: CPU for 50 samples
    order = [1] * 103
    for k in (0, 3, 8):
        order[k] = 0  # the three sleep events, interleaved with the 100 busy ones
    p.with_timeline(Timeline([k * P for k in range(len(order))], order, None, "ticks"))
    out, corr = correct(p)
    t = out.live_timeline()
    assert corr.blocking == 3 and corr.ticks == 50
    assert t is not None and len(t) == sum(s.values[0] for s in out.samples) == 50  # one event per sample left
    busy_events = [k * P for k, i in enumerate(order) if i == 1]
    assert list(t.start_ns) == busy_events[:50]  # the earliest events of the busy sample
