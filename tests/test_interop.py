"""Every output read by its real consumer, with the numbers asserted: go tool pprof
(names of every Python frame kind, tags, sample indexes, heap defaults, -diff_base
across converted files, the descriptor against upstream profile.proto), pstats.Stats
and snakeviz, speedscope's schema; round trips of every format, sample times included;
the registry's declared facts.  Fixtures here are recorded files and small built
profiles; the tools themselves run in test_interop_live.py."""

from __future__ import annotations

import ast
import inspect
import io
import json
import marshal
import os
import pstats
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import jsonschema
import pytest
from test_pprof import _canon, heap_profile

from conftest import IN_CI, run_perfkit
from perfkit import formats
from perfkit.analysis.top import top
from perfkit.formats import chrome_trace, collapsed, native, pprof, pstats_file, read_profile, speedscope
from perfkit.model import CPU_NS, SAMPLES, WALL_NS, Frame, Labels, ProfileBuilder, Timeline

FIX = Path(__file__).parent / "fixtures"
PERIOD = 10_000_000


def fixture(name="cpu_split_75_25.perfkit"):
    return native.read((FIX / name).read_bytes())


KINDS = ["<module>", "<lambda>", "<genexpr>", "<listcomp>", "<dictcomp>", "Worker.run",
         "runtime.(*scavengerState).init", "ns::f(int)"]


def kinds_profile():
    """One thread, a ticks timeline; each frame kind holds (k+1) x 10 samples of self time."""
    b = ProfileBuilder([SAMPLES, CPU_NS], {"kind": "cpu", "period_ns": PERIOD, "period_type": "cpu",
                                           "target": "python app.py", "pid": 7, "cmdline": ["python", "app.py"],
                                           "start": 1_700_000_000.0, "duration_s": 3.6},
                       default_index=1)
    b.timeline_clock = "ticks"
    mod = Frame("<module>", "/app/app.py", 1)
    t = 0
    for k, name in enumerate(KINDS):
        stack = [mod] if name == "<module>" else [mod, Frame(name, "/app/app.py", 10 + k)]
        for _ in range((k + 1) * 10):
            i = b.add(stack, (1, PERIOD), Labels(7, 70, "MainThread"))
            b.seen(i, t)
            t += PERIOD
    return b.build()


def selfs(p, vi=1) -> dict[str, int]:
    return {r.function: r.self_value for r in top(p, vi, limit=1000)}


# ------------------------------------------------------------------ the registry
def test_every_format_declares_exactly_the_options_its_writer_takes():
    for f in formats.TABLE:
        if not f.writes:
            assert not f.options
            continue
        params = inspect.signature(f.load().write).parameters
        named = {n for n, p in params.items() if n != "profile" and p.kind != p.VAR_KEYWORD}
        if f.module.startswith("perfkit.formats."):  # ours: no **options swallowing anything
            assert not any(p.kind == p.VAR_KEYWORD for p in params.values()), f.name
            assert set(f.options) == named, f.name
        else:  # views in perfkit.render: every declared option is a real parameter
            assert set(f.options) <= named, f.name
        assert f.reads == hasattr(f.load(), "read_path" if f.reads_path else "read"), f.name
        if f.reads and f.sniff_order is not None:
            assert hasattr(f.load(), "sniff"), f.name


def test_registry_names_suffixes_aliases_and_refusals(tmp_path):
    assert formats.format_for_path("x.trace.json") == "chrometrace"
    assert formats.format_for_path("x.speedscope.json") == "speedscope"
    assert formats.format_for_path("x.json") == "speedscope"
    assert formats.format_for_path("x.pstats") == "pstats"
    assert formats.format_for_path("x.austin") == "austin"
    assert formats.format_for_path("anything", "pb") == "pprof"
    assert formats.format_for_path("anything", "folded") == "collapsed"
    assert "pstats" in formats.names(writable=True) and "pstats" not in formats.names(readable=True)
    assert set(formats.names(readable=True)) >= {"perfkit", "memray", "pprof", "chrometrace", "speedscope", "austin",
                                                  "collapsed"}
    formats.register_alias("flamegraph-test-alias", "collapsed")
    assert formats.get("flamegraph-test-alias").name == "collapsed"
    with pytest.raises(formats.UsageError):
        formats.output_format(tmp_path / "x.bin")  # memray captures are read, never written
    with pytest.raises(TypeError):
        formats.write_profile(fixture(), tmp_path / "x.collapsed", colour="red")  # no format takes it
    res = run_perfkit("convert", FIX / "cpu_split_75_25.perfkit", "-o", tmp_path / "x.austin")
    assert res.returncode == 2 and "cannot write austin" in res.stderr


