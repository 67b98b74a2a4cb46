"""`perfkit gate` bad input: each a one-line message, the documented exit code, no traceback."""

from __future__ import annotations

import json
import shlex

import pytest

from conftest import PY, run_perfkit

FAST = ["-m", "rss", "--repetitions", "3", "--max-repetitions", "3", "--warmups", "0", "--no-profile"]


def assert_clean_error(res, code: int, *needles: str) -> None:
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    assert res.stderr.startswith("perfkit: error: "), res.stderr
    for n in needles:
        assert n in res.stderr, res.stderr


def py(code: str) -> str:
    return shlex.join([PY, "-c", code])


def test_missing_baseline(tmp_path):
    res = run_perfkit("gate", "check", "--baseline", tmp_path / "nope.json", "--", PY, "-c", "pass")
    assert_clean_error(res, 2, "no baseline at", "perfkit gate record")


def test_corrupt_baseline(tmp_path):
    bad = tmp_path / "b.json"
    bad.write_text("{not json")
    assert_clean_error(run_perfkit("gate", "check", "--baseline", bad, "--", PY, "-c", "pass"), 2, "not valid JSON")
    bad.write_text('{"something": "else"}')
    assert_clean_error(run_perfkit("gate", "check", "--baseline", bad, "--", PY, "-c", "pass"), 2,
                       "not a perfkit gate baseline")


@pytest.mark.parametrize("toml,needle", [
    ("[tool.perfkit.gate]\nrepetitons = 5\n", "unknown key 'repetitons'"),
    ("[tool.perfkit.gate]\nmetrics = ['cpu', 'speed']\n", "unknown metric 'speed'"),
    ("[tool.perfkit.gate]\nrepetitions = 'many'\n", "repetitions must be a whole number"),
    ("[tool.perfkit.gate]\nalpha = 2\n", "alpha must be a number between"),
    ("[tool.perfkit.gate.benchmarks.x]\ncwd = '.'\n", "needs a 'command'"),
    ("[tool.perfkit.gate.min_effect]\ncpu = 'five'\n", "min_effect cpu must be a number"),
    ("[tool.perfkit.gate\nbroken", "is not valid TOML"),
])
def test_bad_config(tmp_path, toml, needle):
    cfg = tmp_path / "pyproject.toml"
    cfg.write_text(toml)
    assert_clean_error(run_perfkit("gate", "compare", "--config", cfg, "--base-cmd", "true", "--head-cmd", "true"),
                       2, needle)


def test_no_benchmarks_configured(tmp_path):
    cfg = tmp_path / "pyproject.toml"
    cfg.write_text("[tool.perfkit.gate]\nrepetitions = 5\n")
    assert_clean_error(run_perfkit("gate", "record", "--config", cfg), 2, "no benchmarks")


@pytest.mark.parametrize("args,needle", [
    (["--base-cmd", "true"], "give both --base-cmd and --head-cmd"),
    ([], "compare needs --base-cmd and --head-cmd"),
    (["--base-cmd", "true", "--head-cmd", "true", "-m", "cpu,speed"], "unknown metric 'speed'"),
    (["--base-cmd", "true", "--head-cmd", "true", "--min-effect", "cpu"], "expected METRIC=FRACTION"),
    (["--base-cmd", "true", "--head-cmd", "'unclosed"], "cannot split"),
    (["--base-cmd", "true", "--head-cmd", "true", "-m", "heap_peak"], "need a command that starts with a Python"),
])
def test_bad_compare_flags(args, needle):
    assert_clean_error(run_perfkit("gate", "compare", *args), 2, needle)


def test_benchmark_that_fails_names_side_status_and_stderr():
    res = run_perfkit("gate", "compare", "--base-cmd", py("pass"),
                      "--head-cmd", py("import sys; sys.stderr.write('boom: bad input\\n'); sys.exit(3)"), *FAST)
    assert_clean_error(res, 3, "(head) exited with status 3", "boom: bad input")


def test_benchmark_command_not_found():
    res = run_perfkit("gate", "compare", "--base-cmd", "no-such-benchmark-xyz", "--head-cmd", "true", *FAST)
    assert_clean_error(res, 3, "cannot run 'no-such-benchmark-xyz'")


def test_benchmark_timeout_is_killed():
    res = run_perfkit("gate", "compare", "--base-cmd", py("import time; time.sleep(30)"), "--head-cmd", "true",
                      "--timeout", "1", *FAST, timeout=60)
    assert_clean_error(res, 3, "timed out after 1 s")


def test_baseline_from_another_machine_warns_and_still_compares(tmp_path):
    base = tmp_path / "baseline.json"
    cmd = [PY, "-c", "x = bytearray(8 << 20)"]
    rec = run_perfkit("gate", "record", "--baseline", base, *FAST, "--", *cmd)
    assert rec.returncode == 0, rec.stderr
    doc = json.loads(base.read_text())
    doc["environment"]["cpu_model"] = "Imaginary CPU 9000"
    doc["environment"]["cpus"] = 64
    base.write_text(json.dumps(doc))
    res = run_perfkit("gate", "check", "--baseline", base, *FAST, "--json", "--", *cmd)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert "different machine" in res.stderr and "Imaginary CPU 9000" in res.stderr
    assert any("different machine" in w for w in out["warnings"])
    m = out["benchmarks"][0]["metrics"][0]  # still compared: same program, no regression
    assert m["head"]["n"] == 3 and m["base"]["n"] == 3 and m["decision"] in ("no change", "inconclusive")
    assert m["change"] is not None and abs(m["change"]) < 0.05
    assert out["baseline_environment"]["cpu_model"] == "Imaginary CPU 9000"
