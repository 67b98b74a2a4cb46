"""Heap summaries and their terminal view on a small hand-made profile (no live process)."""

from __future__ import annotations

import sys

import pytest

from perfkit.analysis.heap import explain_rss, for_leaks, summarize, top_sites
from perfkit.model import (
    ALLOC_OBJECTS,
    ALLOC_SPACE,
    INUSE_OBJECTS,
    INUSE_SPACE,
    Frame,
    Labels,
    ProfileBuilder,
    Recording,
)

MiB = 1 << 20
EVIL = "[bold red]<script>alert(1)</script>\x1b[2J"


def _profile(launched: bool = False):
    b = ProfileBuilder([ALLOC_SPACE, ALLOC_OBJECTS, INUSE_SPACE, INUSE_OBJECTS])
    main = Frame("main", "/app/job.py", 10)
    leak = Frame("leak", "/app/job.py", 25)
    churn = Frame("churn", "/app/job.py", 29)
    lib = Frame("loads", "/usr/lib/python3.11/json/decoder.py", 353)
    evil = Frame(EVIL, "/app/[red]x.py", 7)
    lab = Labels(42, 1, None)
    b.add([main, leak], (4 * MiB, 256, 4 * MiB, 256), lab)
    b.add([main, churn], (32 * MiB, 4096, 8192, 1), lab)
    b.add([main, lib], (2 * MiB, 100, 0, 0), Labels(42, 2, "worker"))
    b.add([main, evil], (1000, 1, 1000, 1), lab)
    b.series = {"heap_bytes": [[0.0, 0], [1.0, 2 * MiB], [2.0, 4 * MiB]],
                "rss_bytes": [[0.0, 30 * MiB], [1.0, 33 * MiB], [2.0, 35 * MiB]]}
    p = b.build()
    p.recording = Recording.from_json({"kind": "heap", "target": "pid 42", "pid": 42, "launched": launched,
                                       "attached": not launched, "duration_s": 2.0,
                       "peak_heap_bytes": 5 * MiB, "peak_rss_bytes": 35 * MiB, "end_heap_bytes": 4 * MiB,
                       "end_rss_bytes": 35 * MiB,
                       "totals": {"alloc_bytes": 38 * MiB + 1000, "alloc_count": 4453,
                                  "inuse_bytes": 4 * MiB + 9192, "inuse_count": 258},
                       "peak_top": [{"function": "leak", "file": "/app/job.py", "line": 25, "bytes": 4 * MiB,
                                     "count": 256}]})
    return p


def test_top_sites_rank_by_allocated_and_alive():
    p = _profile()
    alloc = top_sites(p, "alloc_space", "alloc_objects")
    assert [(s.function, s.line) for s in alloc[:3]] == [("churn", 29), ("leak", 25), ("loads", 353)]
    assert alloc[0].bytes == 32 * MiB and alloc[0].count == 4096
    assert alloc[2].caller == "main /app/job.py:10"  # a library site points at the user's line
    alive = top_sites(p, "inuse_space", "inuse_objects")
    assert (alive[0].function, alive[0].bytes, alive[0].count) == ("leak", 4 * MiB, 256)
    assert abs(sum(s.pct for s in alive) - 100.0) < 1e-6


def test_summary_numbers_and_json():
    s = summarize(_profile(), limit=2)
    doc = s.to_json()
    assert doc["peak_heap_bytes"] == 5 * MiB and doc["peak_rss_bytes"] == 35 * MiB
    assert doc["totals"]["inuse_count"] == 258
    assert len(doc["top_allocated"]) == 2 and doc["top_alive"][0]["line"] == 25
    assert doc["peak_sites"][0]["pct"] == pytest.approx(80.0)


def test_rss_explanation_attached_vs_launched():
    att = explain_rss(_profile(launched=False))
    assert att.attached and att.tracked_pct == pytest.approx(100 * 4 / 35)
    text = " ".join(att.lines)
    assert "11% of the process's 35.0 MiB RSS" in text and "before perfkit attached" in text
    assert "RSS changed by +5.0 MiB and the tracked heap by +4.0 MiB" in text
    launched = explain_rss(_profile(launched=True))
    assert not launched.attached and "before perfkit attached" not in " ".join(launched.lines)
    p = _profile()
    p.recording.heap.end_heap_bytes = 50 * MiB
    assert "exceeds RSS" in " ".join(explain_rss(p).lines)


def test_leaks_view_weighs_by_inuse():
    p = for_leaks(_profile())
    assert str(p.sample_types[p.default_index]) == "inuse_space/bytes"
    assert _profile().default_index == 0


def _render(view, width: int = 220) -> str:
    from rich.console import Console

    con = Console(record=True, width=width, color_system=None, force_terminal=False)
    con.print(view)
    return con.export_text()


def test_view_shows_tables_and_escapes_untrusted_names():
    from perfkit.render.heap_view import HeapView

    p = _profile()
    out = _render(HeapView(summarize(p), series=p.series))
    assert "peak heap 5.0 MiB · peak RSS 35.0 MiB" in out
    assert "Still alive at the end" in out and "Top allocating lines" in out
    assert "/app/job.py:25" in out and "4.0 MiB" in out
    assert "[bold red]<script>alert(1)</script>\\x1b[2J" in out  # shown as text, never as markup
    assert "\x1b" not in out
    assert "/app/[red]x.py:7" in out
    leaks = _render(HeapView(summarize(p), leaks=True))
    assert "Top allocating lines" not in leaks and "Still alive" in leaks


