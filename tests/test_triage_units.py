"""triage pieces on small fixtures: findings, escaping in every view, budget parsing,
/proc and cgroup readers on fake trees, the bounded pool's deadline."""

from __future__ import annotations

import io
import threading
import time
from dataclasses import replace

import pytest

from perfkit.triage import findings as fnd
from perfkit.triage import host
from perfkit.triage import report as rep
from perfkit.triage.facts import Event, Problem
from perfkit.triage.hostfacts import (
    CgroupFacts,
    Cgroups,
    CpuModes,
    HostFacts,
    HostProc,
    Load,
    Memory,
    Pressure,
    ProcessTable,
    PsiLine,
    Vmstat,
)
from perfkit.triage.model import (
    FdCounts,
    NofileLimit,
    ProcessFacts,
    ProcRecord,
    StackFrame,
    ThreadCpu,
    ThreadDump,
    TopRow,
)
from perfkit.triage.pool import BoundedPool
from perfkit.triage.summary import BriefProc, Collection, HostBrief, Privilege, ProcessRow, Summary

PY_THREADING = "/usr/lib/python3.11/threading.py"


def _thread(name, tid, leaf, line, src, *, active=False, filename="/srv/app.py", gil=False):
    return ThreadDump(pid=1, thread_id=tid, os_thread_id=tid, name=name, active=active, owns_gil=gil,
                      frames=(StackFrame(leaf, filename, line), StackFrame("run", PY_THREADING, 982)),
                      leaf_source=src)


def _deadlocked():
    return [_thread("locker-1", 11, "take_a_then_b", 36, "with LOCK_B:  # x"),
            _thread("locker-2", 12, "take_b_then_a", 43, "with self._lock_a:"),
            _thread("idle-worker-0", 13, "Condition.wait", 327, "waiter.acquire()", filename=PY_THREADING),
            _thread("MainThread", 10, "main", 86, "time.sleep(args.duration)")]


def _facts(pid=100, **kw):
    base = dict(pid=pid, status="sleeping", cpu_seconds=1.0, rss=1 << 20, vms=1 << 22, num_threads=1, create_time=0.0)
    base.update(kw)
    return ProcessFacts(**base)


def _proc(pid=100, facts=None, **kw):
    kw.setdefault("stacks", ())
    return ProcRecord(pid=pid, name="python3", script="app.py", facts=_facts(pid, **(facts or {})), **kw)


# --------------------------------------------------------------------------- lock waits

def test_lock_wait_classification():
    th = _deadlocked()
    assert [fnd.is_lock_wait(t) for t in th] == [True, True, False, False]
    assert not fnd.is_lock_wait(_thread("x", 1, "f", 1, "lock.acquire()", active=True))
    assert fnd.is_lock_wait(_thread("x", 1, "f", 1, "if not self.mutex.acquire(timeout=5):"))


def test_deadlock_needs_the_same_place_twice():
    th = _deadlocked()
    found = fnd.lock_findings(_proc(stacks=th, stacks2=th, stacks2_delay_s=2.0))
    assert [f.kind for f in found] == ["deadlock"]
    f = found[0]
    assert f.severity == "high" and f.pid == 100
    assert '"locker-1" (11) in take_a_then_b (app.py:36)' in f.detail
    assert '"locker-2" (12) in take_b_then_a (app.py:43)' in f.detail
    assert "idle-worker" not in f.detail and "2.0 s apart" in f.detail
    assert f.evidence == ["procs/100/stacks.txt", "procs/100/stacks.json"]
    moved = list(th)
    moved[0] = _thread("locker-1", 11, "take_a_then_b", 37, "x = 1")
    moved[1] = _thread("locker-2", 12, "other", 50, "with lock:")
    assert fnd.lock_findings(_proc(stacks=th, stacks2=moved)) == []
    one = fnd.lock_findings(_proc(stacks=th, stacks2=[th[0]]))
    assert [x.kind for x in one] == ["lock_wait"] and one[0].severity == "warn"


# --------------------------------------------------------------------------- per process

