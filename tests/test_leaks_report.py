"""Leak report views (terminal, markdown, HTML/SVG) from a hand-built report: the data
they show, and that hostile names from the target are escaped everywhere."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET

from perfkit.leaks import findings as leak_findings
from perfkit.leaks import report as leak_report
from perfkit.leaks import trend
from perfkit.leaks.findings import Finding, LeakReport

EVIL = "<script>alert(1)</script>`*|_\x1b[31m"


def _report() -> LeakReport:
    fd_series = [(i * 0.2, 10 + i) for i in range(60)]
    mem_series = [(i * 0.2, 50e6) for i in range(60)]
    fds = Finding("fds", trend.assess("fds", fd_series), fd_series)
    fds.verdict.limit, fds.verdict.limit_source = 1024.0, "RLIMIT_NOFILE (soft)"
    fds.verdict.time_to_limit_s = trend.time_to_limit(fds.verdict.end_value, fds.verdict.slope.slope, 1024.0)
    fds.attribution = leak_findings.fd_attribution(
        [{"fd": 10 + i, "kind": "file", "target": f"/tmp/{EVIL}/x-{i}.log"} for i in range(5)],
        ("file", "socket", "pipe", "other"))
    mem = Finding("memory", trend.assess("memory", mem_series), mem_series)
    mem.attribution = {"available": True, "tool": "memray", "inuse_bytes": 1000, "seconds": 3.0,
                       "lines": [{"function": EVIL, "file": "/app/evil.py", "line": 7, "bytes": 1000, "pct": 100.0}]}
    return LeakReport(pid=42, started=0.0, duration=12, elapsed=12, interval=0.2, n_samples=60,
                      cost_per_sample_s=0.001, findings=[mem, fds], notes=[f"note {EVIL}"],
                      cmdline=["python", EVIL])


def test_fd_attribution_groups_by_pattern():
    att = _report().findings[1].attribution
    assert att["new_fds"] == 5
    assert att["groups"][0]["pattern"] == f"/tmp/{EVIL}/x-*.log"
    assert att["groups"][0]["count"] == 5


def test_html_escapes_and_plots():
    doc = leak_report.html_report(_report())
    assert "<script>" not in doc and "&lt;script&gt;" in doc
    assert "\x1b" not in doc
    svgs = re.findall(r"<svg.*?</svg>", doc, re.S)
    assert len(svgs) == 2
    for svg in svgs:
        root = ET.fromstring(svg)  # well-formed
        line = root.find("{http://www.w3.org/2000/svg}polyline")
        assert len(line.get("points").split()) == 60
    assert 'class="leak"' in doc and "fds" in doc
    assert "RLIMIT_NOFILE" in doc and "Mann-Kendall" in doc and "Thresholds" in doc


def test_markdown_escapes_and_states_thresholds():
    text = leak_report.markdown(_report())
    assert "<script>" not in text and "\x1b" not in text
    assert "| fds | **leak** |" in text
    assert "## Thresholds" in text and r"p \< 0.01" in text  # "<" escaped
    assert "x-\\*.log" in text  # the pattern, escaped
    assert "&lt;script&gt;" not in text and "\\<script\\>" in text


def test_terminal_summary_shows_verdicts_without_markup():
    from rich.console import Console

    buf = io.StringIO()
    Console(file=buf, width=200, color_system=None).print(leak_report.LeakSummary(_report()))
    out = buf.getvalue()
    assert "fds: LEAK" in out and "memory: STEADY" in out
    assert "[31m" in out and "\x1b" not in out  # escape shown, not executed
    assert EVIL.split("\x1b")[0] in out  # the name shown verbatim (no markup interpreted)
    assert "1 leak(s): fds" in out


def test_json_round_trips():
    import json

    doc = json.loads(json.dumps(_report().to_json(), allow_nan=False))
    assert doc["leaks"] == ["fds"]
    assert doc["verdicts"] == {"memory": "steady", "fds": "leak"}
    assert len(doc["series"]["fds"]) == 60


def test_thread_attribution_by_os_name_without_stacks():
    att = leak_findings.thread_attribution(None, {1, 2}, {1: "app", 2: "app", 3: "pool-3", 4: "pool-14", 5: "io"})
    assert att["available"] and att["new_threads"] == 3
    assert att["names"] == [{"pattern": "pool-*", "count": 2}, {"pattern": "io", "count": 1}]
    f = Finding("threads", trend.assess("threads", [(i * 0.2, i) for i in range(60)]), [], attribution=att)
    lines = leak_report.attribution_lines(f)
    assert "OS thread names: 2 × pool-*, 1 × io" in lines[1]
