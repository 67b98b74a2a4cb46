"""Hostile names from a real process (scenarios/weird_names.py) render as text in every
output: SVG, HTML, terminal tree, collapsed, speedscope, pprof."""

from __future__ import annotations

import importlib.util
import json
import re
import xml.etree.ElementTree as ET

import jsonschema
import pytest

from conftest import SCENARIOS, run_perfkit, scenario
from perfkit.formats import collapsed, native, pprof, speedscope
from perfkit.render.escape import visible, xml

_spec = importlib.util.spec_from_file_location("weird_names", SCENARIOS / "weird_names.py")
weird = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(weird)
SVG = "{http://www.w3.org/2000/svg}"

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    d = tmp_path_factory.mktemp("weird")
    outs = {ext: d / f"w.{ext}" for ext in ("perfkit", "svg", "html", "pb.gz", "speedscope.json", "collapsed")}
    # attach after "ready" (py-spy learns thread names when it first sees a thread)
    with scenario("weird_names", "--duration", "8") as sc:
        args = ["cpu", "--pid", str(sc.pid), "-d", "2", "--rate", "200"]
        for p in outs.values():
            args += ["-o", p]
        run_perfkit(*args, check=True, timeout=90)
    return outs


def test_each_weird_function_gets_its_share(recorded):
    p = native.read(recorded["perfkit"].read_bytes())
    vi = p.default_index
    per = {name: sum(s.values[vi] for s in p.samples if p.frames[s.stack[-1]].function == name) for name in weird.NAMES}
    busy = sum(per.values())
    thread = sum(s.values[vi] for s in p.samples if s.labels.thread == weird.THREAD_NAME)
    assert busy >= 0.9 * thread  # the named thread spends its time in the four functions
    for name, v in per.items():  # truth: equal CPU time each (within 10 pp)
        assert 100 * v / busy == pytest.approx(100 / len(weird.NAMES), abs=10), (name, per)
    assert any(lb.thread == weird.THREAD_NAME for lb in p.labels_seen())
    assert any(f.file == weird.FILE_NAME for f in p.frames)


def test_svg_shows_names_as_text_without_markup(recorded):
    data = recorded["svg"].read_bytes()
    root = ET.fromstring(data)  # well formed: nothing broke out of text/attributes
    assert len(list(root.iter(f"{SVG}script"))) == 1
    for bad in (b"<script>alert", b"<b>bold", b"<img", b"</text></svg> "):
        assert bad not in data
    frames = [g for g in root.iter(f"{SVG}g") if g.get("class") == "f"]
    labels = {g.get("data-l") for g in frames}
    titles = "\n".join(g.find(f"{SVG}title").text for g in frames)
    for name in weird.NAMES:
        assert visible(name) in labels
        assert visible(name) in titles
    assert visible(weird.FILE_NAME) in titles


def test_html_shows_names_as_text_without_markup(recorded):
    data = recorded["html"].read_bytes()
    text = data.decode()
    assert text.count("<script") == 2 and text.count("</script") == 2
    for bad in ("<script>alert", "<b>bold", "<img", "</text></svg> "):
        assert bad not in text
    doc = json.loads(re.search(r'id="perfkit-data">(.*?)</script>', text, re.S).group(1))
    keys = {k[0] for k in doc["views"][0]["keys"]}
    files = {k[1] for k in doc["views"][0]["keys"]}
    assert set(weird.NAMES) <= keys and weird.FILE_NAME in files
    for name in weird.NAMES:
        assert f">{xml(visible(name))}</td>" in text
    assert f">{xml(visible(weird.THREAD_NAME))}</td>" in text


def test_terminal_tree_shows_names_verbatim(recorded):
    res = run_perfkit("flame", recorded["perfkit"], "--tree", "--min-pct", "5", check=True)
    out = res.stdout
    for name in weird.NAMES:
        assert visible(name) in out
    assert "\x1b" not in out


def test_collapsed_speedscope_pprof_keep_names_exactly(recorded, speedscope_schema):
    p = native.read(recorded["perfkit"].read_bytes())
    names = set(weird.NAMES)
    lines = recorded["collapsed"].read_text().splitlines()
    assert all(re.match(r"^\S.*\S \d+$", ln) for ln in lines)
    c = collapsed.read(recorded["collapsed"].read_bytes())
    assert names <= {f.function for f in c.frames} and weird.FILE_NAME in {f.file for f in c.frames}
    doc = json.loads(recorded["speedscope.json"].read_bytes())
    jsonschema.validate(doc, speedscope_schema)
    s = speedscope.read(recorded["speedscope.json"].read_bytes())
    assert names <= {f.function for f in s.frames}
    assert weird.THREAD_NAME in {lb.thread for lb in s.labels_seen()}
    q = pprof.read(recorded["pb.gz"].read_bytes())
    assert names <= {f.function for f in q.frames}
    assert q.labels_seen() == p.labels_seen()