def test_cpu_fd_and_stopped_findings():
    hot = _proc(1, facts={"cpu_percent": 97.0, "threads": {"1": ThreadCpu(5.0, 96.0)}},
                stacks=[_thread(None, 1, "spin", 20, "x += 1", active=True)],
                profile_top=(TopRow("spin", "app.py:20", "/srv/app.py", 20, 88.0, 90.0),),
                flame="procs/1/cpu.svg")
    f = fnd.cpu_findings(hot)[0]
    assert (f.kind, f.severity) == ("cpu_hog", "high")
    assert "pegs a core (97% CPU)" in f.title and "spin (app.py:20) 88% self" in f.detail
    assert f.evidence[0] == "procs/1/cpu.svg"
    starved = _proc(2, facts={"cpu_percent": 45.0}, profile_busy_percent=99.0)
    assert "on CPU or runnable in 99% of samples" in fnd.cpu_findings(starved)[0].title
    assert fnd.cpu_findings(_proc(3, facts={"cpu_percent": 30.0})) == []
    multi = fnd.cpu_findings(_proc(4, facts={"cpu_percent": 210.0}))[0]
    assert "uses 2.1 cores" in multi.title

    near = _proc(5, facts={"fds": FdCounts(58, {"file": 55, "pipe": 3}), "nofile_limit": NofileLimit(64, 4096)})
    f = fnd.fd_findings(near)[0]
    assert (f.kind, f.severity) == ("fd_limit", "warn") and "58 of 64" in f.title and "55 file" in f.detail
    near = replace(near, facts=replace(near.facts, fds_at_end=62))
    f = fnd.fd_findings(near)[0]
    assert f.severity == "high" and "62 of 64" in f.title and "grew from 58 to 62" in f.detail
    low = _proc(6, facts={"fds": FdCounts(10), "nofile_limit": NofileLimit(64)})
    assert fnd.fd_findings(low) == []
    low = replace(low, facts=replace(low.facts, fds_at_end=55))  # crossed the line during triage
    assert fnd.fd_findings(low)[0].severity == "warn"
    assert fnd.fd_findings(_proc(7, facts={"fds": FdCounts(10), "nofile_limit": NofileLimit(None)})) == []
    st = fnd.state_findings(_proc(7, facts={"status": "stopped"}))
    assert st[0].kind == "stopped" and st[0].evidence == ["procs/7/process.json", "procs/7/stacks.txt"]


# --------------------------------------------------------------------------- host

def _memory(total, available, swap_used=0, swap_total=0, swap_percent=0.0):
    return Memory(total=total, available=available, used=total - available, free=available, percent=0.0,
                  swap_total=swap_total, swap_used=swap_used, swap_percent=swap_percent)


def _host(**kw):
    base = dict(memory=_memory(100 << 30, 50 << 30), pressure={}, load=Load(1.0, 1, 1, 1, 100, 4),
                cpu_modes_percent=CpuModes(user=10.0, iowait=0.0, steal=0.0))
    base.update(kw)
    return HostFacts(**base)


def _top(*rows):
    return ProcessTable(count=len(rows), states={}, top_cpu=tuple(HostProc(ppid=1, status="running", rss=1 << 20,
                                                                           cpu_s=1.0, num_threads=1, **r)
                                                                  for r in rows), top_rss=())


def test_quiet_host_has_no_findings():
    assert fnd.host_findings(_host(), []) == []


