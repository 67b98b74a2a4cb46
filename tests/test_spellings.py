"""The spellings users bring from py-spy: its format names, `-o -`, `threads --native`,
no short flag that means something else in py-spy, and help that reads well (examples
one per line, plain metavars, format names that complete in the shell)."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
import typer.main

from conftest import ROOT, one_error, perfkit_cmd, run_perfkit, scenario
from perfkit.cli import COMMANDS, app
from perfkit.outputs import FORMAT_ALIASES, format_choices

FIX = ROOT / "tests" / "fixtures" / "cpu_split_75_25.perfkit"
AVAILABLE = {a: c for a, c in FORMAT_ALIASES.items() if c in format_choices()}

# py-spy's short flags (record, top, dump) and the long option each one means there
PYSPY_SHORT = {"-p": "--pid", "-o": "--output", "-f": "--format", "-d": "--duration", "-r": "--rate",
               "-s": "--subprocesses", "-F": "--function", "-t": "--threads", "-g": "--gil", "-i": "--idle",
               "-n": "--native", "-c": "--core", "-l": "--locals", "-j": "--json"}


def stdout_bytes(*args) -> bytes:
    res = subprocess.run([*perfkit_cmd(), *map(str, args)], capture_output=True, timeout=60, cwd=ROOT,
                         env={**os.environ, "NO_COLOR": "1", "PERFKIT_CONFIG": ""})
    assert res.returncode == 0, res.stderr
    return res.stdout


@pytest.mark.parametrize("alias", sorted(AVAILABLE))
def test_each_pyspy_format_name_writes_the_same_bytes_as_perfkits(alias, tmp_path):
    canonical = AVAILABLE[alias]
    assert stdout_bytes("convert", FIX, "-o", "-", "-f", alias) == stdout_bytes("convert", FIX, "-o", "-", "-f",
                                                                                canonical)
    a, b = tmp_path / "a.out", tmp_path / "b.out"
    run_perfkit("convert", FIX, "-o", a, "-f", alias.upper(), check=True)  # case does not matter
    run_perfkit("convert", FIX, "-o", b, "-f", canonical, check=True)
    assert a.read_bytes() == b.read_bytes() and a.stat().st_size > 0


def test_the_aliases_that_matter_are_there():
    assert {"raw", "flamegraph", "folded", "speedscope"} <= set(AVAILABLE)
    assert AVAILABLE["raw"] == "collapsed" and AVAILABLE["flamegraph"] == "svg"


def test_stdout_output_and_its_rules(tmp_path):
    folded = stdout_bytes("convert", FIX, "-o", "-", "-f", "raw").decode()
    assert all(re.fullmatch(r".+ \d+", line) for line in folded.splitlines())
    one_error(run_perfkit("convert", FIX, "-o", "-"), 2, "say which format with -f")
    one_error(run_perfkit("convert", FIX, "-o", "-", "-f", "raw", "--json"), 2, "both write to stdout")
    one_error(run_perfkit("convert", FIX, "-o", "-", "-o", "-", "-f", "raw"), 2, "given twice")
    one_error(run_perfkit("convert", FIX, "-o", "x.txt", "-f", "gif"), 2, "unknown format 'gif'")


def test_cpu_writes_folded_stacks_to_stdout_and_its_table_to_stderr():
    code = "import time\ndef hot():\n    t = time.time()\n    while time.time() - t < 1.5: pass\nhot()"
    res = run_perfkit("cpu", "-o", "-", "-f", "raw", "--", "python3", "-c", code)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines and all(re.fullmatch(r".+ \d+", ln) for ln in lines)
    assert any("hot (" in ln for ln in lines)
    assert "Top functions" in res.stderr and "wrote stdout (collapsed)" in res.stderr


@pytest.mark.live
def test_threads_native_shows_native_frames():
    with scenario("cpu_split", "--duration", "60") as s:
        native = False
        for _ in range(6):  # the busy thread spends most of its time in clock_gettime (libc / vdso)
            doc = json.loads(run_perfkit("threads", "--pid", s.pid, "--native", "--json", check=True).stdout)
            files = [f["file"] for t in doc["threads"] for f in t["frames"]]
            assert any(f.endswith("cpu_split.py") for f in files)
            native = native or any(".so" in f or f.startswith("[") for f in files)
            if native:
                break
        assert native, files
        doc = json.loads(run_perfkit("threads", "--pid", s.pid, "--json", check=True).stdout)
        assert all(f["file"].endswith(".py") for t in doc["threads"] for f in t["frames"])
        one_error(run_perfkit("threads", "--pid", s.pid, "--native", "--nonblocking"), 2, "cannot be combined")


def all_commands():
    root = typer.main.get_command(app)
    out = []

    def walk(cmd, path):
        out.append((path, cmd))
        for name in getattr(cmd, "commands", {}) or {}:
            walk(cmd.commands[name], f"{path} {name}")

    for name in COMMANDS:
        walk(root.get_command(None, name), name)
    return out


def test_no_short_flag_means_something_else_than_in_py_spy():
    clashes = []
    for path, cmd in all_commands():
        for p in cmd.params:
            longs = [o for o in p.opts + p.secondary_opts if o.startswith("--")]
            for short in (o for o in p.opts + p.secondary_opts if re.fullmatch(r"-[A-Za-z]", o)):
                if short in PYSPY_SHORT and PYSPY_SHORT[short] not in longs:
                    clashes.append(f"perfkit {path} {short} is {'/'.join(longs)}, py-spy's {short} is "
                                   f"{PYSPY_SHORT[short]}")
    assert not clashes, "\n".join(clashes)


def test_help_reads_well():
    assert "Examples:\n    perfkit cpu --pid 4242" in run_perfkit("cpu", "--help", env={"COLUMNS": "100"}).stdout
    for path, cmd in all_commands():  # every command and subcommand, rendered as `perfkit PATH --help` would
        ctx = cmd.make_context(f"perfkit {path}", ["--help"], resilient_parsing=True, terminal_width=100)
        text = cmd.get_help(ctx)
        # typer's type labels: <int>, <float range>, <list[Path]>, <path> ... (prose like "<token>" is fine)
        labels = re.findall(r"<(?:[a-z]+(?: range)?|list\[[^\]]*\]|Path)>", text)
        assert not labels, (path, labels)
        for line in text.splitlines():  # examples one per line, never run together
            if "Examples:" in line:
                assert "perfkit" not in line, (path, line)
            if line.lstrip().startswith("perfkit "):
                assert len(re.findall(r"(?:^|\s)perfkit \w", line)) == 1, (path, line)


def test_format_names_complete_in_the_shell():
    def complete(words: str) -> str:
        env = {**os.environ, "_PERFKIT_COMPLETE": "complete_bash", "COMP_WORDS": words,
               "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1))}
        return subprocess.run(perfkit_cmd(), capture_output=True, text=True, timeout=60, env=env, cwd=ROOT).stdout

    assert complete("perfkit cpu -f sp").split() == ["speedscope"]
    assert "raw" in complete("perfkit convert x -f r").split()
    assert {"perfkit", "pprof"} <= set(complete("perfkit flame x --from p").split())
    assert set(complete("perfkit top --sort ").split()) == {"own", "total"}
