"""[tool.perfkit] project defaults: parsed strictly (unknown keys and bad values exit 2),
found from the working directory, applied as defaults that flags override — checked on
real recordings — and read by the one loader the gate shares."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import PY, ROOT, one_error, perfkit_cmd, run_perfkit, scenario
from perfkit import config
from perfkit.errors import UsageError

FIX = ROOT / "tests" / "fixtures"
SLEEP = [PY, "-c", "import time; t = time.time()\nwhile time.time() - t < 1.2: pass"]


def project(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "pyproject.toml"
    p.write_text("[project]\nname = 'x'\n\n" + body)
    return p


def test_parse_every_key(tmp_path):
    p = project(tmp_path, '[tool.perfkit]\nrate = 250\nduration = 2.5\noutput_dir = "profiles"\n'
                          'user_code = ["myapp/*"]\nredact = false\n[tool.perfkit.gate]\nrepetitions = 3\n')
    d = config.load(p)
    assert (d.rate, d.duration, d.user_code, d.redact) == (250, 2.5, ("myapp/*",), False)
    assert d.output_dir == str(tmp_path / "profiles")  # relative to the config file
    dm = config.default_map(d)
    assert dm["cpu"]["rate"] == 250 and dm["top"]["rate"] == 250 and "rate" not in dm["heap"]
    assert dm["serve"] == {"no_redact": True}  # redact = false

    assert config.load(project(tmp_path, "")).to_json()["rate"] is None


@pytest.mark.parametrize("body,needle", [
    ("rat = 1", "unknown key 'rat'"),
    ("rate = 0", "rate must be"),
    ("rate = true", "rate must be"),
    ("rate = 2.5", "rate must be"),
    ("duration = -1", "duration must be"),
    ("duration = nan", "duration must be"),
    ("output_dir = ''", "output_dir must be"),
    ("user_code = [1]", "user_code must be"),
    ("redact = 'yes'", "redact must be"),
    ("gate = 3", "gate must be a table"),
])
def test_bad_values_are_usage_errors(tmp_path, body, needle):
    with pytest.raises(UsageError) as exc:
        config.load(project(tmp_path, "[tool.perfkit]\n" + body + "\n"))
    assert needle in exc.value.message and exc.value.exit_code == 2


def test_not_toml_is_a_usage_error(tmp_path):
    p = tmp_path / "pyproject.toml"
    p.write_text("[tool.perfkit\nrate=")
    with pytest.raises(UsageError, match="not valid TOML"):
        config.load(p)


def test_unknown_key_exits_2_for_every_command_found_from_the_working_directory(tmp_path):
    project(tmp_path, "[tool.perfkit]\nrate = 100\nbogus = 1\n")
    sub = tmp_path / "src" / "deep"
    sub.mkdir(parents=True)
    for args in (["cpu", "--", PY, "-c", "pass"], ["convert", str(FIX / "cpu_split_75_25.perfkit"), "-o", "x.txt"],
                 ["gate", "check", "--", PY, "-c", "pass"]):
        res = subprocess.run([*perfkit_cmd(), *args], cwd=sub, capture_output=True, text=True, timeout=60,
                             env={**os.environ, "NO_COLOR": "1"})
        one_error(res, 2, "unknown key 'bogus'", "known keys:")


def test_flags_override_the_projects_rate(tmp_path):
    cfg = project(tmp_path, "[tool.perfkit]\nrate = 37\n")
    env = {"PERFKIT_CONFIG": str(cfg)}
    doc = json.loads(run_perfkit("cpu", "--json", "--", *SLEEP, env=env, check=True).stdout)
    assert doc["quality"]["requested_rate"] == 37
    doc = json.loads(run_perfkit("cpu", "--json", "-r", "50", "--", *SLEEP, env=env, check=True).stdout)
    assert doc["quality"]["requested_rate"] == 50
    assert "[default: 37;" in run_perfkit("cpu", "--help", env=env).stdout


@pytest.mark.live
def test_the_projects_duration_applies_when_attaching_only(tmp_path):
    cfg = project(tmp_path, "[tool.perfkit]\nduration = 1\n")
    env = {"PERFKIT_CONFIG": str(cfg)}
    with scenario("cpu_split", "--duration", "30") as s:
        doc = json.loads(run_perfkit("cpu", "--pid", s.pid, "--json", env=env, check=True).stdout)
        assert doc["recording"]["duration_s"] <= 3  # the project's 1 s, not the built-in 10 s
    # a launched program is still recorded until it exits (2 s), not cut after the project's 1 s
    busy = [PY, "-c", "import time; t = time.time()\nwhile time.time() - t < 2: pass"]
    doc = json.loads(run_perfkit("cpu", "--json", "--", *busy, env=env, check=True).stdout)
    assert doc["program"]["returncode"] == 0 and doc["program"]["stopped_by"] is None
    assert doc["program"]["wall_s"] >= 1.9


def test_output_dir_takes_relative_outputs(tmp_path):
    cfg = project(tmp_path, '[tool.perfkit]\noutput_dir = "out/profiles"\n')
    env = {"PERFKIT_CONFIG": str(cfg)}
    res = run_perfkit("convert", FIX / "cpu_split_75_25.perfkit", "-o", "cpu.collapsed", "-o", tmp_path / "abs.txt",
                      "-f", "collapsed", env=env, check=True)
    out = tmp_path / "out" / "profiles" / "cpu.collapsed"
    assert out.is_file() and str(out) in res.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and stat.S_IMODE(out.parent.stat().st_mode) == 0o700
    assert (tmp_path / "abs.txt").is_file()  # an absolute path stays where it was asked
    assert not (ROOT / "cpu.collapsed").exists()


def test_empty_perfkit_config_ignores_the_project(tmp_path):
    project(tmp_path, "[tool.perfkit]\nbogus = 1\n")
    res = subprocess.run([*perfkit_cmd(), "convert", str(FIX / "cpu_split_75_25.perfkit"), "-o", "-", "-f", "raw"],
                         cwd=tmp_path, capture_output=True, timeout=60, env={**os.environ, "PERFKIT_CONFIG": ""})
    assert res.returncode == 0, res.stderr


def test_redact_false_becomes_serves_no_redact_default(tmp_path):
    import typer.main

    from perfkit.cli import app

    dm = config.default_map(config.load(project(tmp_path, "[tool.perfkit]\nredact = false\n")))
    serve = typer.main.get_command(app).get_command(None, "serve")
    ctx = serve.make_context("serve", ["--pid", "1"], default_map=dm["serve"], resilient_parsing=True)
    assert ctx.params["no_redact"] is True
    ctx = serve.make_context("serve", ["--pid", "1"], default_map={}, resilient_parsing=True)
    assert ctx.params["no_redact"] is False
    assert "no_redact" not in config.default_map(config.load(project(tmp_path, "[tool.perfkit]\nrate = 5\n")))["cpu"]


def test_gate_reads_pyproject_through_the_same_loader(tmp_path):
    from perfkit.gate import config as gate_config

    p = project(tmp_path, "[tool.perfkit.gate]\nrepetitions = 4\n[tool.perfkit.gate.benchmarks.b]\n"
                          "command = 'python -c pass'\n")
    assert gate_config.load(p).repetitions == 4
    bad = tmp_path / "bad.toml"
    bad.write_text("[tool.perfkit.gate\n")
    with pytest.raises(UsageError, match="not valid TOML"):
        gate_config.load(bad)
    assert gate_config.find_pyproject is config.find_pyproject