def test_host_findings_each_with_evidence():
    h = _host(memory=_memory(100, 5, swap_used=40, swap_total=100, swap_percent=40.0),
              vmstat_delta=Vmstat(pswpin=10, pswpout=3, oom_kill=1),
              pressure={"memory": Pressure(some=PsiLine(avg10=12.0), full=PsiLine(avg10=6.0)),
                        "cpu": Pressure(some=PsiLine(avg10=25.0), full=PsiLine(avg10=0.0))},
              load=Load(load1=9.5, load5=8, load15=7, cpus=4, runnable=9, tasks=200),
              cgroups=Cgroups(by_pid={"100": "k"}, groups={"k": CgroupFacts(
                  cgroup="/svc", memory_fraction=0.97, memory_current=97, memory_limit=100,
                  nr_throttled_delta=12, nr_periods_delta=40, throttled_us_delta=1_500_000,
                  cpu_quota_cores=0.5)}))
    got = {(f.kind, f.severity) for f in fnd.host_findings(h, [])}
    assert got == {("memory_low", "high"), ("swap", "high"), ("pressure", "high"), ("pressure", "warn"),
                   ("load", "warn"), ("cgroup_memory", "high"), ("throttling", "warn"), ("oom", "high")}
    for f in fnd.host_findings(h, []):
        assert f.evidence and all(e.startswith("host/host.json") for e in f.evidence)
    thr = next(f for f in fnd.host_findings(h, []) if f.kind == "throttling")
    assert "12 of 40 periods" in thr.title and "(pids 100)" in thr.title and "1.50 s" in thr.detail


def test_analyse_orders_by_severity():
    procs = [_proc(1, facts={"cpu_percent": 85.0}), _proc(2, facts={"status": "stopped"}),
             _proc(3, stacks=_deadlocked(), stacks2=_deadlocked())]
    kinds = [(f.severity, f.kind) for f in fnd.analyse(_host(), procs)]
    assert kinds == [("high", "deadlock"), ("warn", "cpu_hog"), ("warn", "stopped")]


# --------------------------------------------------------------------------- escaping

EVIL = '<script>alert(1)</script> [x](javascript:y) *b* `c` \x1b[31m|#\n# h'


EVIL_THREAD = _thread(EVIL, 7, EVIL, 3, "with lock:")


def _doc(**kw):
    base = dict(bundle="b", hostname="h<1>", started=0, elapsed_s=1.0, budget_s=30, within_budget=True,
                interrupted=False, host=HostBrief(),
                findings=(fnd.Finding("deadlock", "high", f"pid 7 ({EVIL})", f"thread {EVIL}",
                                      ["procs/7/stacks.txt"], 7),),
                processes=(ProcessRow(pid=7, ppid=1, name=EVIL, script=EVIL, cmdline=[EVIL], cpu_percent=1.0,
                                      rss=1 << 20, threads=1, fds=3, fd_limit=64, sockets=0, gil_holder=EVIL,
                                      stacks="procs/7/stacks.txt", flame=None, process_json="procs/7/process.json",
                                      state="sleeping"),),
                collection=Collection(failed=(Event(EVIL, "failed", pid=7, error=EVIL, needs_privilege=True),)),
                privilege=Privilege(euid=1000, user="u", root=False, cap_sys_ptrace=False))
    base.update(kw)
    return Summary(**base)


