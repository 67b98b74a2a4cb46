"""`perfkit top`'s arithmetic on hand-made py-spy windows (no processes): ticks and the
achieved rate, GIL shares, the idle correction, sorting, threads and the plain snapshot."""

from __future__ import annotations

from perfkit.model import SAMPLES, Frame, Labels, ProfileBuilder
from perfkit.tools.pyspy_stream import WindowResult
from perfkit.top.keys import Keys
from perfkit.top.procwatch import ProcWatch, Reading
from perfkit.top.session import State, build
from perfkit.top.window import SlidingWindow, rows, thread_shares

MOD = Frame("<module>", "/app/main.py", 1)
A = Frame("spin_a", "/app/main.py", 10)
B = Frame("spin_b", "/app/main.py", 20)
WAIT = Frame("wait", "/usr/lib/python3.11/threading.py", 300)


def window(t0: float, counts: dict, *, rate: int = 100, seconds: float = 1.0, complete: bool = True,
           planned: int = 1) -> WindowResult:
    """A finished py-spy window starting at t0: ``counts`` maps (tid, leaf frame) -> samples."""
    b = ProfileBuilder([SAMPLES])
    for (tid, leaf), n in counts.items():
        b.add([MOD, leaf], (n,), Labels(None, tid, f"T{tid}"))
    return WindowResult(profile=b.build(), started=t0, ended=t0 + seconds, rate=rate, samples=sum(counts.values()),
                        planned_seconds=planned, complete=complete)


def test_ticks_and_achieved_rate_come_from_pyspy_interval_count():
    sw = SlidingWindow(span=10)
    sw.add(window(0.0, {(1, A): 99}, seconds=1.0))
    sw.add(window(1.0, {(1, A): 99}, seconds=1.25))  # late: py-spy took 1.25 s for its 100 intervals
    st = sw.stats()
    assert st.ticks == 2 * 99  # --duration 1 at 100 Hz: 100 intervals, the last one not sampled
    assert abs(st.achieved_rate - 198 / 2.25) < 1e-9
    sw.add(window(2.25, {(1, A): 50}, seconds=0.5, complete=False))  # stopped early: counted by its time
    assert sw.stats().ticks == 198 + 50


def test_achieved_rate_never_above_requested():
    sw = SlidingWindow(span=10)
    sw.add(window(0.0, {(1, A): 99}, seconds=0.95))
    assert sw.stats().achieved_rate == 100.0


def test_window_slides():
    sw = SlidingWindow(span=3)
    for i in range(6):
        sw.add(window(float(i), {(1, A if i < 3 else B): 99}))
    funcs = {r.function for r in rows(sw.merged(), sw.stats(), []) if r.own > 0}
    assert funcs == {"spin_b"} and sw.stats().windows == 3


def test_shares_gil_and_idle_correction():
    sw = SlidingWindow(span=10)
    # thread 1 burns spin_a on every tick; thread 2 is "active" in py-spy's eyes in wait() on
    # every tick too, but /proc says it used no CPU: it must not take half of the CPU.
    sw.add(window(0.0, {(1, A): 99, (2, WAIT): 99}))
    sw.add(window(0.0, {(1, A): 30}, rate=20, seconds=2.0, planned=2), gil=True)  # --gil: 2 s at 20 Hz
    st = sw.stats()
    prof = sw.merged()
    cpu = {1: (0.98, "worker"), 2: (0.0, "waiter")}
    threads = {t.tid: t for t in thread_shares(prof, st, cpu, sw.gil_counts())}
    assert threads[1].weight > 0.95 and threads[2].weight == 0.0
    assert abs(threads[1].gil - 30 / 39) < 1e-9 and threads[2].gil == 0.0
    table = {r.function: r for r in rows(prof, st, list(threads.values()))}
    assert abs(table["spin_a"].own - 1.0) < 1e-9 and table["wait"].own == 0.0
    # without /proc numbers nothing is corrected: the plain sample shares
    plain = {r.function: r for r in rows(prof, st, thread_shares(prof, st, None, {}))}
    assert abs(plain["spin_a"].own - 0.5) < 1e-9 and abs(plain["wait"].own - 0.5) < 1e-9


def test_sort_lines_and_one_thread():
    sw = SlidingWindow(span=10)
    sw.add(window(0.0, {(1, A): 60, (1, B): 20, (2, B): 19}))
    st = sw.stats()
    prof = sw.merged()
    ths = thread_shares(prof, st, None, {})
    own = [r.function for r in rows(prof, st, ths)]
    assert own[:2] == ["spin_b", "spin_a"] or own[:2] == ["spin_a", "spin_b"]
    by_total = rows(prof, st, ths, sort="total")
    assert by_total[0].function == "<module>" and abs(by_total[0].total - 1.0) < 1e-9
    only1 = {r.function: r.own for r in rows(prof, st, ths, thread=1) if r.own}
    assert abs(only1["spin_a"] - 0.75) < 1e-9 and abs(only1["spin_b"] - 0.25) < 1e-9
    lines = rows(prof, st, ths, by_line=True)
    assert {(r.function, r.line) for r in lines} >= {("spin_a", 10), ("spin_b", 20), ("<module>", 1)}


def test_keys_change_state():
    s = State()
    threads = [object(), object()]
    for k, check in (("2", lambda: s.sort == "total"), ("1", lambda: s.sort == "own"),
                     ("l", lambda: s.by_line), ("t", lambda: not s.show_threads), (" ", lambda: s.paused),
                     ("T", lambda: s.thread_index == 0), ("T", lambda: s.thread_index == 1),
                     ("T", lambda: s.thread_index == -1), ("q", lambda: s.quit)):
        assert s.key(k, lambda: threads)
        assert check(), k
    assert not s.key("x", lambda: threads)


def test_plain_snapshot_escapes_names_and_shows_trends():
    evil = Frame("\x1b[2Jboom\u202e", "/app/x.py", 3)
    sw = SlidingWindow(span=10)
    sw.add(window(0.0, {(1, evil): 99}))
    watch = ProcWatch(pid=1)
    for i, (cpu, rss) in enumerate([(0.0, 10 << 20), (0.5, 20 << 20), (1.0, 40 << 20)]):
        watch.readings.append(Reading(float(i) * 0.5, {1: (cpu, "main")}, rss, cpu, "R"))
    frame = build(sw, watch, "pid 1 (python app.py)", State())
    text = frame.text()
    assert "\x1b" not in text and "\\x1b[2Jboom" in text
    assert "RSS 40.0 MiB" in text and "threads 1" in text
    assert "rate 99/100 Hz" in text
    assert frame.to_json()["rows"][0]["function"] == "\x1b[2Jboom\u202e"


def test_keys_without_a_terminal_just_wait():
    k = Keys(enabled=False)
    with k:
        assert k.read(0.01) == ""
