"""`perfkit convert` and the format writers: every reader to every writer, speedscope
schema, plain collapsed lines, py-spy's own speedscope files, filters, and
`perfkit cpu -o` writing every format for a live scenario."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
from test_pprof import _canon, go_top, heap_profile

from conftest import run_perfkit, scenario_cmd
from perfkit.analysis.top import top
from perfkit.formats import FORMATS, collapsed, native, read_profile, speedscope
from perfkit.formats import read_profile as load

FIX = Path(__file__).parent / "fixtures"
SUFFIXES = {"perfkit": ".perfkit", "pprof": ".pb.gz", "speedscope": ".speedscope.json", "collapsed": ".collapsed"}


def fixture(name="cpu_split_75_25.perfkit"):
    return native.read((FIX / name).read_bytes())


@pytest.mark.parametrize("src", list(SUFFIXES))
def test_convert_any_reader_to_any_writer_keeps_the_samples(tmp_path, src):
    p = fixture()
    start = tmp_path / f"in{SUFFIXES[src]}"
    start.write_bytes(FORMATS[src].write(p, value="samples"))  # each writer takes only its own options
    args = ["convert", start]
    for suf in SUFFIXES.values():
        args += ["-o", tmp_path / f"out{suf}"]
    args += ["-o", tmp_path / "out.svg", "-o", tmp_path / "out.html"]
    doc = json.loads(run_perfkit(*args, "--json", check=True).stdout)
    assert [o["format"] for o in doc["outputs"]] == list(SUFFIXES) + ["svg", "html"]
    ref = load(start)
    for name, suf in SUFFIXES.items():
        q = load(tmp_path / f"out{suf}")
        for vi, vt in enumerate(q.sample_types):  # speedscope carries one type: the default one
            ri = ref.value_index(vt.type) if vt.type in {v.type for v in ref.sample_types} else ref.default_index
            assert q.total(vi) == ref.total(ri), (src, name, vt)
            assert top(q, vi, limit=1)[0].self_pct == pytest.approx(top(ref, ri, limit=1)[0].self_pct, abs=1e-9)


def test_speedscope_output_validates_against_the_official_schema(tmp_path, speedscope_schema):
    for p in (fixture(), fixture("weird_names.perfkit"), heap_profile()):
        doc = json.loads(speedscope.write(p))
        jsonschema.validate(doc, speedscope_schema)
    doc = json.loads(speedscope.write(fixture(), value="samples"))
    assert sum(sum(pr["weights"]) for pr in doc["profiles"]) == fixture().total(0)


def test_collapsed_output_is_plain_folded_lines():
    text = collapsed.write(fixture()).decode()
    lines = text.splitlines()
    assert lines and all(re.fullmatch(r"[^;\n]+(;[^;\n]+)* \d+", ln) for ln in lines)
    assert sum(int(ln.rsplit(" ", 1)[1]) for ln in lines) == fixture().total(0)  # default: sample counts
    assert any(ln.startswith("<module> (") and ";spin_a (" in ln for ln in lines)


def test_collapsed_labels_option_round_trips_threads():
    p = fixture("weird_names.perfkit")
    text = collapsed.write(p, labels=True)
    assert text.startswith(b"[pid=")
    assert _canon(collapsed.read(text)) == _canon(p, 0)


def test_reads_py_spy_speedscope_with_thread_labels():
    p = read_profile(FIX / "pyspy_cpu_threads.speedscope.json")
    names = {lb.thread for lb in p.labels_seen()}
    assert {"worker-a", "worker-b"} <= names
    rows = {r.function: r for r in top(p)}
    assert rows["work_a"].total_pct > rows["work_b"].total_pct  # 75:25 scenario (time is in _spin)
    assert sum(s.values[0] for s in p.samples) == sum(len(pr["samples"]) for pr in json.loads(
        (FIX / "pyspy_cpu_threads.speedscope.json").read_bytes())["profiles"])


@pytest.mark.live
def test_cpu_launch_writes_every_format_and_go_pprof_agrees(tmp_path):
    outs = {k: tmp_path / f"f{v}" for k, v in SUFFIXES.items()}
    outs["svg"], outs["html"] = tmp_path / "f.svg", tmp_path / "f.html"
    args = ["cpu", "-d", "3", "--rate", "200"]
    for p in outs.values():
        args += ["-o", p]
    doc = json.loads(run_perfkit(*args, "--json", "--",
                          *scenario_cmd("cpu_split", "--ratio", "75:25", "--duration", "5"),
                                 check=True, timeout=120).stdout)
    assert {o["format"] for o in doc["outputs"]} == set(outs)
    shares = {r["function"]: r["self_pct"] for r in doc["top"]}
    # truth 75:25 between the two; launch mode also records interpreter start-up, and the
    # scenario's wall-clock slices drift toward 50:50 on an oversubscribed box: 12 pp
    split = 100 * shares["spin_a"] / (shares["spin_a"] + shares["spin_b"])
    assert split == pytest.approx(75, abs=12)
    total_s, flat = go_top(outs["perfkit"].with_name("f.pb.gz"), tmp_path, "cpu")
    assert total_s * 1e9 == pytest.approx(doc["total"], rel=1e-6)
    ours = {r["function"]: r["self"] for r in doc["top"]}
    for fn in ("spin_a", "spin_b"):
        assert flat[fn] * 1e9 == pytest.approx(ours[fn], abs=5e6)
    from test_flame import html_data, svg_frames

    svg = {f["name"]: f for f in svg_frames(outs["svg"].read_bytes()) if "cpu_split" in f["n"]}
    assert 100 * svg["spin_a"]["v"] / doc["total"] == pytest.approx(shares["spin_a"], abs=0.01)
    assert html_data(outs["html"].read_bytes())["views"][0]["total"] == doc["total"]
    assert load(outs["perfkit"]).total(1) == doc["total"]


def test_convert_filters_thread_and_pid():
    p = read_profile(FIX / "pyspy_cpu_threads.speedscope.json")
    res = run_perfkit("convert", FIX / "pyspy_cpu_threads.speedscope.json", "-o", "/dev/null", "--format", "collapsed",
                      "--thread", "worker-a", "--json", check=True)
    doc = json.loads(res.stdout)
    expected = sum(s.values[p.default_index] for s in p.samples if s.labels.thread == "worker-a")
    assert doc["total"] == expected


def test_convert_unknown_output_suffix_and_format(tmp_path):
    res = run_perfkit("convert", FIX / "cpu_split_75_25.perfkit", "-o", tmp_path / "x.unknown")
    assert res.returncode == 2 and "cannot tell the format" in res.stderr
    res = run_perfkit("convert", FIX / "cpu_split_75_25.perfkit", "-o", tmp_path / "x.svg", "--from", "svg")
    assert res.returncode == 2 and "cannot read" in res.stderr
    res = run_perfkit("convert", FIX / "cpu_split_75_25.perfkit", "-o", tmp_path / "nodir" / "x.svg")
    assert res.returncode == 2 and "does not exist" in res.stderr


def test_reads_evented_speedscope_from_other_tools(tmp_path, speedscope_schema):
    doc = {"$schema": speedscope.SCHEMA_URL, "exporter": "some-tool@1", "name": "evented",
           "shared": {"frames": [{"name": "main", "file": "/a.py", "line": 1}, {"name": "work"}, {"name": "idle"}]},
           "profiles": [{"type": "evented", "name": "Thread 9 \"loop\"", "unit": "milliseconds", "startValue": 0,
                         "endValue": 10, "events": [{"type": "O", "frame": 0, "at": 0},
                                                    {"type": "O", "frame": 1, "at": 1},
                                                    {"type": "C", "frame": 1, "at": 7},
                                                    {"type": "O", "frame": 2, "at": 7},
                                                    {"type": "C", "frame": 2, "at": 9},
                                                    {"type": "C", "frame": 0, "at": 10}]}]}
    jsonschema.validate(doc, speedscope_schema)
    path = tmp_path / "other.json"
    path.write_text(json.dumps(doc))
    p = read_profile(path)
    rows = {r.function: r for r in top(p)}
    assert p.sample_types[0].unit == "nanoseconds" and p.total() == 10_000_000
    assert rows["work"].self_value == 6_000_000 and rows["idle"].self_value == 2_000_000
    assert rows["main"].self_value == 2_000_000 and rows["main"].total_pct == 100
    assert p.labels_seen() == {__import__("perfkit.model", fromlist=["Labels"]).Labels(None, 9, "loop")}
    out = tmp_path / "o.collapsed"
    run_perfkit("convert", path, "-o", out, check=True)
    assert "main (/a.py:1);work 6000000" in out.read_text()


def test_collapsed_is_detected_by_content_even_when_lines_start_with_module(tmp_path):
    path = tmp_path / "stacks.unknown-suffix"
    path.write_bytes(collapsed.write(fixture()))
    assert path.read_bytes().startswith(b"<module> (")
    assert read_profile(path).total() == fixture().total(0)


def test_collapsed_with_labels_is_detected_by_content(tmp_path):
    path = tmp_path / "stacks.unknown-suffix"
    path.write_bytes(collapsed.write(fixture("weird_names.perfkit"), labels=True))
    assert read_profile(path).labels_seen() == fixture("weird_names.perfkit").labels_seen()
