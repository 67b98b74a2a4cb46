"""`perfkit gate` end to end on the real bench_slowdown scenario (real runs, memray, py-spy).

Truths (scenarios/bench_slowdown.py): identical commands differ in nothing; --slowdown
0.5 adds 50 % more loop work, all in `checksum`; --slowdown-ms M adds exactly M ms of
CPU time in `checksum`; --mem-increase 0.5 makes the peak buffer 50 % larger
(16 MiB -> 24 MiB); callgrind instruction counts are reproducible.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import xml.etree.ElementTree as ET

import pytest

from conftest import PY, SCENARIOS, run_perfkit

SCEN = str(SCENARIOS / "bench_slowdown.py")
pytestmark = pytest.mark.live


def bench(*extra: str, work: int = 150) -> str:
    return shlex.join([PY, SCEN, "--quiet", "--work", str(work), *extra])


def decisions(doc: dict) -> dict[str, str]:
    return {m["metric"]: m["decision"] for b in doc["benchmarks"] for m in b["metrics"]}


def test_identical_code_is_not_a_regression():
    res = run_perfkit("gate", "compare", "--base-cmd", bench(), "--head-cmd", bench(), "--json",
                      "-m", "cpu,rss,threads,allocations,heap_peak", "--no-profile", "--max-repetitions", "10")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    d = decisions(doc)
    assert "regression" not in d.values(), d
    # the deterministic metrics are decided exactly: no change
    for m in ("allocations", "heap_peak", "threads"):
        assert d[m] == "no change", d
    assert doc["verdict"] in ("pass", "inconclusive")


def test_large_slowdown_and_memory_increase_are_caught_and_explained(tmp_path):
    md, junit, summary = tmp_path / "gate.md", tmp_path / "gate.xml", tmp_path / "summary.md"
    # --work 5000 (~0.6 s): py-spy attaches to a launched run ~0.1 s (more on a loaded
    # box) after it starts and misses a varying part of its beginning; on a 0.15 s run
    # that alone moves a function's share by 10-20 pp from run to run, which the
    # consistency test rightly refuses to call a change
    res = run_perfkit("gate", "compare", "--base-cmd", bench(work=5000), "--head-cmd",
                      bench("--slowdown", "0.5", "--mem-increase", "0.5", work=5000), "--json",
                      "-m", "cpu,rss,threads,heap_peak", "--markdown", md, "--junit", junit,
                      "--diff-dir", tmp_path / "d",
                      env={"GITHUB_STEP_SUMMARY": str(summary), "GITHUB_ACTIONS": "true"}, timeout=400)
    assert res.returncode == 1, res.stderr
    doc = json.loads(res.stdout)
    d = decisions(doc)
    assert d["cpu"] == "regression" and d["heap_peak"] == "regression" and d["rss"] == "regression", d
    assert d["threads"] == "no change"
    by_metric = {m["metric"]: m for m in doc["benchmarks"][0]["metrics"]}
    # truth: +50 % buffer -> heap peak about +47 % (the buffer is ~95 % of the peak)
    assert 0.35 <= by_metric["heap_peak"]["change"] <= 0.55
    # +50 % loop work is more CPU; how much depends on the loop's part of the run (the
    # exact recovery of a known CPU increase is test_cpu_estimate_recovers_injected_cpu)
    assert by_metric["cpu"]["change"] > 0.1
    # the explanation names the benchmark's own loop, and only functions that changed
    # consistently: checksum first (your code, by total share); nothing that shrank
    expl = doc["benchmarks"][0]["explanation"]
    assert expl["your_code"] and expl["your_code"][0]["function"] == "checksum", json.dumps(expl)
    assert expl["grew"][0]["function"] == "checksum", expl
    assert expl["your_code"][0]["delta_pp"] > 3 and expl["your_code"][0]["interval_pp"][0] > 0
    named = {g["function"] for g in expl["grew"]}
    assert not named & {"parse_records", "summarize"}, expl  # their shares shrank
    # how much of each run py-spy saw (it attaches after start-up), and the note iff < 85 %
    seen = expl["seen"]
    assert 0.3 < seen["base"] <= 1.0 and 0.3 < seen["head"] <= 1.0, seen
    noted = any(n.startswith("py-spy saw") for n in doc["benchmarks"][0]["notes"])
    assert noted == (min(seen.values()) < 0.85), (seen, doc["benchmarks"][0]["notes"])
    # reports: markdown file, step summary, JUnit, ::error annotations (stderr under --json)
    assert "checksum" in md.read_text() and "regression" in md.read_text()
    assert summary.read_text() == md.read_text() + "\n"
    root = ET.parse(junit).getroot()
    assert root.get("failures") == "3"
    assert "::error title=perfkit gate%3A benchmark cpu::" in res.stderr
    assert oct(os.stat(md).st_mode & 0o777) == "0o600"
    # the differential flame graph of base vs head, when the SVG renderer is present
    try:
        import perfkit.render.flamegraph_svg  # noqa: F401
    except ImportError:
        return
    svg = (tmp_path / "d" / "benchmark.diff.svg").read_text()
    assert "<svg" in svg and "checksum" in svg
    assert doc["benchmarks"][0]["explanation"]["svg"].endswith("benchmark.diff.svg")


@pytest.mark.parametrize("extra_ms", [40, 80])
def test_cpu_estimate_recovers_injected_cpu(extra_ms):
    """Truth: the head spends exactly extra_ms more CPU per run (--slowdown-ms, paced by
    the process's CPU clock, so load does not change it).  The gate's estimate of the
    change times the base median CPU recovers it within 3 standard errors of the paired
    estimate, at least 15 ms (on a quiet day the base run's CPU varies by ~10 ms and 12
    pairs give ~4 ms; the standard error is taken from the runs themselves).  The
    difference of the medians recovers it too, within 3 standard errors of such a
    difference."""
    res = run_perfkit("gate", "compare", "--base-cmd", bench(work=1000),
                      "--head-cmd", bench("--slowdown-ms", str(extra_ms), work=1000), "-m", "cpu", "--json",
                      "--no-profile", "--repetitions", "12", "--max-repetitions", "24", timeout=240)
    assert res.returncode in (0, 1), res.stderr
    m = json.loads(res.stdout)["benchmarks"][0]["metrics"][0]
    from perfkit import stats

    base_ms = m["base"]["median"] * 1000
    recovered = m["change"] * base_ms
    # the paired estimate's standard error is ~ sd(log head - log base) / sqrt(n) (Hodges-
    # Lehmann is ~95 % efficient); held to 3 of them and at least 15 ms.  One fresh-clone
    # run on a noisy day saw base runs spread far more than ~10 ms and recovered 23.6 ms
    # for 40 (its interval, +2.8…+33.7 %, implies a standard error of ~10 ms)
    logd = [math.log(h / b) for b, h in zip(m["base"]["values"], m["head"]["values"])]
    paired_tol = max(15.0, 3 * 1.05 * stats.robust_sd(logd) / len(logd) ** 0.5 * base_ms * (1 + m["change"]))
    assert abs(recovered - extra_ms) <= paired_tol, (recovered, paired_tol, base_ms, m["interval"])
    # the medians of ~12 unpaired runs are noisier than the paired estimate: held to 3
    # standard errors of a difference of medians (1.25 sd / sqrt(n) each), at least 15 ms
    n = min(len(m["base"]["values"]), len(m["head"]["values"]))
    sd = max(stats.robust_sd(m["base"]["values"]), stats.robust_sd(m["head"]["values"])) * 1000
    tol = max(15.0, 3 * 1.25 * sd * (2 / n) ** 0.5)
    medians = (m["head"]["median"] - m["base"]["median"]) * 1000
    assert abs(medians - extra_ms) <= tol, (medians, tol, m["base"]["values"], m["head"]["values"])
    assert m["decision"] == "regression"  # +40 ms on ~140 ms is far over the 3 % minimum effect


def test_null_change_names_no_function():
    """Truth: identical commands; the explanation of their profiles names nothing."""
    from perfkit.gate import bench as gate_bench
    from perfkit.gate import explain

    spec = gate_bench.RunSpec(name="same", command=shlex.split(bench_cmd := bench(work=5000)))
    base, head = gate_bench.profile_pairs(spec, spec, rate=500)  # interleaved, as compare profiles them
    out = explain.explain(base, head)
    assert out["grew"] == [] and out["your_code"] == [], (bench_cmd, json.dumps(out))
    assert out["tested"] > 0 and "no function" in out["method"]


def test_record_then_check_names_the_slowed_function(tmp_path):
    (tmp_path / "pyproject.toml").write_text(f"""
[tool.perfkit.gate]
baseline = "perf/baseline.json"
metrics = ["cpu", "heap_peak"]
repetitions = 10
max_repetitions = 10
deterministic_repetitions = 2
warmups = 0

[tool.perfkit.gate.benchmarks.slow]
command = {json.dumps(shlex.split(bench(work=3000)))}
""")
    cfg = tmp_path / "pyproject.toml"
    rec = run_perfkit("gate", "record", "--config", cfg, "--json", timeout=400)
    assert rec.returncode == 0, rec.stderr
    stored = json.loads((tmp_path / "perf" / "baseline.json").read_text())
    assert len(stored["benchmarks"]["slow"]["metrics"]["cpu"]) == 10
    assert len(stored["benchmarks"]["slow"]["metrics"]["heap_peak"]) == 6
    assert len(stored["benchmarks"]["slow"]["profiles"]) >= 3
    assert all("checksum" in t for t in stored["benchmarks"]["slow"]["profiles"])
    assert stored["environment"]["cpu_model"]
    # unpaired against a stored baseline, CPU time follows the machine's load between the
    # two commands (that is why `compare` is recommended): the identical check uses the
    # deterministic metric only
    same = run_perfkit("gate", "check", "--config", cfg, "--json", "--no-profile", "-m", "heap_peak")
    assert same.returncode == 0, same.stderr
    assert "regression" not in decisions(json.loads(same.stdout)).values()
    # +100 % loop work (CPU ~1.9x): unpaired runs minutes apart on a shared machine spread
    # ~0.33-0.49 s for the same 0.37 s run, so +50 % overlapped enough once in a fresh-clone
    # CI run to be "inconclusive"; this test is about check naming the function, the
    # paired `compare` tests and benchmarks/ measure sensitivity
    worse = run_perfkit("gate", "check", "--config", cfg, "--json", "--name", "slow", "--",
                        *shlex.split(bench("--slowdown", "1.0", work=3000)), timeout=400)
    assert worse.returncode == 1, worse.stderr
    doc = json.loads(worse.stdout)
    assert decisions(doc)["cpu"] == "regression"
    grew = doc["benchmarks"][0]["explanation"]["grew"]
    assert grew and grew[0]["function"] == "checksum", grew
    assert "command changed" in " ".join(doc["benchmarks"][0]["notes"])


def test_callgrind_catches_a_five_percent_instruction_increase(tmp_path):
    if not any(os.access(os.path.join(d, "valgrind"), os.X_OK) for d in os.environ["PATH"].split(os.pathsep)):
        pytest.skip("valgrind not installed")
    cfg = tmp_path / "gate.toml"
    cfg.write_text("deterministic_repetitions = 2\nwarmups = 0\n")
    # work 30: ~35 M loop instructions on ~140 M of start-up; --slowdown 0.3 adds ~+7 %
    res = run_perfkit("gate", "compare", "--config", cfg, "--base-cmd", bench(work=30),
                      "--head-cmd", bench("--slowdown", "0.3", work=30), "-m", "instructions", "--json",
                      "--no-profile", timeout=240)
    assert res.returncode == 1, res.stderr
    m = json.loads(res.stdout)["benchmarks"][0]["metrics"][0]
    assert m["decision"] == "regression"
    assert 0.04 <= m["change"] <= 0.12
    assert m["base"]["cv"] < 0.001  # instruction counts are near deterministic


def test_compare_two_checkouts_with_configured_benchmarks(tmp_path):
    """--base-dir: the configured benchmarks run in each checkout (truth: 8 vs 16 MiB peak)."""
    for side, mib in (("base", 8), ("head", 16)):
        d = tmp_path / side / "bench"
        d.mkdir(parents=True)
        (d / "mem.py").write_text(f"buf = bytearray(b'x') * ({mib} << 20)\n")
        (tmp_path / side / "pyproject.toml").write_text(f"""
[tool.perfkit.gate]
metrics = ["heap_peak", "threads"]
warmups = 0
[tool.perfkit.gate.benchmarks.mem]
command = [{json.dumps(PY)}, "mem.py"]
cwd = "bench"
""")
    res = run_perfkit("gate", "compare", "--config", tmp_path / "head" / "pyproject.toml",
                      "--base-dir", tmp_path / "base", "--json", "--repetitions", "3", "--max-repetitions", "3")
    assert res.returncode == 1, res.stderr
    m = {r["metric"]: r for r in json.loads(res.stdout)["benchmarks"][0]["metrics"]}
    assert m["heap_peak"]["decision"] == "regression"
    assert 0.85 <= m["heap_peak"]["change"] <= 1.05  # 8 -> 16 MiB is +100 % of the buffer
    assert m["threads"]["decision"] == "no change"


def test_inconclusive_passes_unless_strict(tmp_path):
    """Three wall-time pairs can never decide at this confidence: inconclusive, exit 0; --strict: 1."""
    fast = ["--base-cmd", shlex.join([PY, "-c", "pass"]), "--head-cmd", shlex.join([PY, "-c", "pass"]),
            "-m", "wall", "--repetitions", "3", "--max-repetitions", "3", "--warmups", "0",
            "--junit", tmp_path / "j.xml"]
    res = run_perfkit("gate", "compare", *fast)
    assert res.returncode == 0, res.stderr
    assert "inconclusive" in res.stdout and "PASS" in res.stdout
    assert ET.parse(tmp_path / "j.xml").getroot().find("testsuite").get("skipped") == "1"
    strict = run_perfkit("gate", "compare", *fast, "--strict")
    assert strict.returncode == 1, strict.stderr
    assert "FAIL (strict)" in strict.stdout