def test_html_escapes_every_target_name():
    doc = _doc()
    html = rep.index_html(doc, {7: rep.stacks_text(7, [EVIL_THREAD], None)})
    assert "<script>" not in html and "alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "\x1b" not in html and "\\x1b[31m" in html
    assert "javascript:y" not in html.split("href=")[1][:40]


def test_markdown_escapes_every_target_name():
    md = rep.summary_md(_doc())
    assert "<script>" not in md and "&lt;script&gt;" in md
    assert "\\[x\\](javascript:y)" in md and "\\*b\\*" in md and "\\`c\\`" in md
    assert "\x1b" not in md
    for line in md.splitlines():  # the newline in the name never starts a heading
        assert not line.startswith("# h")
    assert "\\|" in md  # a pipe in a name cannot break the table


def test_terminal_summary_shows_markup_literally():
    from rich.console import Console

    doc = _doc()
    doc = replace(doc, findings=(replace(doc.findings[0], title="[bold red]pid 7[/bold red] " + EVIL),))
    buf = io.StringIO()
    Console(file=buf, width=300, color_system=None, force_terminal=False).print(rep.TerminalSummary(doc))
    out = buf.getvalue()
    assert "[bold red]pid 7[/bold red]" in out
    assert "\x1b" not in out and "\\x1b[31m" in out


def test_stacks_text_escapes_control_characters():
    text = rep.stacks_text(7, [_thread("a\nb", 7, "f\rg", 1, "x")], _facts(7, threads={"7": ThreadCpu(1.0, 42.0)}))
    assert '"a\\nb"' in text and "f\\rg" in text and "42% CPU" in text


# --------------------------------------------------------------------------- readers

def test_budget_parsing():
    from perfkit.errors import UsageError
    from perfkit.triage.command import parse_budget

    assert parse_budget("30s") == 30 and parse_budget("45") == 45 and parse_budget("1m") == 60
    assert parse_budget("1m30s") == 90 and parse_budget("7.5s") == 7.5
    for bad in ("", "abc", "0s", "2s", "-5", "30x", "2h"):
        with pytest.raises(UsageError):
            parse_budget(bad)


def test_parse_pressure():
    got = host.parse_pressure("some avg10=1.50 avg60=0.20 avg300=0.00 total=123\n"
                              "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    assert got.some == PsiLine(avg10=1.5, avg60=0.2, avg300=0.0, total=123)
    assert got.full is not None and got.full.total == 0
    assert got.to_json()["some"] == {"avg10": 1.5, "avg60": 0.2, "avg300": 0.0, "total": 123}


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_limits_and_throttling(tmp_path, monkeypatch):
    d = tmp_path / "svc"
    _write(d / "cgroup.controllers", "cpu memory")
    _write(d / "cpu.max", "50000 100000\n")
    _write(d / "cpu.stat", "usage_usec 10\nnr_periods 40\nnr_throttled 12\nthrottled_usec 1500000\n")
    _write(d / "memory.max", "1073741824\n")
    _write(d / "memory.current", "1020054732\n")
    _write(d / "memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    monkeypatch.setattr(host, "CGROUP_ROOT", str(tmp_path))
    p = host.Problems()
    f = host.cgroup_facts({"v2": "/svc"}, p)
    assert f.cpu_quota_cores == 0.5 and f.nr_throttled == 12 and f.throttled_us == 1500000
    assert f.memory_limit == 1 << 30 and f.memory_fraction == pytest.approx(0.95, abs=0.001)
    assert f.oom_kills == 1 and p.items == []
    _write(d / "memory.max", "max\n")
    _write(d / "cpu.max", "max 100000\n")
    f = host.cgroup_facts({"v2": "/svc"}, p)
    assert f.memory_limit is None and f.cpu_quota_cores is None and f.memory_fraction is None
    doc = f.to_json()  # host.json's keys: every v2 fact, known or not; the fraction only when known
    assert doc["memory_limit"] is None and doc["swap_current"] is None and "memory_fraction" not in doc
    assert doc["version_cpu"] == 2 and doc["version_memory"] == 2 and "nr_throttled_delta" not in doc


def test_cgroup_v1_and_missing_files(tmp_path, monkeypatch):
    _write(tmp_path / "cpu" / "g" / "cgroup.procs", "")
    _write(tmp_path / "cpu" / "g" / "cpu.cfs_quota_us", "200000\n")
    _write(tmp_path / "cpu" / "g" / "cpu.cfs_period_us", "100000\n")
    _write(tmp_path / "cpu" / "g" / "cpu.stat", "nr_periods 5\nnr_throttled 2\nthrottled_time 3000000\n")
    _write(tmp_path / "memory" / "g" / "cgroup.procs", "")
    _write(tmp_path / "memory" / "g" / "memory.limit_in_bytes", "9223372036854771712\n")
    monkeypatch.setattr(host, "CGROUP_ROOT", str(tmp_path))
    p = host.Problems()
    f = host.cgroup_facts({"cpu": "/g", "memory": "/g"}, p)
    assert f.cpu_quota_cores == 2.0 and f.nr_throttled == 2 and f.throttled_us == 3000
    assert f.memory_limit is None  # "unlimited"
    assert f.memory_current is None  # file missing: tolerated
    assert "swap_current" not in f.to_json() and f.to_json()["memory_current"] is None  # v1 has no swap file
    gone = host.cgroup_facts({"v2": "/nowhere"}, p)
    assert gone.note == "cgroup files not visible from here"
    assert gone.to_json() == {"cgroup": "/nowhere", "note": "cgroup files not visible from here"}


def test_unreadable_file_recorded_not_raised(tmp_path):
    p = host.Problems()
    assert host.read_text(str(tmp_path / "nope"), p, "x") is None and p.items == []
    assert host.read_text(str(tmp_path / "nope"), p, "x", missing_ok=False) is None
    assert p.items[0].what == "x" and not p.items[0].needs_privilege
    p.add("y", PermissionError(13, "Permission denied", "/proc/1/fd"))
    assert p.items[1] == Problem("y", "Permission denied (/proc/1/fd)", True)
    assert p.items[1].to_json() == {"what": "y", "error": "Permission denied (/proc/1/fd)", "needs_privilege": True}


def test_host_window_reads_this_host():
    import os

    w = host.start_window([os.getpid()])
    time.sleep(0.2)
    facts = host.finish_window(w, [os.getpid()])
    assert facts.load is not None and facts.load.cpus == os.cpu_count()
    h = facts.to_json()
    assert h["load"]["cpus"] == os.cpu_count()
    assert 99.0 <= sum(h["cpu_modes_percent"].values()) <= 101.0
    assert h["memory"]["total"] > 0 and h["processes"]["count"] > 1
    assert any(r["pid"] == os.getpid() for r in h["processes"]["top_rss"] + h["processes"]["top_cpu"]) or \
        h["processes"]["count"] > 15
    assert str(os.getpid()) in h["cgroups"]["by_pid"]
    assert set(h) == {"hostname", "kernel", "started", "window_s", "load", "cpu_modes_percent", "memory",
                      "vmstat_delta", "pressure", "processes", "disks", "network", "cgroups", "oom", "problems"}
    assert set(h["processes"]["top_rss"][0]) == {"pid", "ppid", "name", "status", "rss", "cpu_s", "num_threads",
                                                 "user", "cpu_percent"}


# --------------------------------------------------------------------------- pool

def test_pool_abandons_a_hung_job_at_the_deadline():
    pool = BoundedPool(2)
    gate = threading.Event()
    hung = pool.submit("hung", lambda: gate.wait(30))
    quick = pool.submit("quick", lambda: 42)
    later = pool.submit("later", lambda: gate.wait(30))
    never = pool.submit("never", lambda: 1)
    t = time.monotonic()
    assert BoundedPool.wait([hung, quick, later, never], time.monotonic() + 0.5) is False
    assert time.monotonic() - t < 5
    BoundedPool.cancel_unstarted([hung, quick, later, never])
    assert quick.state == "ok" and quick.result == 42
    assert hung.state == "running" and later.state == "running" and never.state == "skipped"
    gate.set()
    pool.close()
    boom = BoundedPool(1)
    j = boom.submit("err", lambda: 1 / 0)
    assert BoundedPool.wait([j], time.monotonic() + 5)
    assert j.state == "error" and isinstance(j.error, ZeroDivisionError)
    boom.close()


def test_busy_non_python_process_and_host_lines():
    h = _host(processes=_top({"pid": 9, "name": "postgres", "user": "pg", "cpu_percent": 99.0},
                             {"pid": 100, "name": "python3", "cpu_percent": 99.0},
                             {"pid": 11, "name": "sshd", "cpu_percent": 2.0}))
    got = [f for f in fnd.host_findings(h, [_proc(100)]) if f.kind == "busy_process"]
    assert [(f.pid, f.title) for f in got] == [(9, "pid 9 (postgres) uses 99% CPU")]
    doc = _doc(host=HostBrief(top_cpu=(BriefProc(9, "<b>pg</b>", cpu_percent=99.0),),
                              top_rss=(BriefProc(9, "pg", rss=3 << 30),)))
    html = rep.index_html(doc)
    assert "&lt;b&gt;pg&lt;/b&gt; (9) 99%" in html and "pg (9) 3.0 GiB" in html
    assert "\\<b\\>" not in rep.summary_md(doc) and "&lt;b&gt;pg&lt;/b&gt; (9) 99%" in rep.summary_md(doc)


def _small_profile():
    from perfkit.model import CPU_NS, SAMPLES, Frame, Labels, ProfileBuilder, Recording

    b = ProfileBuilder([SAMPLES, CPU_NS])
    b.add([Frame("main", "/a.py", 1), Frame("<script>x</script>", "/a.py", 5)], (30, 300), Labels(1, 1, "t"))
    b.add([Frame("main", "/a.py", 1), Frame("other", "/a.py", 9)], (10, 100), Labels(1, 1, "t"))
    p = b.build()
    p.default_index = 1
    p.recording = Recording(requested_rate=100, duration_s=0.5, samples=40, threads=1)
    return p


@pytest.mark.parametrize("svg", [True, False])
def test_flame_graph_svg_else_speedscope_when_the_renderer_fails(tmp_path, monkeypatch, svg):
    import json as _json

    from perfkit.formats import read_profile
    from perfkit.render import flamegraph_svg
    from perfkit.triage import bundle as tb

    if not svg:
        def broken(*_a, **_k):
            raise ValueError("renderer bug")

        monkeypatch.setattr(flamegraph_svg, "write", broken)
    w = tb._Writer(tmp_path)
    notes: set[str] = set()
    path = tb._write_flames(w, 1, _small_profile(), notes)
    assert path == ("procs/1/cpu.svg" if svg else "procs/1/cpu.speedscope.json")
    assert read_profile(tmp_path / "procs/1/cpu.perfkit").total(0) == 40
    assert (tmp_path / "procs/1/cpu.collapsed").is_file()
    if svg:
        text = (tmp_path / path).read_text()
        assert "<script>x</script>" not in text and "&lt;script&gt;" in text and not notes
    else:
        _json.loads((tmp_path / path).read_text())
        assert any("speedscope" in n for n in notes)
    assert tb._busy_percent(_small_profile()) == 80.0


# --------------------------------------------------------------------------- JSON of the typed facts

def test_facts_serialise_to_the_bundle_keys():
    f = _facts(5, fds=FdCounts(3, {"file": 3}), nofile_limit=NofileLimit(64, None), threads={"5": ThreadCpu(0.5)})
    doc = f.to_json()  # optional facts absent, not null; the rest always present
    assert set(doc) == {"pid", "status", "cpu_seconds", "rss", "vms", "num_threads", "create_time", "threads", "fds",
                        "nofile_limit", "sockets"}
    assert doc["threads"] == {"5": {"cpu_seconds": 0.5}} and doc["fds"] == {"count": 3, "by_kind": {"file": 3}}
    doc = replace(f, cpu_percent=12.5, cpu_window_s=1.0, fds_at_end=4, fd_fraction=0.05).to_json()
    assert doc["cpu_percent"] == 12.5 and doc["fds_at_end"] == 4 and doc["fd_fraction"] == 0.05
    assert Event("stacks", "ok", pid=5, seconds=0.1).to_json() == {"what": "stacks", "status": "ok", "pid": 5,
                                                                   "seconds": 0.1}
    assert Event("x", "failed", error="e", needs_privilege=True).to_json() == {
        "what": "x", "status": "failed", "error": "e", "needs_privilege": True}
    assert HostFacts.unavailable("host facts", "late").to_json() == {
        "problems": [{"what": "host facts", "error": "late", "needs_privilege": False}]}
    raw = {"name": "f", "filename": "/a.py", "line": 3, "module": None, "locals": [{"name": "x", "repr": "1"}]}
    fr = StackFrame.from_pyspy(raw)
    assert (fr.name, fr.line, fr.locals[0].repr) == ("f", 3, "1") and fr.to_json() == raw  # py-spy's keys kept
    s = _doc().to_json()
    assert set(s) == {"command", "bundle", "hostname", "started", "elapsed_s", "budget_s", "within_budget",
                      "interrupted", "host", "findings", "processes", "collection", "privilege", "notes"}
    assert set(s["host"]) == {"load", "cpu_modes_percent", "memory", "pressure", "top_cpu", "top_rss"}
    assert s["collection"]["needs_privilege"] == s["collection"]["failed"] and s["findings"][0]["pid"] == 7