# ------------------------------------------------------------------ go tool pprof
def go_tool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    go = shutil.which("go")
    if go is None:
        if IN_CI:
            pytest.fail("go (Debian golang-go) not installed; run ./scripts/setup")
        pytest.skip("go not installed")
    env = dict(os.environ, GOCACHE=str(cwd / "gocache"), GOPATH=str(cwd / "gopath"), HOME=str(cwd), GOFLAGS="",
               GOTOOLCHAIN="local", GOPROXY="off")
    res = subprocess.run([go, *args], capture_output=True, text=True, timeout=300, env=env, cwd=cwd)
    assert res.returncode == 0, res.stderr
    return res


def pprof_top(path: Path, cwd: Path, *extra: str) -> tuple[dict, str, str]:
    """go tool pprof -top: ({function: (flat, cum)} in the report's unit, header, stderr)."""
    res = go_tool("tool", "pprof", "-top", "-nodecount=1000", *extra, str(path), cwd=cwd)
    rows = {}
    head, _, table = res.stdout.partition("      flat  flat%")
    for line in table.splitlines()[1:]:
        parts = line.split(None, 5)
        if len(parts) == 6:
            rows[parts[5]] = (_num(parts[0]), _num(parts[3]))
    return rows, head, res.stderr


def _num(text: str) -> float:
    m = re.fullmatch(r"(-?[\d.]+)(\w*)", text)
    scale = {"": 1, "ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "B": 1, "kB": 1024, "MB": 1 << 20, "GB": 1 << 30}
    return float(m.group(1)) * scale[m.group(2)]


def test_go_pprof_names_every_python_frame_kind_and_finds_the_main_binary(tmp_path):
    p = kinds_profile()
    path = tmp_path / "kinds.pb.gz"
    path.write_bytes(pprof.write(p))
    rows, head, err = pprof_top(path, tmp_path)
    for k, name in enumerate(KINDS):  # (k+1) x 10 samples of 10 ms self time each
        assert rows[name][0] == pytest.approx((k + 1) * 0.1), (name, rows)
    assert "<unknown>" not in rows and "listcomp" not in rows  # neither demangled nor stripped
    assert "Main binary filename not available" not in err + head
    assert "File: python" in head and "target: python app.py" in head and "written by perfkit" in head
    assert "Type: cpu" in head
    samples, _, _ = pprof_top(path, tmp_path, "-sample_index=samples")
    assert samples["<lambda>"][0] == 20 and sum(v[0] for v in samples.values()) == p.total(0)


def test_go_pprof_tags_show_the_labels(tmp_path):
    p = fixture("weird_names.perfkit")
    path = tmp_path / "w.pb.gz"
    path.write_bytes(pprof.write(p))
    out = go_tool("tool", "pprof", "-tags", str(path), cwd=tmp_path).stdout
    assert "thread_name" in out and "pid" in out and "thread_id" in out
    assert '<img src=x onerror=alert(1)> "t" & ü;' in out


def test_go_pprof_opens_heap_profiles_on_inuse_space_with_a_space_period(tmp_path):
    p = heap_profile()
    p.default_index = 0  # perfkit's own default (alloc_space) does not decide what pprof opens on
    path = tmp_path / "heap.pb.gz"
    path.write_bytes(pprof.write(p))
    rows, head, _ = pprof_top(path, tmp_path)
    assert "Type: inuse_space" in head
    assert sum(v[0] for v in rows.values()) == pytest.approx(p.total(2), rel=0.01)
    alloc, head, _ = pprof_top(path, tmp_path, "-sample_index=alloc_space")
    assert "Type: alloc_space" in head and sum(v[0] for v in alloc.values()) == pytest.approx(p.total(0), rel=0.01)
    raw = go_tool("tool", "pprof", "-raw", str(path), cwd=tmp_path).stdout
    assert "PeriodType: space bytes" in raw
    assert pprof.read(path.read_bytes()).default_index == 0  # the model's own default survives


def test_go_pprof_diff_base_works_across_conversions(tmp_path):
    """cpu.perfkit → pprof is the base; the same recording through speedscope, Chrome trace
    and back diffs to zero, and the 25:75 recording through speedscope diffs by its deltas."""
    base = tmp_path / "base.pb.gz"
    run_perfkit("convert", FIX / "cpu_split_75_25.perfkit", "-o", base, check=True)
    for via in (".speedscope.json", ".trace.json", ".perfkit"):
        mid, out = tmp_path / f"mid{via}", tmp_path / f"via{via.replace('.', '_')}.pb.gz"
        run_perfkit("convert", FIX / "cpu_split_75_25.perfkit", "-o", mid, check=True)
        run_perfkit("convert", mid, "-o", out, check=True)
        rows, head, _ = pprof_top(out, tmp_path, f"-diff_base={base}")
        assert all(v[0] == 0 for v in rows.values()), (via, rows)
    new = tmp_path / "new.speedscope.json"
    run_perfkit("convert", FIX / "cpu_split_25_75.perfkit", "-o", new, check=True)
    newpb = tmp_path / "new.pb.gz"
    run_perfkit("convert", new, "-o", newpb, check=True)
    rows, _, _ = pprof_top(newpb, tmp_path, f"-diff_base={base}")
    a, b = selfs(fixture()), selfs(fixture("cpu_split_25_75.perfkit"))
    for fn in ("spin_a", "spin_b"):
        assert rows[fn][0] == pytest.approx((b[fn] - a[fn]) / 1e9, abs=0.0051)
        assert rows[fn][0] != 0


def test_pprof_descriptor_equals_upstream_profile_proto(tmp_path):
    """Our run-time descriptor against google/pprof's profile.proto (Debian
    golang-github-google-pprof-dev), compiled by protoc: every message, field name,
    number, type and label (the hand-typed table cannot drift from upstream)."""
    proto = Path("/usr/share/gocode/src/github.com/google/pprof/proto/profile.proto")
    protoc = shutil.which("protoc")
    if not proto.exists() or protoc is None:
        msg = ("profile.proto (golang-github-google-pprof-dev) or protoc (protobuf-compiler) missing; "
               "run ./scripts/setup")
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    out = tmp_path / "profile.desc"
    subprocess.run([protoc, f"--proto_path={proto.parent}", f"--descriptor_set_out={out}", proto.name], check=True,
                   timeout=60)
    from google.protobuf import descriptor_pb2

    fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    upstream = {m.name: {(f.name, f.number, f.type, f.label, f.type_name) for f in m.field}
                for m in fds.file[0].message_type}
    M = pprof._messages()
    ours = {}
    for name, cls in M.items():
        proto_msg = descriptor_pb2.DescriptorProto()
        cls.DESCRIPTOR.CopyToProto(proto_msg)
        ours[name] = {(f.name, f.number, f.type, f.label, f.type_name) for f in proto_msg.field}
    # Debian's snapshot (2021) predates two fields google/pprof added since (Profile.doc_url,
    # Line.column); ours has them at the upstream numbers.  Everything else is identical.
    newer = {("Profile", ("doc_url", 15, 3, 1, "")), ("Line", ("column", 3, 3, 1, ""))}
    assert set(ours) == set(upstream)
    for name in upstream:
        assert upstream[name] <= ours[name], name
        assert {(name, f) for f in ours[name] - upstream[name]} <= newer, name


# ------------------------------------------------------------------ pstats and snakeviz
def test_pstats_reads_tottime_and_cumtime_from_samples(tmp_path):
    p = fixture()
    path = tmp_path / "cpu.pstats"
    formats.write_profile(p, path)
    st = pstats.Stats(str(path), stream=io.StringIO())
    assert st.total_tt == pytest.approx(p.total(1) / 1e9)
    by_name = {k[2]: v for k, v in st.stats.items()}
    ours = {r.function: r for r in top(p, 1, limit=100)}
    for fn in ("spin_a", "spin_b"):
        cc, nc, tt, ct, callers = by_name[fn]
        assert tt == pytest.approx(ours[fn].self_value / 1e9) and ct == pytest.approx(ours[fn].total_value / 1e9)
        assert nc == ours[fn].self_value // PERIOD  # samples that saw it
        assert {k[2] for k in callers} == {"main"}
    module_rows = [v for k, v in st.stats.items() if k[2] == "<module>" and "cpu_split" in k[0]]
    assert module_rows[0][3] == pytest.approx(st.total_tt, rel=0.05)  # nearly everything runs under it
    st.sort_stats("cumulative").print_stats(5)
    st.print_callers("spin_a")


def test_pstats_recursion_counts_cumtime_once():
    b = ProfileBuilder([SAMPLES, CPU_NS], {"period_ns": PERIOD}, 1)
    rec = Frame("rec", "/a.py", 3)
    b.add([Frame("main", "/a.py", 1), rec, rec, rec], (4, 4 * PERIOD))
    stats = marshal.loads(pstats_file.write(b.build()))
    row = stats[("/a.py", 3, "rec")]
    assert row[2] == pytest.approx(0.04) and row[3] == pytest.approx(0.04)
    assert row[4][("/a.py", 3, "rec")][3] == pytest.approx(0.04)


def test_snakeviz_shows_our_pstats(tmp_path):
    exe = Path(sys.executable).parent / "snakeviz"
    if not exe.exists():
        pytest.skip("snakeviz not installed (pip install snakeviz)")
    p = fixture()
    path = tmp_path / "cpu.pstats"
    formats.write_profile(p, path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(exe), "-s", "-H", "127.0.0.1", "-p", str(port), str(path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        html = None
        for _ in range(100):
            try:
                url = f"http://127.0.0.1:{port}/snakeviz/{urllib.request.quote(str(path), safe='')}"
                html = urllib.request.urlopen(url, timeout=5).read().decode()
                break
            except OSError:
                time.sleep(0.1)
        assert html, "snakeviz did not serve the file"
    finally:
        proc.kill()
        proc.wait()
    line = next(ln for ln in html.splitlines() if ln.strip().startswith("var table_data ="))
    rows = ast.literal_eval(line.split("=", 1)[1].strip().rstrip(";"))
    by_name = {r[-1].rsplit("(", 1)[1].rstrip(")"): r for r in rows if "cpu_split" in r[-1]}
    ours = {r.function: r for r in top(p, 1, limit=100)}
    for fn in ("spin_a", "spin_b"):  # columns: ncalls, tottime, percall, cumtime, percall, name
        assert float(by_name[fn][1]) == pytest.approx(ours[fn].self_value / 1e9, abs=0.005)


# ------------------------------------------------------------------ speedscope
def test_time_ordered_speedscope_has_one_sample_per_tick_and_validates(speedscope_schema):
    p = kinds_profile()
    doc = json.loads(speedscope.write(p))
    jsonschema.validate(doc, speedscope_schema)
    (prof,) = doc["profiles"]
    assert len(prof["samples"]) == p.total(0) and set(prof["weights"]) == {PERIOD}
    names = [doc["shared"]["frames"][s[-1]]["name"] for s in prof["samples"]]
    expected = [name for k, name in enumerate(KINDS) for _ in range((k + 1) * 10)]
    assert names == expected  # recording order, not grouped by stack
    assert json.loads(speedscope.write(p, value="samples"))["profiles"][0]["weights"] == [1] * p.total(0)
    agg = json.loads(speedscope.write(heap_profile()))  # bytes have no time: one sample per stack
    jsonschema.validate(agg, speedscope_schema)
    assert agg[speedscope.MEMBER]["time_ordered"] is False


def test_reads_pyspy_speedscope_as_cpu_with_period_and_ticks_timeline():
    raw = json.loads((FIX / "pyspy_cpu_threads.speedscope.json").read_bytes())
    p = read_profile(FIX / "pyspy_cpu_threads.speedscope.json")
    assert [str(t) for t in p.sample_types] == ["samples/count", "cpu/nanoseconds"]
    rate = round(1 / raw["profiles"][0]["weights"][0])
    assert p.recording.period_ns == round(1e9 / rate) and p.default_index == 1
    t = p.live_timeline()
    assert t is not None and t.clock == "ticks" and len(t) == sum(len(pr["samples"]) for pr in raw["profiles"])
    for pr in raw["profiles"]:  # each thread's samples, in py-spy's order
        tid = int(re.match(r"(?:Process \d+ )?Thread (\d+)", pr["name"]).group(1))
        ours = [p.samples[i] for i in t.index if p.samples[i].labels.tid == tid]
        assert [len(s.stack) for s in ours] == [len(s) for s in pr["samples"]]


# ------------------------------------------------------------------ round trips, times included
def _events(p):
    t = p.live_timeline()
    return [(t.start_ns[k], p.samples[i].labels, tuple(p.frames[j] for j in p.samples[i].stack))
            for k, i in enumerate(t.index)]


def test_perfkit_round_trip_keeps_the_timeline_exactly(tmp_path):
    p = kinds_profile()
    path = tmp_path / "k.perfkit"
    formats.write_profile(p, path)
    q = read_profile(path)
    assert q.live_timeline() == p.live_timeline() and _canon(q) == _canon(p)
    assert q.recording == p.recording


@pytest.mark.parametrize("suffix", [".speedscope.json", ".trace.json"])
def test_timeline_formats_round_trip_sample_times(tmp_path, suffix):
    p = kinds_profile()
    path = tmp_path / f"k{suffix}"
    formats.write_profile(p, path)
    q = read_profile(path)
    assert _canon(q) == _canon(p)
    assert [str(v) for v in q.sample_types] == ["samples/count", "cpu/nanoseconds"] and q.recording.period_ns == PERIOD
    assert _events(q) == _events(p)
    assert q.recording.target == p.recording.target


def test_chrome_trace_of_a_two_thread_wall_timeline_keeps_every_event(tmp_path):
    b = ProfileBuilder([WALL_NS], {"pid": 3})
    main, io_, cpu = Frame("main", "/m.py", 1), Frame("read", "/io.py", 2), Frame("crunch", "/c.py", 3)
    ta, tb = Labels(3, 1, "A"), Labels(3, 2, "B")
    for start, dur, stack, lb in [(0, 5_000, [main, cpu], ta), (5_000, 7_000, [main, cpu], ta),
                                  (20_000, 1_000, [main, io_], ta), (1_000, 30_000, [io_], tb)]:
        b.seen(b.add(stack, (dur,), lb), start, dur)
    p = b.build()
    doc = json.loads(chrome_trace.write(p))
    slices = [e for e in doc["traceEvents"] if e["ph"] in "BE"]
    assert sum(1 for e in slices if e["ph"] == "B") == sum(1 for e in slices if e["ph"] == "E")
    names = {e["args"]["name"] for e in doc["traceEvents"] if e["ph"] == "M" and e["name"] == "thread_name"}
    assert names == {"A", "B"}
    q = chrome_trace.read(chrome_trace.write(p))
    assert _events(q) == _events(p) and _canon(q) == _canon(p)
    assert list(q.live_timeline().dur_ns) == list(p.live_timeline().dur_ns)
    assert q.sample_types == [WALL_NS]


def test_a_heap_profile_draws_its_bytes_in_a_trace_and_reads_back():
    """No time type: one byte drawn as one nanosecond, so `heap -o x.trace.json` never fails."""
    p = heap_profile()
    q = chrome_trace.read(chrome_trace.write(p))
    vi = p.default_index
    assert q.total(vi) == p.total(vi) and selfs(q, vi) == selfs(p, vi)


def test_a_filter_drops_a_stale_timeline_and_a_new_default_keeps_it():
    from perfkit.analysis import transforms

    p = kinds_profile()
    assert transforms.focus(p, "lambda").live_timeline() is None
    assert transforms.with_default(p, "samples").live_timeline() is p.live_timeline()
    t = p.live_timeline().remap([None if i % 2 else i // 2 for i in range(len(p.samples))])
    assert len(t) < len(p.live_timeline())


def test_a_timeline_that_misses_samples_is_not_laid_out():
    p = kinds_profile()
    t = p.live_timeline()
    keep = [k for k, i in enumerate(t.index) if i != 0]  # sample 0 never placed in time
    p.with_timeline(Timeline([t.start_ns[k] for k in keep], [t.index[k] for k in keep], None, "ticks"))
    assert json.loads(speedscope.write(p))[speedscope.MEMBER]["time_ordered"] is False
    assert json.loads(chrome_trace.write(p))[chrome_trace.MEMBER]["timeline"] is False
    assert _canon(speedscope.read(speedscope.write(p))) == _canon(p)


def test_timeline_rejects_events_out_of_range():
    p = kinds_profile()
    with pytest.raises(ValueError):
        p.with_timeline(Timeline([0], [len(p.samples)]))


def test_every_lossless_format_round_trips_model_and_recording(tmp_path):
    for p in (fixture(), heap_profile(), kinds_profile(), fixture("weird_names.perfkit")):
        for suffix in (".perfkit", ".pb.gz"):
            path = tmp_path / f"x{suffix}"
            formats.write_profile(p, path)
            q = read_profile(path)
            assert _canon(q) == _canon(p), suffix
            assert [str(v) for v in q.sample_types] == [str(v) for v in p.sample_types]
            assert q.default_index == p.default_index and q.series == p.series
            strip = lambda r: {k: v for k, v in r.to_json().items() if k != "source_format"}  # noqa: E731
            assert strip(q.recording) == strip(p.recording), suffix


# ------------------------------------------------------------------ collapsed
def test_collapsed_keeps_parentheses_and_every_name_round_trips():
    p = kinds_profile()
    text = collapsed.write(p).decode()
    assert "runtime.(*scavengerState).init (/app/app.py:16)" in text and "ns::f(int) (/app/app.py:17)" in text
    assert "\\x28" not in text and "\\x29" not in text
    assert _canon(collapsed.read(collapsed.write(p, labels=True))) == _canon(p, 0)
    b = ProfileBuilder([SAMPLES])
    hard = [Frame("a;b"), Frame("line\nbreak\r"), Frame("C:\\new\\x41 \\U"), Frame(" edge "), Frame("#hash"),
            Frame("f", "/dir (1)/x.py", 3), Frame("thread (12): not py-spy")]
    b.add(hard, (5,))
    q = b.build()
    line = collapsed.write(q).decode()
    assert line.count("\n") == 1 and line.count(";") == len(hard) - 1
    assert "a\\x3bb" in line and "line\\nbreak\\r" in line and "C:\\\\new\\\\x41 \\U" in line
    assert collapsed.read(line.encode()).frames == hard


def test_flamegraph_pl_line_grammar():
    """flamegraph.pl reads ``^(.*)\\s+(\\d+(?:\\.\\d*)?)$`` and splits the stack on ';'
    (it is not packaged on PyPI, npm or Debian here; the speedscope app, which parses the
    same grammar, reads our files in test_interop_live.py)."""
    for line in collapsed.write(fixture("weird_names.perfkit")).decode().splitlines():
        m = re.match(r"^(.*)\s+?(\d+(?:\.\d*)?)$", line)
        assert m, line
        assert all(part for part in m.group(1).split(";"))
