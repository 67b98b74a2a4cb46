"""Golden tests of the terminal tables at COLUMNS=80 and 200, from deterministic fixtures.

Each view is rendered at both widths and compared with tests/golden/<view>-<width>.txt
(``PERFKIT_UPDATE_GOLDEN=1`` rewrites them after a deliberate change; review the diff).
Beyond the exact text: no line is wider than the terminal, and no ``file:line`` token is
ever split across two lines (a shortened one ends in its line number).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from perfkit import paths
from perfkit.model import (
    ALLOC_OBJECTS,
    ALLOC_SPACE,
    CPU_NS,
    INUSE_OBJECTS,
    INUSE_SPACE,
    SAMPLES,
    Frame,
    Labels,
    ProfileBuilder,
    Recording,
)

GOLDEN = Path(__file__).parent / "golden"
WIDTHS = (80, 200)
MiB = 1 << 20
APP = "/srv/app"
STD = "/usr/lib/python3.11"
SITE = "/srv/venv/lib/python3.11/site-packages"


@pytest.fixture(autouse=True)
def _fixed_paths():
    paths.configure([], cwd=APP)
    yield
    paths.configure(None, cwd=None)


def _render(view, width: int) -> str:
    from rich.console import Console

    con = Console(width=width, record=True, color_system=None, force_terminal=False, file=open(os.devnull, "w"))
    con.print(view)
    return con.export_text()


def _check(name: str, view) -> None:
    for width in WIDTHS:
        text = _render(view, width)
        assert max(len(ln) for ln in text.splitlines()) <= width, text
        # a line may end in a path only if it ends with its line number (no "file.py:" / "42" split)
        for ln in text.splitlines():
            assert not re.search(r"\.py:?$", ln.rstrip()), ln
        path = GOLDEN / f"{name}-{width}.txt"
        if os.environ.get("PERFKIT_UPDATE_GOLDEN"):
            path.write_text(text)
        assert path.exists(), f"missing {path}: run with PERFKIT_UPDATE_GOLDEN=1"
        assert text == path.read_text(), f"{name} at {width} columns differs from {path}"


def heap_profile():
    b = ProfileBuilder([ALLOC_SPACE, ALLOC_OBJECTS, INUSE_SPACE, INUSE_OBJECTS])
    main = Frame("main", f"{APP}/service/server.py", 88)
    handler = Frame("handle_request", f"{APP}/service/handlers/records.py", 42)
    dumps = Frame("dumps", f"{STD}/json/__init__.py", 231)
    encode = Frame("iterencode", f"{STD}/json/encoder.py", 258)
    tab = Frame("_format_table", f"{SITE}/tabulate/__init__.py", 2726)
    report = Frame("render_report_for_the_quarterly_dashboard", f"{APP}/service/reports.py", 17)
    imp = [Frame("_find_and_load", "<frozen importlib._bootstrap>", 1176),
           Frame("_call_with_frames_removed", "<frozen importlib._bootstrap>", 241),
           Frame("<module>", f"{SITE}/pandas/core/frame.py", 1)]
    lab = Labels(4242, 1, None)
    b.add([main, handler, dumps, encode], (40 * MiB, 20000, 30 * MiB, 15000), lab)
    b.add([main, handler], (2 * MiB, 10, 1 * MiB, 5), lab)
    b.add([main, report, tab], (12 * MiB, 3000, 6 * MiB, 1500), lab)
    b.add(imp, (9 * MiB, 7000, 8 * MiB, 6000), lab)
    b.series = {"heap_bytes": [[0.0, 0], [1.0, 20 * MiB], [2.0, 45 * MiB]],
                "rss_bytes": [[0.0, 60 * MiB], [1.0, 80 * MiB], [2.0, 110 * MiB]]}
    p = b.build()
    p.recording = Recording.from_json({
        "kind": "heap", "target": "pid 4242", "pid": 4242, "attached": True, "duration_s": 2.0,
        "peak_heap_bytes": 45 * MiB, "peak_rss_bytes": 110 * MiB, "end_heap_bytes": 45 * MiB,
        "end_rss_bytes": 110 * MiB,
        "totals": {"alloc_bytes": 63 * MiB, "alloc_count": 30010, "inuse_bytes": 45 * MiB, "inuse_count": 22505},
        "peak_top": [{"function": "iterencode", "file": encode.file, "line": 258, "bytes": 30 * MiB, "count": 15000,
                      "user_function": "handle_request", "user_file": handler.file, "user_line": 42,
                      "import": False}]})
    return p


def cpu_profile():
    b = ProfileBuilder([SAMPLES, CPU_NS])
    main = Frame("main", f"{APP}/service/server.py", 88)
    loop = Frame("serve_forever", f"{STD}/socketserver.py", 233)
    handler = Frame("handle_request", f"{APP}/service/handlers/records.py", 40)
    loads = Frame("raw_decode", f"{STD}/json/decoder.py", 353)
    new = Frame("Base.__new__", f"{SITE}/sqlalchemy/orm/decl_api.py", 1502)
    crunch = Frame("crunch", f"{APP}/service/jobs/nightly_reconciliation_of_accounts.py", 1204)
    period = 10_000_000
    for stack, n, lab in (([main, loop, handler, loads], 420, Labels(4242, 4243, "worker-1")),
                          ([main, loop, handler, new], 130, Labels(4242, 4244, "worker-2")),
                          ([main, loop, handler], 90, Labels(4242, 4244, "worker-2")),
                          ([main, crunch], 360, Labels(4250, 4250, "MainThread"))):
        b.add(stack, (n, n * period), lab)
    p = b.build()
    p.default_index = 1
    return p


def test_heap_view_golden():
    from perfkit.analysis.heap import summarize
    from perfkit.render.heap_view import HeapView

    p = heap_profile()
    _check("heap", HeapView(summarize(p, limit=5), series=p.series))


def test_cpu_top_and_thread_tables_golden():
    from perfkit.analysis.top import by_thread, top
    from perfkit.analysis.yourcode import dominant_user_frames
    from perfkit.render.terminal import ThreadTable, TopTable

    p = cpu_profile()
    rows = [r for r in top(p, 1) if r.self_value > 0 or r.total_pct >= 5][:8]
    yours = dominant_user_frames(p, 1, lambda f: (f.function, f.file))
    names = {(4242, 4243): "pool-1", (4242, None): "python3", (4250, None): "python3", (4250, 4250): "python3"}
    _check("cpu-top", TopTable(rows, unit="nanoseconds", title="Top functions by self CPU time (pid 4242)",
                               value_label="self", yours=yours))
    _check("cpu-threads", ThreadTable(by_thread(p, 1), unit="nanoseconds", os_names=names))


def test_diff_view_golden():
    from perfkit.analysis.diff import diff
    from perfkit.render.diff_view import DiffView

    def prof(weights, duration):
        b = ProfileBuilder([SAMPLES, CPU_NS])
        main = Frame("main", f"{APP}/service/server.py", 88)
        for chain, n in weights:
            frames = [main] + [Frame(fn, f"{APP}/service/{fl}", ln) for fn, fl, ln in chain]
            b.add(frames, (n, n * 10_000_000), Labels(1, 1, "MainThread"))
        p = b.build()
        p.default_index = 1
        p.recording = Recording(kind="cpu", duration_s=duration, requested_rate=100)
        return p

    base = prof([([("parse", "parse.py", 20)], 200), ([("validate", "checks.py", 53), ("check_rows", "checks.py", 49)],
                                                       200), ([("render", "views/render_templates.py", 45)], 100)],
                10.0)
    head = prof([([("parse", "parse.py", 20)], 205), ([("check_rows", "checks.py", 49)], 195),
                 ([("render", "views/render_templates.py", 45)], 98), ([("new_feature", "features.py", 57)], 250)],
                10.0)
    _check("diff", DiffView(diff(base, head)))


def test_threads_view_golden():
    from perfkit.threads.table import ThreadsView
    from perfkit.threads.view import ThreadInfo, group

    wait = [{"name": "Condition.wait", "filename": f"{STD}/threading.py", "line": 327},
            {"name": "get", "filename": f"{STD}/queue.py", "line": 171},
            {"name": "idle_worker", "filename": f"{APP}/service/pool.py", "line": 40}]
    sync = [{"name": "accept", "filename": f"{SITE}/gunicorn/workers/sync.py", "line": 35},
            {"name": "run_for_one", "filename": f"{SITE}/gunicorn/workers/sync.py", "line": 125}]
    threads = [ThreadInfo(pid=100 + (i % 2), tid=1000 + i, name=f"worker-{i}", active=False, owns_gil=False,
                          cpu_pct=0.0, frames=list(wait)) for i in range(4)]
    threads.append(ThreadInfo(pid=101, tid=101, name="MainThread", active=True, owns_gil=True, cpu_pct=93.5,
                              frames=list(sync)))
    _check("threads", ThreadsView(pid=100, threads=threads, groups=group(threads)))
