"""pprof writer/reader: round trips, value types with units, labels, metadata, and the
files read back by real third-party readers (go tool pprof, npm pprof-format)."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from conftest import IN_CI, TOOLS, require_tool
from perfkit.analysis.top import top
from perfkit.formats import collapsed, native, pprof
from perfkit.model import ALLOC_OBJECTS, ALLOC_SPACE, INUSE_OBJECTS, INUSE_SPACE, SAMPLES, Frame, Labels, ProfileBuilder

FIX = Path(__file__).parent / "fixtures"


def _canon(p, vi=None):
    """(frames, labels) -> values: the profile's content, independent of ids and order."""
    out = {}
    for s in p.samples:
        k = (tuple(p.frames[i] for i in s.stack), s.labels)
        vals = s.values if vi is None else (s.values[vi],)
        prev = out.get(k)
        out[k] = vals if prev is None else tuple(a + b for a, b in zip(prev, vals))
    return out


def heap_profile():
    b = ProfileBuilder([ALLOC_SPACE, ALLOC_OBJECTS, INUSE_SPACE, INUSE_OBJECTS],
                       {"kind": "heap", "start": "2026-01-02T03:04:05+00:00", "duration_s": 2.5}, default_index=2)
    main = Frame("main", "/app/main.py", 10)
    b.add([main, Frame("load", "/app/db.py", 42)], (4096, 4, 1024, 1), Labels(7, 8, "MainThread"))
    b.add([main, Frame("cache_put", "/app/cache.py", 7)], (10_000_000, 1000, 9_000_000, 900), Labels(7, 9, "worker"))
    b.series = {"rss_bytes": [[0.0, 1e6], [1.0, 2e6], [2.0, 3.5e6]]}
    return b.build()


def test_heap_profile_round_trip_keeps_every_type_unit_label_and_metadata():
    p = heap_profile()
    q = pprof.read(pprof.write(p), "heap.pb.gz")
    assert [str(v) for v in q.sample_types] == ["alloc_space/bytes", "alloc_objects/count", "inuse_space/bytes",
                                                 "inuse_objects/count"]
    assert q.default_index == 2
    assert _canon(q) == _canon(p)
    assert q.series == p.series
    assert q.recording.kind == "heap" and q.recording.duration_s == 2.5


def test_cpu_fixture_period_time_and_labels_in_the_proto():
    p = native.read((FIX / "cpu_split_75_25.perfkit").read_bytes())
    msg = pprof._parse(gzip.decompress(pprof.write(p)))
    st_ = list(msg.string_table)
    assert msg.period == p.recording.period_ns == 10_000_000
    assert (st_[msg.period_type.type], st_[msg.period_type.unit]) == ("cpu", "nanoseconds")
    assert msg.time_nanos == int(p.recording.start * 1e9)
    assert msg.duration_nanos == int(p.recording.duration_s * 1e9)
    assert st_[msg.default_sample_type] == "cpu"
    keys = {st_[lab.key] for s in msg.sample for lab in s.label}
    named = any(lab.thread is not None for lab in p.labels_seen())
    assert keys == {"pid", "thread_id"} | ({"thread_name"} if named else set())
    pid = p.recording.pid
    assert all(any(st_[lab.key] == "pid" and lab.num == pid for lab in s.label) for s in msg.sample)


def test_writer_is_deterministic():
    p = native.read((FIX / "weird_names.perfkit").read_bytes())
    assert pprof.write(p) == pprof.write(p)


names = st.text(min_size=1, max_size=10)
frames = st.builds(lambda f, fi, l: Frame(f, fi, l if fi else 0), names, st.one_of(st.just(""), names),
                   st.integers(0, 10**6))
labels = st.builds(Labels, st.one_of(st.none(), st.integers(0, 2**31)), st.one_of(st.none(), st.integers(0, 2**40)),
                   st.one_of(st.none(), st.text(max_size=8)))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.lists(frames, min_size=1, max_size=6), st.integers(1, 10**12), labels),
                min_size=1, max_size=10))
@example([([Frame("0", "0 (", 0)], 1, Labels(None, None, None))])  # once read back as "0 (0" in no file
@example([([Frame("a (b:1)", "", 0)], 1, Labels(None, None, None))])
def test_round_trip_collapsed_model_pprof_model_collapsed_keeps_stacks_labels_weights(samples):
    b = ProfileBuilder([SAMPLES])
    for fs, w, lb in samples:
        b.add(fs, (w,), lb)
    original = b.build()
    text = collapsed.write(original, labels=True)
    model = collapsed.read(text)
    back = pprof.read(pprof.write(model))
    assert _canon(back) == _canon(model) == _canon(original)
    assert collapsed.write(back, labels=True) == text


def test_round_trip_of_real_recordings():
    for name in ("cpu_split_75_25.perfkit", "weird_names.perfkit"):
        p = native.read((FIX / name).read_bytes())
        q = pprof.read(pprof.write(p))
        assert _canon(q) == _canon(p)
        assert q.recording.pid == p.recording.pid
        text = collapsed.write(p, labels=True)
        assert collapsed.write(pprof.read(pprof.write(collapsed.read(text))), labels=True) == text


