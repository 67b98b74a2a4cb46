"""The gate's JUnit XML against the JUnit schema CI servers read (junit-10.xsd: Jenkins xunit /
Surefire, the dialect pytest writes and validates itself against; scripts/setup takes it
from pytest's source distribution), and per-metric failure text."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET

import pytest

from conftest import ROOT, require_tool
from perfkit import stats
from perfkit.gate import report
from perfkit.gate.results import BenchResult, GateResult, MetricResult

XSD = ROOT / "tools" / "schemas" / "junit-10.xsd"
GREW = [{"function": "checksum", "file": "/x/bench.py", "line": 40, "base_pct": 40.0, "new_pct": 60.0,
         "delta_pp": 20.0}]


def _result(strict: bool = False) -> GateResult:
    reg = stats.Interval(1.4, 1.3, 1.5, "wilcoxon-hl", 0.99)
    mem = stats.Interval(1.5, 1.5, 1.5, "paired-t", 0.99)
    inc = stats.Interval(1.0, 0.8, 1.25, "wilcoxon-hl", 0.99)
    same = stats.Interval(1.0, 1.0, 1.0, "paired-t", 0.99)
    b = BenchResult("parse <&> \x01", ["python", "a.py"], ["python", "a.py"], elapsed_s=12.5)
    b.results = [
        MetricResult(b.name, "cpu", [0.1] * 10, [0.14] * 10, 0.03, True, reg, stats.REGRESSION, 1, elapsed_s=4.25),
        MetricResult(b.name, "rss", [16 << 20] * 10, [24 << 20] * 10, 0.01, True, mem, stats.REGRESSION, 1,
                     elapsed_s=4.25),
        MetricResult(b.name, "wall", [0.1] * 30, [0.1] * 30, 0.05, True, inc, stats.INCONCLUSIVE, 3, elapsed_s=4.0),
        MetricResult(b.name, "threads", [1] * 10, [1] * 10, 0.0, True, same, stats.NO_CHANGE, 1, elapsed_s=0.0),
    ]
    b.explanation = {"method": "x", "grew": GREW}
    return GateResult("compare", [b], 0.05, strict, {"python": "3.11.2 (CPython)", "cpus": 2}, elapsed_s=12.5,
                      started=1714564800.0, hostname="ci-runner-7")


@pytest.fixture(scope="module")
def schema():
    import xmlschema

    return xmlschema.XMLSchema(str(require_tool(XSD, "junit-10.xsd (from pytest's sdist)")))


@pytest.mark.parametrize("strict", [False, True])
def test_junit_validates_against_junit_10_xsd(schema, strict):
    xml = report.junit_xml(_result(strict))
    schema.validate(xml.decode("utf-8"))


def test_junit_has_timestamp_hostname_and_per_case_time():
    root = ET.fromstring(report.junit_xml(_result()))
    suite = root.find("testsuite")
    assert suite.get("timestamp") == "2024-05-01T12:00:00+00:00"
    assert suite.get("hostname") == "ci-runner-7" and suite.get("time") == "12.500"
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["python"] == "3.11.2 (CPython)" and props["mode"] == "compare" and props["verdict"] == "regression"
    times = {c.get("name"): c.get("time") for c in suite.iter("testcase")}
    assert times == {"cpu": "4.250", "rss": "4.250", "wall": "4.000", "threads": "0.000"}
    assert suite.get("failures") == "2" and suite.get("skipped") == "1" and suite.get("tests") == "4"


def test_each_failure_names_its_own_metric_and_only_cpu_carries_the_cpu_explanation():
    root = ET.fromstring(report.junit_xml(_result()))
    fails = {c.get("name"): c.find("failure") for c in root.iter("testcase") if c.find("failure") is not None}
    assert set(fails) == {"cpu", "rss"}
    cpu, rss = fails["cpu"], fails["rss"]
    assert cpu.get("message").startswith("cpu regression: +40.0%") and "CPU time" in cpu.get("message")
    assert "CPU share grew in" in cpu.text and "checksum" in cpu.text
    assert rss.get("message").startswith("rss regression: +50.0%"), rss.get("message")
    assert "resident set size" in rss.get("message") and "16.0 MiB" in rss.get("message")
    assert "24.0 MiB" in rss.get("message")
    assert "CPU" not in rss.text and "checksum" not in rss.text, rss.text  # the bug: rss repeated the CPU story
    # annotations follow the same rule
    ann = report.github_annotations(_result())
    rss_line = next(a for a in ann if "rss" in a.split("::")[1])
    assert "checksum" not in rss_line and "checksum" in next(a for a in ann if " cpu::" in a)


def test_untrusted_names_survive_as_text():
    root = ET.fromstring(report.junit_xml(_result()))
    case = root.find(".//testcase")
    assert case.get("classname") == "perfkit.gate.parse <&> \\x01"  # escaped by the serialiser, control char shown


def test_started_defaults_to_now():
    res = GateResult("check", [], 0.05, False, {})
    assert abs(res.started - time.time()) < 60 and res.hostname
