"""Gate reports and config parsing on fixed data (no processes): escaping, JUnit, annotations."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from perfkit import stats
from perfkit.errors import UsageError
from perfkit.gate import config, report
from perfkit.gate.results import BenchResult, GateResult, MetricResult

EVIL = "<script>alert(1)</script>|**x**`\n::error::"


def _result(strict=False) -> GateResult:
    iv_reg = stats.Interval(1.2, 1.1, 1.3, "wilcoxon-hl", 0.99)
    iv_inc = stats.Interval(1.0, 0.8, 1.25, "wilcoxon-hl", 0.99)
    iv_same = stats.Interval(1.0, 1.0, 1.0, "paired-t", 0.99)
    b = BenchResult(EVIL, ["python", "a.py"], ["python", "a.py"])
    b.results = [
        MetricResult(EVIL, "cpu", [0.1] * 10, [0.12] * 10, 0.03, True, iv_reg, stats.REGRESSION, 1),
        MetricResult(EVIL, "wall", [0.1] * 30, [0.1] * 30, 0.05, True, iv_inc, stats.INCONCLUSIVE, 3),
        MetricResult(EVIL, "heap_peak", [1e6] * 3, [1e6] * 3, 0.01, True, iv_same, stats.NO_CHANGE, 1),
    ]
    b.explanation = {"method": "x", "grew": [{"function": "<b>evil|fn</b>", "file": "/x/<y>.py", "line": 3,
                                              "base_pct": 10.0, "new_pct": 30.0, "delta_pp": 20.0}]}
    return GateResult("compare", [b], 0.05, strict, {"python": "3.11"}, warnings=["odd `warning` <i>"])


def test_verdict_and_exit_codes():
    res = _result()
    assert res.verdict == "regression" and res.exit_code == 1
    res.benchmarks[0].results[0].decision = stats.NO_CHANGE
    assert res.verdict == "inconclusive" and res.exit_code == 0
    res.strict = True
    assert res.exit_code == 1


def test_markdown_escapes_untrusted_names():
    md = report.markdown(_result())
    assert "<script>" not in md and "<b>" not in md and "<i>" not in md
    assert "&lt;script&gt;" in md
    table_rows = [ln for ln in md.splitlines() if ln.startswith("| ") and "cpu" in ln]
    assert len(table_rows) == 1 and table_rows[0].count(" | ") == 8  # the name's '|' cannot add a column
    assert "+20.0%" in table_rows[0] and "regression" in table_rows[0]
    assert "evil" in md and "10.0% → 30.0%" in md


def test_junit_is_valid_xml_with_one_failure_and_one_skip():
    root = ET.fromstring(report.junit_xml(_result()))
    suite = root.find("testsuite")
    assert suite.get("tests") == "3" and suite.get("failures") == "1" and suite.get("skipped") == "1"
    failure = root.find(".//failure")
    assert "cpu regression" in failure.get("message") and "evil|fn" in failure.text
    strict = ET.fromstring(report.junit_xml(_result(strict=True)))
    assert strict.find("testsuite").get("failures") == "2"


def test_github_annotations_are_percent_encoded():
    lines = report.github_annotations(_result())
    errors = [ln for ln in lines if ln.startswith("::error ")]
    assert len(errors) == 1
    assert "\n" not in errors[0] and "%0A" in errors[0]
    title = errors[0].split("::")[1]
    assert ":" not in title.replace("title=", "", 1).replace("%3A", "")  # no raw ':' in the property
    assert any(ln.startswith("::warning ") and "wall" in ln for ln in lines)


def test_terminal_view_renders_names_as_text():
    from rich.console import Console

    con = Console(record=True, width=200, color_system=None)
    con.print(report.TerminalView(_result()))
    text = con.export_text()
    assert "<script>alert(1)</script>" in text  # shown literally, not interpreted
    assert "regression" in text and "FAIL" in text


def test_config_both_benchmark_forms(tmp_path):
    p = tmp_path / "pyproject.toml"
    p.write_text("""
[tool.perfkit.gate]
metrics = ["cpu", "heap_peak"]
repetitions = 6
[tool.perfkit.gate.min_effect]
cpu = 0.1
[tool.perfkit.gate.benchmarks.a]
command = "python bench.py --n 3"
cwd = "sub"
metrics = ["instructions"]
""")
    cfg = config.load(p)
    assert cfg.repetitions == 6 and cfg.max_repetitions == 30
    a = cfg.benchmarks[0]
    assert a.command == ["python", "bench.py", "--n", "3"] and a.cwd == str((tmp_path / "sub").resolve())
    assert cfg.metrics_for(a) == ("instructions",) and cfg.threshold(a, "cpu") == 0.1
    assert cfg.threshold(a, "heap_peak") == 0.01
    assert cfg.baseline == str(tmp_path / ".perfkit/gate-baseline.json")
    p.write_text('[[tool.perfkit.gate.benchmarks]]\nname = "b"\ncommand = ["python", "x.py"]\n')
    assert [b.name for b in config.load(p).benchmarks] == ["b"]


def test_config_flag_overrides():
    cfg = config.with_overrides(config.GateConfig(), repetitions=40, min_effect={"cpu": 0.2})
    assert cfg.max_repetitions == 40 and cfg.min_effect == {"cpu": 0.2}
    assert config.parse_min_effects(["cpu=5%", "wall=0.1"]) == {"cpu": 0.05, "wall": 0.1}
    with pytest.raises(UsageError):
        config.with_overrides(config.GateConfig(), repetitions=10, max_repetitions=5)


def test_runs_whose_profiles_hold_no_stacks_explain_nothing_and_do_not_fail():
    # CI saw "baseline profile holds no stacks" exit 2 from a gate whose py-spy runs caught
    # only import time (dropped as noise): an empty profile is nothing to explain
    from perfkit.gate import explain
    from perfkit.model import SAMPLES, Profile

    empty = Profile(frames=[], sample_types=[SAMPLES], samples=[])
    out = explain.explain([empty, empty], [empty, empty])
    assert out["grew"] == [] and out["base_samples"] == 0 and out["head_samples"] == 0
    assert explain.merge(["", "  \n"]).samples == []