def test_sparkline():
    from perfkit.render.heap_view import sparkline

    assert sparkline([[0, 1], [1, 2], [2, 3]]) == "▁▅█"
    assert sparkline([[0, 5], [1, 5]]) == "▁▁"
    assert len(sparkline([[i, i] for i in range(1000)], width=40)) == 40
    assert sparkline([]) == ""


@pytest.mark.parametrize("command, interp, prog", [
    (["python3", "app.py", "-x"], ["python3"], ["app.py", "-x"]),
    (["python", "-u", "-X", "dev", "-m", "pkg.mod", "a"], ["python", "-u", "-X", "dev"], ["-m", "pkg.mod", "a"]),
    ([sys.executable, "-c", "print(1)"], [sys.executable], ["-c", "print(1)"]),
])
def test_split_command(command, interp, prog):
    from perfkit.tools.memray import split_command

    assert split_command(command) == (interp, prog)


def test_run_argv_wraps_with_memray_run(tmp_path):
    from perfkit.tools.memray import MemrayOptions, run_argv

    argv = run_argv(["python", "-u", "app.py", "--n", "3"], "/tmp/x.bin", MemrayOptions(native=True))
    assert argv == ["python", "-u", "-m", "memray", "run", "-q", "-f", "-o", "/tmp/x.bin",
                    "--native", "app.py", "--n", "3"]
    script = tmp_path / "tool"
    script.write_text(f"#!{sys.executable}\nprint(1)\n")
    script.chmod(0o755)
    assert run_argv([str(script), "a"], "o.bin", MemrayOptions())[:2] == [sys.executable, "-m"]


def test_split_command_rejects_non_python(tmp_path):
    from perfkit.errors import NotPython, UsageError
    from perfkit.tools.memray import split_command

    with pytest.raises(NotPython):
        split_command(["/bin/sleep", "1"])
    with pytest.raises(UsageError):
        split_command(["python", "-u"])


def test_drop_attach_overhead_removes_only_memray_threads():
    from perfkit.formats.memray_capture import NO_STACK
    from perfkit.tools.memray_overhead import drop_attach_overhead

    b = ProfileBuilder([ALLOC_SPACE, ALLOC_OBJECTS, INUSE_SPACE, INUSE_OBJECTS])
    thr = Frame("__init__", "/usr/lib/python3.11/threading.py", 265)
    user = Frame("leak", "/app/job.py", 25)
    b.add([thr], (546, 1, 546, 1), Labels(7, 1, None))  # memray's injector thread
    b.add([NO_STACK], (16416, 2, 16416, 2), Labels(7, 2, "Thread-1"))  # its timer thread
    b.add([user], (4096, 1, 4096, 1), Labels(7, 3, None))  # the user's main thread
    b.add([thr], (64, 1, 64, 1), Labels(7, 4, "worker"))  # a named user thread: kept
    p = b.build()
    p.recording = Recording.from_json({"memray_main_thread_id": 1, "totals": {"alloc_bytes": 21122, "alloc_count": 5,
                                                                           "inuse_bytes": 21122, "inuse_count": 5}})
    out = drop_attach_overhead(p)
    assert {s.labels.tid for s in out.samples} == {3, 4}
    assert out.recording.heap.totals == {"alloc_bytes": 4160, "alloc_count": 2, "inuse_bytes": 4160, "inuse_count": 2}
    assert out.recording.heap.attach_overhead["threads"] == [1, 2]
    # an injector-thread id that ran user code (not attach mode's injector) is left alone
    p.recording.heap.memray_main_thread_id = 3
    assert {s.labels.tid for s in drop_attach_overhead(p).samples} >= {3, 4}


def test_memray_launcher_frames_are_stripped_from_stack_roots():
    from perfkit.formats.memray_capture import strip_launcher as _strip_launcher
    from perfkit.model import Frame

    run = Frame("_run_tracker", "/venv/lib/python3.11/site-packages/memray/commands/run.py", 58)
    runpy = Frame("run_path", "<frozen runpy>", 291)
    user = Frame("<module>", "/app/job.py", 3)
    leak = Frame("leak", "/app/job.py", 9)
    assert _strip_launcher([run, runpy, Frame("_run_code", "<frozen runpy>", 88), user, leak]) == [user, leak]
    assert _strip_launcher([user, leak]) == [user, leak], "attached captures have no launcher frames"
    assert _strip_launcher([runpy, user]) == [runpy, user], "runpy alone (python -m app) is the user's own"


def test_annotate_bounds_a_capture_by_the_time_perfkit_ran_it():
    # a header that reads back hours before perfkit began (seen once on an interrupted
    # attach: 28,684 s for a 1 s capture) must not reach the report
    import time

    from perfkit.model import Profile, Recording
    from perfkit.target import Target
    from perfkit.tools.memray import MemrayOptions, annotate

    started = time.time() - 1.5
    profile = Profile(frames=[], sample_types=[], samples=[])
    profile.recording = Recording(kind="heap", start=started - 28684.0, duration_s=28684.288)
    annotate(profile, Target(command=["python", "app.py"]), MemrayOptions(), started, None, True, False, [])
    assert profile.recording.start == started
    assert 1.4 <= profile.recording.duration_s <= 3.0
    ok = Profile(frames=[], sample_types=[], samples=[])
    ok.recording = Recording(kind="heap", start=started + 0.2, duration_s=1.1)
    annotate(ok, Target(command=["python", "app.py"]), MemrayOptions(), started, None, False, False, [])
    assert (ok.recording.start, ok.recording.duration_s) == (started + 0.2, 1.1)
