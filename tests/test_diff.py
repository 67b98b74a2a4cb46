"""`perfkit diff` and perfkit.analysis.diff: shares normalised to totals, the live
cpu_split 75:25 → 25:75 answer, and the differential SVG/HTML."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from test_flame import html_data, svg_frames

from conftest import run_perfkit, scenario
from perfkit.analysis.diff import diff
from perfkit.formats import native
from perfkit.model import SAMPLES, Frame, ProfileBuilder
from perfkit.render import flamegraph_svg, html_report

FIX = Path(__file__).parent / "fixtures"


def fixture(name):
    return native.read((FIX / name).read_bytes())


def simple(weights: dict[str, int]):
    b = ProfileBuilder([SAMPLES])
    for fn, w in weights.items():
        b.add([Frame("main", "/a.py", 1), Frame(fn, "/a.py", 2)], (w,))
    return b.build()


def test_diff_normalises_to_totals():
    base = simple({"a": 30, "b": 10})  # 75:25
    new = simple({"a": 100, "b": 300, "c": 100})  # 20:60:20, five times bigger
    r = diff(base, new)
    rows = {x.function: x for x in r.rows}
    assert rows["a"].base_pct == pytest.approx(75) and rows["a"].new_pct == pytest.approx(20)
    assert rows["a"].delta_pp == pytest.approx(-55) and rows["b"].delta_pp == pytest.approx(35)
    assert rows["c"].delta_pp == pytest.approx(20) and rows["c"].status == "appeared"
    assert rows["main"].delta_pp == 0 and rows["main"].base_total_pct == rows["main"].new_total_pct == 100
    assert [x.function for x in r.rows][:3] == ["a", "b", "c"]  # by |delta| desc
    doc = r.to_json()
    assert doc["rows"][0]["function"] == "a" and doc["base_total"] == 40 and doc["new_total"] == 500
    from rich.console import Console

    from perfkit.render.diff_view import DiffView

    con = Console(width=150, record=True, no_color=True)
    con.print(DiffView(r))
    assert re.search(r"-55\.00 .* a ", con.export_text())


def test_diff_of_identical_profiles_is_zero():
    p = fixture("cpu_split_75_25.perfkit")
    assert all(abs(r.delta_pp) < 1e-9 for r in diff(p, p).rows)


def test_recorded_fixtures_diff_and_differential_graphs():
    base, new = fixture("cpu_split_75_25.perfkit"), fixture("cpu_split_25_75.perfkit")
    rows = {r.function: r for r in diff(base, new).rows}
    assert rows["spin_a"].delta_pp == pytest.approx(-50, abs=10)
    assert rows["spin_b"].delta_pp == pytest.approx(50, abs=10)
    frames = {f["name"]: f for f in svg_frames(flamegraph_svg.write_diff(base, new)) if "cpu_split" in f["n"]}
    red = re.compile(r"rgb\(250,(\d+),\1\)")
    assert "→ new" in frames["spin_b"]["title"]
    svg = flamegraph_svg.write_diff(base, new).decode()
    a_fill = re.search(r'data-l="spin_a".*?fill="(rgb\([^)]*\))"', svg, re.S).group(1)
    b_fill = re.search(r'data-l="spin_b".*?fill="(rgb\([^)]*\))"', svg, re.S).group(1)
    assert red.match(b_fill) and a_fill.endswith(",250)") and a_fill != "rgb(250,250,250)"
    # widths follow the new profile
    assert frames["spin_b"]["w"] > frames["spin_a"]["w"]
    data = html_report.write_diff(base, new)
    doc = html_data(data)
    assert doc["diff"] is True
    boxes = {doc["views"][0]["keys"][b[0]][0]: b for b in doc["views"][0]["boxes"]}
    assert boxes["spin_a"][8] - boxes["spin_a"][7] == pytest.approx(rows["spin_a"].total_delta_pp, abs=1e-3)
    assert b"Functions whose share changed most" in data and b"Base recording" in data


@pytest.mark.live
def test_live_cpu_split_75_25_then_25_75(tmp_path):
    """Truth: spin_a goes from 75% to 25% (-50 pp), spin_b from 25% to 75% (+50 pp)."""
    import time

    import psutil

    paths = []
    for ratio in ("75:25", "25:75"):
        out = tmp_path / f"{ratio.replace(':', '_')}.perfkit"
        with scenario("cpu_split", "--ratio", ratio, "--duration", "8") as sc:
            proc = psutil.Process(sc.pid)
            cpu0, t0 = sum(proc.cpu_times()[:2]), time.monotonic()
            run_perfkit("cpu", "--pid", sc.pid, "-d", "3", "--rate", "250", "-o", out, check=True, timeout=60)
            busy = (sum(proc.cpu_times()[:2]) - cpu0) / (time.monotonic() - t0)
        paths.append((out, busy))
    html, svg = tmp_path / "d.html", tmp_path / "d.svg"
    doc = json.loads(run_perfkit("diff", paths[0][0], paths[1][0], "-o", html, "-o", svg, "--json", check=True).stdout)
    rows = {r["function"]: r for r in doc["rows"]}
    assert rows["spin_a"]["delta_pp"] < -10 and rows["spin_b"]["delta_pp"] > 10
    # the two changed functions lead, largest |change| first (their changes are near
    # mirror images, so either may come first)
    top2 = doc["rows"][:2]
    assert {r["function"] for r in top2} == {"spin_a", "spin_b"}
    assert abs(top2[0]["delta_pp"]) >= abs(top2[1]["delta_pp"])
    assert html.stat().st_size > 0 and svg.stat().st_size > 0
    res = run_perfkit("diff", paths[0][0], paths[1][0], "--top", "5", check=True)
    assert re.search(r"[-]\d\d\.\d\d .*spin_a", res.stdout) and re.search(r"\+\d\d\.\d\d .*spin_b", res.stdout)
    busy = min(b for _, b in paths)
    if busy < 0.8:
        # The scenario's truth needs a core: it splits by wall-clock slices, which drift
        # toward 50:50 when the OS keeps preempting it (other test runs on a shared box).
        pytest.skip(f"truth check skipped: cpu_split got only {100 * busy:.0f}% of a core (machine oversubscribed); "
                    f"measured {rows['spin_a']['delta_pp']:+.1f} / {rows['spin_b']['delta_pp']:+.1f} pp")
    assert rows["spin_a"]["delta_pp"] == pytest.approx(-50, abs=5)
    assert rows["spin_b"]["delta_pp"] == pytest.approx(50, abs=5)


def test_diff_rejects_non_graph_outputs_and_bad_value(tmp_path):
    a, b = FIX / "cpu_split_75_25.perfkit", FIX / "cpu_split_25_75.perfkit"
    res = run_perfkit("diff", a, b, "-o", tmp_path / "d.pb.gz")
    assert res.returncode == 2 and "use an .html or .svg output" in res.stderr
    res = run_perfkit("diff", a, b, "--value", "alloc_space")
    assert res.returncode == 2 and "no value type" in res.stderr and "Traceback" not in res.stderr


def test_diff_filters_apply_to_both(tmp_path):
    a, b = FIX / "cpu_split_75_25.perfkit", FIX / "cpu_split_25_75.perfkit"
    doc = json.loads(run_perfkit("diff", a, b, "--ignore", "spin_b", "--json", check=True).stdout)
    rows = {r["function"]: r for r in doc["rows"]}
    assert "spin_b" not in rows and rows["spin_a"]["new_pct"] > 90


@pytest.mark.live
def test_live_vanished_wrapper_without_self_time_is_listed_near_the_top(tmp_path):
    """Truth (scenarios/diff_pair.py): `validate` (no self time, 40 % total) vanishes;
    `new_feature` appears at 33.3 %; parse/render/check_rows do the same work per second
    while their shares shrink.  Shares hold whatever the load; per-second values only
    while the box gives the service the CPU it asks for."""
    import psutil

    paths = {}
    busy = {}
    for version in ("base", "head"):
        out = tmp_path / f"{version}.perfkit"
        with scenario("diff_pair", "--version", version, "--duration", "30") as sc:
            proc = psutil.Process(sc.pid)
            cpu0, t0 = sum(proc.cpu_times()[:2]), time.monotonic()
            run_perfkit("cpu", "--pid", sc.pid, "-d", "10", "-o", out, check=True, timeout=60)
            busy[version] = (sum(proc.cpu_times()[:2]) - cpu0) / (time.monotonic() - t0)
        paths[version] = out
    doc = json.loads(run_perfkit("diff", paths["base"], paths["head"], "--json", check=True).stdout)
    rows = {r["function"]: r for r in doc["rows"]}
    names = [r["function"] for r in doc["rows"]]
    v = rows["validate"]
    # ~500 base samples (10 s at 100 Hz, half a CPU): a 40 % share has a 2.2 pp standard error; 10 pp is > 4 sigma
    assert v["status"] == "vanished" and v["delta_pp"] == 0 and v["total_delta_pp"] == pytest.approx(-40, abs=10)
    assert names.index("validate") < 3, names[:5]
    assert "validate" in [r["function"] for r in doc["vanished"]]
    assert rows["new_feature"]["status"] == "appeared"
    assert rows["new_feature"]["new_total_pct"] == pytest.approx(100 / 3, abs=10)
    assert names.index("new_feature") < 3, names[:5]
    assert rows["parse"]["total_delta_pp"] < -5  # its share shrank ...
    res = run_perfkit("diff", paths["base"], paths["head"], "--top", "5", env={"COLUMNS": "80"}, check=True)
    table = res.stdout.split("─" * 20, 1)[1]
    assert "vanished" in table and "validate" in table and "appeared" in table, res.stdout
    assert max(len(ln) for ln in res.stdout.splitlines()) <= 80
    if not (0.45 <= busy["base"] <= 0.55 and 0.68 <= busy["head"] <= 0.82):
        pytest.skip(f"per-second check skipped: the service got {busy['base']:.2f} / {busy['head']:.2f} CPUs "
                    f"(designed 0.5 / 0.75): the machine is oversubscribed")
    assert doc["absolute"] is True
    # ... but its work per second did not change.  Judged on shares all three would be
    # "shrank" (their shares fell by ~1/3); judged per second each is "same" unless its
    # rate drifts past the 99 % interval, which a loaded box does to one now and then:
    # at most one of the three may be flagged, and only by a per-second change, not its share.
    flagged = [rows[fn] for fn in ("parse", "check_rows", "render") if rows[fn]["status"] != "same"]
    assert len(flagged) <= 1, flagged
    for r in flagged:
        assert abs(r["delta_per_s"]) / 1e9 < 0.08, r
    # 0.2 CPU-s/s over 10 s is ~200 samples: 7 % relative error, 0.014/s; 0.045 is > 3 sigma
    # (at 6 s it was 2.5 sigma: 0.159 was seen)
    for fn, truth in (("parse", 0.2), ("check_rows", 0.2), ("render", 0.1)):
        r = rows[fn]
        assert r["base_total_per_s"] / 1e9 == pytest.approx(truth, abs=0.045), r
        assert r["new_total_per_s"] / 1e9 == pytest.approx(truth, abs=0.045), r
