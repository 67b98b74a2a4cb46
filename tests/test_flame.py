"""Flame graph renderers (SVG, HTML) and the terminal tree, on recorded fixtures:
widths proportional to weights, deterministic output, offline HTML with series and
metadata, and `perfkit flame` end to end."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import run_perfkit
from perfkit.formats import native
from perfkit.model import ALLOC_SPACE, INUSE_SPACE, Frame, Labels, ProfileBuilder
from perfkit.render import flamegraph_svg, html_report

FIX = Path(__file__).parent / "fixtures"
SVG = "{http://www.w3.org/2000/svg}"


def fixture(name="cpu_split_75_25.perfkit"):
    return native.read((FIX / name).read_bytes())


def svg_frames(data: bytes) -> list[dict]:
    root = ET.fromstring(data)
    out = []
    for g in root.iter(f"{SVG}g"):
        if g.get("class") != "f":
            continue
        rect = g.find(f"{SVG}rect")
        out.append({"name": g.get("data-l"), "n": g.get("data-n"), "v": int(g.get("data-v")), "d": int(g.get("data-d")),
                    "x": float(rect.get("x")), "w": float(rect.get("width")), "title": g.find(f"{SVG}title").text,
                    "text": g.find(f"{SVG}text").text or ""})
    return out


def html_data(data: bytes) -> dict:
    m = re.search(rb'<script type="application/json" id="perfkit-data">(.*?)</script>', data, re.S)
    return json.loads(m.group(1))


@pytest.mark.live
def test_svg_widths_proportional_to_weights_on_recorded_scenario():
    p = fixture()
    total = p.total(1)
    frames = {f["name"]: f for f in svg_frames(flamegraph_svg.write(p)) if "cpu_split.py" in f["n"]}
    inner = 1200 - 2 * flamegraph_svg.PAD
    root = frames["<module>"]
    for name in ("spin_a", "spin_b", "main"):
        f = frames[name]
        value = sum(s.values[1] for s in p.samples
                    if any(p.frames[i].function == name and "cpu_split" in p.frames[i].file for i in s.stack))
        assert f["v"] == value
        assert f["w"] == pytest.approx(inner * value / total, abs=0.011)
    assert frames["spin_a"]["w"] / frames["spin_b"]["w"] == pytest.approx(frames["spin_a"]["v"] / frames["spin_b"]["v"],
                                                                        rel=1e-3)
    # spin_a is ~75% of the recording (scenario truth 75:25, within 8 pp on a loaded box)
    assert 100 * frames["spin_a"]["v"] / total == pytest.approx(75, abs=8)
    assert root["d"] == 0 and frames["main"]["d"] == 1 and frames["spin_a"]["d"] == 2
    # children lie inside their parent
    assert frames["main"]["x"] >= root["x"] - 0.01 and frames["spin_a"]["x"] >= frames["main"]["x"] - 0.01


def test_svg_value_option_and_samples_weighting():
    p = fixture()
    frames = {f["name"]: f for f in svg_frames(flamegraph_svg.write(p, value="samples"))}
    assert frames["spin_a"]["v"] == sum(s.values[0] for s in p.samples if p.frames[s.stack[-1]].function == "spin_a")


def test_svg_and_html_are_deterministic():
    p = fixture()
    assert flamegraph_svg.write(p) == flamegraph_svg.write(p)
    assert html_report.write(p) == html_report.write(p)
    b = fixture("cpu_split_25_75.perfkit")
    assert flamegraph_svg.write_diff(b, p) == flamegraph_svg.write_diff(b, p)


def test_svg_has_interactive_controls_and_legend():
    data = flamegraph_svg.write(fixture()).decode()
    for needle in ('id="unzoom"', 'id="search"', 'id="matched"', 'id="details"', "your code", "stdlib",
                   "third-party", "native", "<script><![CDATA["):
        assert needle in data


def test_colours_by_package():
    from perfkit.render import flametree as ft

    assert ft.category("/srv/app/x.py") == ft.OWN
    assert ft.category("/usr/lib/python3.11/json/decoder.py") == ft.STDLIB
    assert ft.category("<frozen importlib._bootstrap>") == ft.STDLIB
    assert ft.category("/venv/lib/python3.11/site-packages/requests/api.py") == ft.THIRD
    assert ft.category("") == ft.NATIVE and ft.category("/usr/lib/libc.so.6") == ft.NATIVE


def heap_with_series():
    b = ProfileBuilder([ALLOC_SPACE, INUSE_SPACE], {"kind": "heap", "target": "pid 42", "tool": "memray"}, 1)
    b.add([Frame("main", "/a.py", 1), Frame("grow", "/a.py", 5)], (8 << 20, 6 << 20), Labels(42, 43, "MainThread"))
    b.add([Frame("main", "/a.py", 1), Frame("churn", "/a.py", 9)], (32 << 20, 1 << 20), Labels(42, 43, "MainThread"))
    b.series = {"rss_bytes": [[0, 10e6], [1, 14e6], [2, 19e6]], "heap_bytes": [[0, 1e6], [2, 7e6]]}
    return b.build()


def test_html_is_offline_and_holds_flame_data_table_metadata_and_series_charts():
    p = heap_with_series()
    data = html_report.write(p)
    text = data.decode()
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in text and "<link" not in text and " src=" not in text
    doc = html_data(data)
    first = doc["views"][0]
    assert first["name"].startswith("inuse_space") and first["unit"] == "bytes" and first["total"] == 7 << 20
    assert {v["name"].split()[0] for v in doc["views"]} == {"inuse_space", "alloc_space"}
    by_name = {first["keys"][b[0]][0]: b for b in first["boxes"]}
    assert by_name["grow"][3] == pytest.approx(6 / 7, abs=1e-6)  # width fraction = share
    assert by_name["grow"][4] == 6 << 20
    assert text.count('<figure class="chart">') == 2 and "rss_bytes" in text and "18.1 MiB" in text
    assert "<dt>tool</dt><dd>memray</dd>" in text
    assert 'class="sortable"' in text and "Icicle" in text
    assert ">grow<" in text  # the top table


def test_html_value_option_orders_views():
    doc = html_data(html_report.write(heap_with_series(), value="alloc_space"))
    assert doc["views"][0]["name"].startswith("alloc_space") and doc["views"][0]["total"] == 40 << 20


def test_html_quality_summary_from_cpu_metadata():
    text = html_report.write(fixture()).decode()
    assert "Recording quality" in text and "achieved rate" in text and "of the requested rate" in text


def test_tree_command_shows_split_and_json(tmp_path):
    res = run_perfkit("flame", FIX / "cpu_split_75_25.perfkit", "--tree", check=True)
    assert re.search(r"\d+\.\d% spin_a", res.stdout) and "spin_b" in res.stdout
    doc = json.loads(run_perfkit("flame", FIX / "cpu_split_75_25.perfkit", "--tree", "--json", check=True).stdout)
    main = doc["tree"]["children"][0]["children"][0]
    kids = {c["function"]: c["pct"] for c in main["children"]}
    p = fixture()
    assert kids["spin_a"] == pytest.approx(100 * sum(s.values[1] for s in p.samples
                                                    if p.frames[s.stack[-1]].function == "spin_a") / p.total(1),
                                                abs=0.01)


def test_flame_command_writes_svg_and_html_with_filters(tmp_path):
    svg, html = tmp_path / "f.svg", tmp_path / "f.html"
    res = run_perfkit("flame", FIX / "cpu_split_75_25.perfkit", "-o", svg, "-o", html, "--focus", "spin_b", check=True)
    assert "wrote" in res.stderr
    names = {f["name"] for f in svg_frames(svg.read_bytes())}
    assert "spin_b" in names and "spin_a" not in names
    assert (svg.stat().st_mode & 0o777) == 0o600
    doc = html_data(html.read_bytes())
    assert doc["views"][0]["total"] == sum(s.values[1] for s in fixture().samples
                                           if any(fixture().frames[i].function == "spin_b" for i in s.stack))
    res = run_perfkit("flame", FIX / "cpu_split_75_25.perfkit", "--tree", "--ignore", "spin_a", "--thread", "^nomatch$")
    assert res.returncode == 0 and "empty profile" in res.stdout


def test_flame_pid_filter_and_unknown_value(tmp_path):
    pid = fixture().recording.pid
    res = run_perfkit("flame", FIX / "cpu_split_75_25.perfkit", "--pid", str(pid + 1), "--tree")
    assert res.returncode == 0 and "no cpu left to draw" in res.stderr
    res = run_perfkit("flame", FIX / "cpu_split_75_25.perfkit", "--value", "bogus", "-o", tmp_path / "x.svg")
    assert res.returncode == 2 and "no value type 'bogus'" in res.stderr and "Traceback" not in res.stderr


def test_html_script_runs_and_draws_search_zoom_hover(tmp_path):
    """The report's JavaScript, run by node against a minimal DOM stub."""
    import shutil
    import subprocess

    from conftest import IN_CI

    if shutil.which("node") is None:
        if IN_CI:
            pytest.fail("node not installed; run ./scripts/setup")
        pytest.skip("node not installed")
    data = html_report.write(fixture())
    script = re.findall(rb"<script>(.*?)</script>", data, re.S)[-1]
    (tmp_path / "r.js").write_bytes(script)
    (tmp_path / "d.json").write_bytes(re.search(rb'id="perfkit-data">(.*?)</script>', data, re.S).group(1))
    res = subprocess.run(["node", str(Path(__file__).parent / "js" / "run_report.js"), str(tmp_path / "r.js"),
                          str(tmp_path / "d.json")], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert "spin_a" in out["initial"]["texts"] and out["initial"]["rects"] >= 4
    p = fixture()
    b_share = 100 * sum(s.values[1] for s in p.samples if p.frames[s.stack[-1]].function == "spin_b") / p.total(1)
    assert out["matched"] == f"matched {b_share:.2f}%"
    a_share = 100 * sum(s.values[1] for s in p.samples if p.frames[s.stack[-1]].function == "spin_a") / p.total(1)
    assert out["tip"].startswith("spin_a\n") and f"({a_share:.2f}%)" in out["tip"]
    assert out["zoomed"]["widest"] == pytest.approx(1000, abs=1)  # the clicked frame fills the width
    assert out["icicle"] == "Flame"


def test_svg_script_search_and_zoom(tmp_path):
    """The SVG's JavaScript under node with a DOM stub: search → matched %, click → zoom."""
    import shutil
    import subprocess

    from conftest import IN_CI

    if shutil.which("node") is None:
        if IN_CI:
            pytest.fail("node not installed; run ./scripts/setup")
        pytest.skip("node not installed")
    p = fixture()
    data = flamegraph_svg.write(p)
    frames = svg_frames(data)
    script = data.split(b"<![CDATA[")[1].split(b"]]>")[0]
    (tmp_path / "s.js").write_bytes(script)
    (tmp_path / "f.json").write_text(json.dumps({"frames": frames, "total": p.total(1), "search": "^spin_",
                                                 "zoom": "spin_b"}))
    res = subprocess.run(["node", str(Path(__file__).parent / "js" / "run_svg.js"), str(tmp_path / "s.js"),
                          str(tmp_path / "f.json")], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    share = 100 * sum(s.values[1] for s in p.samples if p.frames[s.stack[-1]].function.startswith("spin_")) / p.total(1)
    assert out["matched"] == f"Matched: {share:.2f}%"
    assert sorted(out["highlighted"]) == ["spin_a", "spin_b"]
    zoom = {z["name"]: z for z in out["zoom"] if z["name"] in ("spin_a", "spin_b", "main")}
    inner = 1200 - 2 * flamegraph_svg.PAD
    assert zoom["spin_b"]["shown"] and zoom["spin_b"]["w"] == pytest.approx(inner, abs=0.02)
    assert zoom["spin_b"]["text"] == "spin_b"
    assert not zoom["spin_a"]["shown"]
    assert out["details"].startswith("spin_b · ")
    assert out["reset"] == pytest.approx([f["w"] for f in frames], abs=0.01)
