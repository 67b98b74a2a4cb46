"""Grouping identical stacks and the terminal view, from hand-made py-spy dumps."""

from __future__ import annotations

import io

from perfkit.threads.table import ThreadsView, sparkline
from perfkit.threads.view import build_threads, group, is_library
from perfkit.tools.pyspy import ThreadStack

EVIL = "[bold red]boom[/] <script>\x1b[2J"


def _frame(name, file, line):
    return {"name": name, "filename": file, "short_filename": file.rsplit("/", 1)[-1], "line": line}


WAIT = [_frame("Condition.wait", "/usr/lib/python3.11/threading.py", 327),
        _frame("Queue.get", "/usr/lib/python3.11/queue.py", 171),
        _frame("idle_worker", "/srv/app/pool.py", 40)]


def _stacks():
    out = [ThreadStack(pid=1, thread_id=i, os_thread_id=100 + i, name=f"w-{i}", active=False, owns_gil=False,
                       frames=list(WAIT)) for i in range(12)]
    out.append(ThreadStack(pid=1, thread_id=99, os_thread_id=99, name=EVIL, active=True, owns_gil=True,
                           frames=[_frame(EVIL, "/srv/app/evil.py", 3)]))
    return out


def test_identical_stacks_form_one_group_largest_first():
    cpu = {100 + i: {"cpu_pct": 0.0, "name": f"w-{i}", "new": False} for i in range(12)}
    cpu[99] = {"cpu_pct": 97.5, "name": "x", "new": True}
    groups = group(build_threads(_stacks(), cpu))
    assert [g.count for g in groups] == [12, 1]
    assert groups[0].summary() == ("12 threads in Condition.wait (<stdlib>/threading.py:327) from idle_worker "
                                   "(/srv/app/pool.py:40)")
    assert groups[1].cpu_pct == 97.5 and groups[1].running == 1
    assert groups[1].threads[0].new and groups[1].threads[0].owns_gil


def test_a_different_line_is_a_different_group():
    stacks = _stacks()[:2]
    stacks[1].frames = [dict(stacks[1].frames[0], line=328)] + stacks[1].frames[1:]
    assert [g.count for g in group(build_threads(stacks))] == [1, 1]


def test_library_paths():
    assert is_library("/usr/lib/python3.11/threading.py")
    assert is_library("/venv/lib/python3.12/site-packages/urllib3/pool.py")
    assert not is_library("/srv/app/pool.py")


def test_terminal_view_never_interprets_target_text():
    from rich.console import Console

    infos = build_threads(_stacks())
    buf = io.StringIO()
    Console(file=buf, width=200, color_system=None).print(ThreadsView(pid=1, threads=infos, groups=group(infos)))
    out = buf.getvalue()
    assert "[bold red]boom[/]" in out  # shown literally, not as markup
    assert "\x1b" not in out and "\\x1b[2J" in out
    assert "13 threads · 1 running · 12 idle · GIL held by" in out


def test_sparkline():
    assert sparkline([1, 1, 1]) == "▁▁▁"
    assert sparkline([0, 7]) == "▁█"


def test_idle_threads_beyond_the_row_limit_fold_into_one_line_and_busy_ones_never_do():
    from rich.console import Console

    cpu = {100 + i: {"cpu_pct": 0.1 * (i % 3), "name": f"w-{i}", "new": False} for i in range(12)}
    cpu[99] = {"cpu_pct": 0.0, "name": "x", "new": False}  # running and the GIL holder, yet no CPU this window
    infos = build_threads(_stacks(), cpu)
    view = ThreadsView(pid=1, threads=infos, groups=group(infos), max_rows=4)
    shown, folded = view.rows()
    assert len(shown) == 5 and len(folded) == 8  # 4 by CPU, then the GIL holder that sorted last
    assert shown[-1].owns_gil and all(not t.active for t in folded)
    assert {t.tid for t in shown} | {t.tid for t in folded} == {t.tid for t in infos}
    assert max(t.cpu_pct for t in folded) <= min(t.cpu_pct for t in shown[:4])
    buf = io.StringIO()
    Console(file=buf, width=200, color_system=None).print(view)
    out = buf.getvalue()
    assert "… 8 more idle threads, at most 0.1 % CPU each: their stacks are in the groups above" in out
    assert "12 threads in Condition.wait" in out  # the group still counts every one
    view.max_rows = 0
    assert view.rows() == (sorted(infos, key=lambda t: (-(t.cpu_pct or 0.0), t.pid, t.tid or 0)), [])