# ------------------------------------------------------------ third-party readers
def go_pprof(*args: str, cwd: Path) -> str:
    go = shutil.which("go")
    if go is None:
        if IN_CI:
            pytest.fail("go (Debian golang-go) not installed; run ./scripts/setup")
        pytest.skip("go not installed")
    env = dict(os.environ, GOCACHE=str(cwd / "gocache"), GOPATH=str(cwd / "gopath"), HOME=str(cwd), GOFLAGS="",
               GOTOOLCHAIN="local")
    res = subprocess.run([go, "tool", "pprof", *args], capture_output=True, text=True, timeout=120, env=env, cwd=cwd)
    assert res.returncode == 0, res.stderr
    return res.stdout


def go_top(path: Path, cwd: Path, sample_index: str) -> tuple[float, dict[str, float]]:
    """go tool pprof -top: (total in the sample type's unit, {function: flat})."""
    out = go_pprof("-top", f"-sample_index={sample_index}", "-nodecount=1000", str(path), cwd=cwd)
    m = re.search(r"of ([\d.]+)(\w*) total", out)
    assert m, out
    scale = {"": 1, "ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "mins": 60}.get(m.group(2), 1)
    flat = {}
    for line in out.splitlines():
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[1].endswith("%") and parts[2].endswith("%"):
            v = re.match(r"([\d.]+)(\w*)", parts[0])
            scale_of = {"": 1, "ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1}
            flat[parts[5].strip()] = float(v.group(1)) * scale_of.get(v.group(2), 1)
    return float(m.group(1)) * scale, flat


def test_go_tool_pprof_reads_our_file_with_matching_totals_and_top(tmp_path):
    p = native.read((FIX / "cpu_split_75_25.perfkit").read_bytes())
    path = tmp_path / "cpu.pb.gz"
    path.write_bytes(pprof.write(p))
    total_s, flat = go_top(path, tmp_path, "cpu")
    assert total_s == pytest.approx(p.total(1) / 1e9, rel=1e-6)
    ours = top(p, 1, limit=2)
    assert [r.function for r in ours] == ["spin_a", "spin_b"]
    for r in ours:
        assert flat[r.function] == pytest.approx(r.self_value / 1e9, abs=0.0051)
    total_n, flat_n = go_top(path, tmp_path, "samples")
    assert total_n == p.total(0)
    assert flat_n["spin_a"] == top(p, 0, limit=1)[0].self_value
    raw = go_pprof("-raw", str(path), cwd=tmp_path)
    assert "PeriodType: cpu nanoseconds" in raw and "Period: 10000000" in raw
    assert f"pid:[{p.recording.pid}]" in raw


def test_npm_pprof_format_decodes_heap_profile_with_types_units_and_labels(tmp_path):
    require_tool(TOOLS / "pprof-format" / "package.json", "npm pprof-format")
    p = heap_profile()
    path = tmp_path / "heap.pb.gz"
    path.write_bytes(pprof.write(p))
    script = """
const zlib = require('zlib'); const fs = require('fs');
const { Profile } = require(process.argv[1]);
const prof = Profile.decode(zlib.gunzipSync(fs.readFileSync(process.argv[2])));
const S = i => prof.stringTable.strings[Number(i)];
const fn = new Map(prof.function.map(f => [Number(f.id), S(f.name)]));
const loc = new Map(prof.location.map(l => [Number(l.id), fn.get(Number(l.line[0].functionId))]));
const out = {types: prof.sampleType.map(t => S(t.type) + '/' + S(t.unit)), samples: prof.sample.map(s => ({
  leaf: loc.get(Number(s.locationId[0])), values: s.value.map(Number),
  labels: Object.fromEntries(s.label.map(l => [S(l.key), Number(l.str) ? S(l.str) : Number(l.num)]))}))};
console.log(JSON.stringify(out));
"""
    res = subprocess.run(["node", "-e", script, str(TOOLS / "pprof-format"), str(path)], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["types"] == ["alloc_space/bytes", "alloc_objects/count", "inuse_space/bytes", "inuse_objects/count"]
    by_leaf = {s["leaf"]: s for s in doc["samples"]}
    assert by_leaf["cache_put"]["values"] == [10_000_000, 1000, 9_000_000, 900]
    assert by_leaf["cache_put"]["labels"] == {"pid": 7, "thread_id": 9, "thread_name": "worker"}
    assert sum(s["values"][2] for s in doc["samples"]) == p.total(2)


def test_reads_pprof_written_by_go(tmp_path):
    """A profile produced by go tool pprof itself (-proto re-encodes ours its own way)."""
    p = native.read((FIX / "cpu_split_75_25.perfkit").read_bytes())
    src = tmp_path / "in.pb.gz"
    src.write_bytes(pprof.write(p))
    out = tmp_path / "go.pb.gz"
    go_pprof("-proto", "-output", str(out), str(src), cwd=tmp_path)
    q = pprof.read(out.read_bytes(), str(out))
    assert q.total(q.value_index("cpu")) == p.total(1)
    assert top(q, q.value_index("cpu"), limit=1)[0].function == "spin_a"
