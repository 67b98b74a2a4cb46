"""Fault matrix, part 4: bad input is refused before any work — tampered gate baselines and
affinity state files, corrupt profiles, impossible flags — with exit 2, one line naming
the problem (and a hint), old outputs untouched, nothing run."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
from harness import PY, ROOT, assert_no_temp, one_error, pk  # noqa: F401

GOOD = {"perfkit_gate_baseline": 1, "perfkit_version": "0.1.0", "created": "2024-01-01T00:00:00Z",
        "environment": {}, "settings": {},
        "benchmarks": {"api": {"command": ["python", "b.py"], "metrics": {"cpu": [0.2, 0.21, 0.22]}, "profiles": None}}}


def _mod(f):
    doc = copy.deepcopy(GOOD)
    f(doc)
    return json.dumps(doc)


BASELINES = {
    "nan": (json.dumps(GOOD).replace("0.21", "NaN"), "NaN"),
    "infinity": (json.dumps(GOOD).replace("0.21", "Infinity"), "Infinity"),
    "empty-list": (_mod(lambda d: d["benchmarks"]["api"]["metrics"].update(cpu=[])), "has no measurements"),
    "negative": (_mod(lambda d: d["benchmarks"]["api"]["metrics"].update(cpu=[0.2, -0.1])), "cannot be negative"),
    "string-value": (_mod(lambda d: d["benchmarks"]["api"]["metrics"].update(cpu=["0.2"])), "not a number"),
    "unknown-metric": (_mod(lambda d: d["benchmarks"]["api"]["metrics"].update(speed=[1.0])), "'speed' is not a"),
    "unknown-key": (_mod(lambda d: d.update(gate_disabled=True)), "unknown key(s) 'gate_disabled'"),
    "wrong-version": (_mod(lambda d: d.update(perfkit_gate_baseline=9)), "format version 9"),
    "boolean-version": (_mod(lambda d: d.update(perfkit_gate_baseline=True)), "format version True"),
    "no-benchmarks": (_mod(lambda d: d.update(benchmarks={})), "has no benchmarks"),
    "not-json": ("{\"perfkit_gate_baseline\": 1,", "not valid JSON"),
}


@pytest.mark.parametrize("case", BASELINES)
def test_tampered_gate_baseline_is_refused_before_running(pk, case):
    text, needle = BASELINES[case]
    bl = pk.out / "baseline.json"
    bl.write_text(text)
    ran = pk.out / "benchmark-ran"
    res = pk.run("gate", "check", "--baseline", bl, "--name", "api", "-m", "cpu", "--", PY, "-c",
                 f"open({str(ran)!r}, 'w')")
    one_error(res, 2, needle, str(bl))
    assert not ran.exists(), "the benchmark ran although the baseline was unusable"
    assert bl.read_text() == text


STATES = {
    "processes-not-a-table": ('{"processes": []}', "'processes' is not a table"),
    "pid-not-a-pid": ('{"processes": {"abc": {}}}', "'abc' is not a pid"),
    "huge-cpu-range": ('{"processes": {"12": {"original": "0-99999999999"}}}', "beyond any machine's CPUs"),
    "mask-not-a-list": ('{"processes": {"12": {"original": 5}}}', "is not a CPU list"),
    "thread-mask-garbage": ('{"processes": {"12": {"threads": {"1": "x"}}}}', "not a CPU list"),
    "nan-create-time": ('{"processes": {"12": {"create_time": NaN}}}', "create_time nan"),
    "not-json": ("nope", "cannot read affinity state"),
    "not-a-state-file": ("[1, 2]", "is not a perfkit affinity state file"),
}


@pytest.mark.parametrize("case", STATES)
def test_tampered_affinity_state_is_refused(pk, case):
    text, needle = STATES[case]
    st = pk.out / "state.json"
    st.write_text(text)
    res = pk.run("affinity", "reset", "--state", st)
    one_error(res, 2, needle)
    assert st.read_text() == text  # never rewritten or deleted when it cannot be understood


def test_affinity_assign_with_an_absurd_range_is_refused(pk):
    res = pk.run("affinity", "apply", "--pid", 1, "--assign", "1=0-99999999999", "--dry-run", timeout=30)
    one_error(res, 2, "bad CPU list")


@pytest.fixture
def profiles(tmp_path):
    """A CPU profile and a heap profile (.perfkit), written by perfkit's own writer."""
    sys.path.insert(0, str(ROOT))
    from perfkit.formats import write_profile
    from perfkit.model import ALLOC_SPACE, CPU_NS, SAMPLES, Frame, ProfileBuilder

    cpu = ProfileBuilder([SAMPLES, CPU_NS])
    cpu.add([Frame("main", "app.py", 1), Frame("work", "app.py", 5)], (10, 10_000_000))
    heap = ProfileBuilder([ALLOC_SPACE])
    heap.add([Frame("main", "app.py", 1), Frame("alloc", "app.py", 9)], (4096,))
    out = {}
    for name, b in (("cpu", cpu), ("heap", heap)):
        p = tmp_path / f"{name}.perfkit"
        write_profile(b.build(), p)
        out[name] = p
    return out


CORRUPT = {
    "garbage": b"\x00\x01not a profile at all\xff" * 10,
    "truncated-gzip": b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\x00" * 5,
    "empty": b"",
}


@pytest.mark.parametrize("kind", CORRUPT)
@pytest.mark.parametrize("command", ["flame", "convert"])
def test_corrupt_profile_is_refused_and_old_output_untouched(pk, command, kind):
    bad = pk.out / "bad.perfkit"
    bad.write_bytes(CORRUPT[kind])
    out = pk.out / "out.svg"
    out.write_text("old output\n")
    res = pk.run(command, bad, "-o", out)
    one_error(res, 2)
    assert out.read_text() == "old output\n"
    assert [e for e in (pk.out.iterdir()) if e.name.endswith(".tmp")] == []
    assert_no_temp(pk)


def test_diff_of_cpu_and_heap_is_refused(pk, profiles):
    res = pk.run("diff", profiles["cpu"], profiles["heap"], "-o", "d.html")
    one_error(res, 2)
    assert not (pk.out / "d.html").exists()


@pytest.mark.parametrize("argv,needle", [
    (["cpu", "--pid", "1", "--focus", "(unclosed"], "invalid --focus regex"),
    (["cpu", "--pid", "1", "-d", "inf"], "--duration"),
    (["heap", "--pid", "1", "-d", "nan"], "--duration"),
    (["leaks", "--pid", "1", "-d", "inf"], "--duration"),
    (["threads", "--pid", "1", "--timeout", "inf"], "--timeout"),
    (["cpu", "--pid", "1", "-d", "1", "-o", "/nonexistent-dir/x.svg"], "does not exist"),
    (["cpu", "--pid", "1", "--bogus-flag"], "No such option"),
], ids=["bad-regex", "cpu-inf", "heap-nan", "leaks-inf", "threads-inf", "unwritable-output", "unknown-flag"])
def test_bad_flags_fail_before_any_work(pk, argv, needle):
    res = pk.run(*argv, timeout=30)
    one_error(res, 2, needle)
    assert_no_temp(pk)


def test_internal_error_exits_4_with_one_line(tmp_path):
    """A bug in perfkit is "a required tool failed" (exit 4), never an undocumented 70."""
    mod = tmp_path / "perfkit_boom.py"
    mod.write_text("import typer\napp = typer.Typer()\n@app.command()\ndef boom():\n    raise ValueError('kaput')\n")
    code = ("import sys; sys.path.insert(0, %r); import perfkit.cli as c; "
            "c.COMMANDS['boom'] = ('perfkit_boom', 'x'); c.main(['boom'])" % str(tmp_path))
    res = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    one_error(res, 4, "internal error: ValueError: kaput", "--debug")


def _gzip_zeros(size: int) -> bytes:
    import zlib

    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b"\0" * (1 << 20)
    return b"".join([c.compress(chunk) for _ in range(size >> 20)] + [c.flush()])


BOMBS = {  # name -> (file name, bytes); the input limit is lowered so each fails in well under a second
    "gzip-pprof": ("bomb.pb.gz", lambda: _gzip_zeros(256 << 20)),
    "gzip-perfkit": ("bomb.perfkit", lambda: _gzip_zeros(256 << 20)),
    "deep-json": ("bomb.speedscope.json", lambda: b"[" * 200_000 + b"]" * 200_000),
    "long-line": ("bomb.collapsed", lambda: b"a;" * (3 << 20) + b"b 1\n"),
}


@pytest.mark.parametrize("bomb", BOMBS)
@pytest.mark.parametrize("command", ["convert", "flame"])
def test_bombs_fail_fast_and_leave_old_output(pk, command, bomb):
    """Compressed and nested bombs (the interop readers' limits) through the CLI: exit 2,
    one line, the old output untouched, no temp file left."""
    name, make = BOMBS[bomb]
    src = pk.out / name
    src.write_bytes(make())
    out = pk.out / "out.svg"
    out.write_text("old output\n")
    res = pk.run(command, src, "-o", out, env={"PERFKIT_MAX_INPUT": "32M", "PERFKIT_MAX_LINE": "1M"}, timeout=60)
    one_error(res, 2)
    assert out.read_text() == "old output\n"
    assert [e for e in pk.out.iterdir() if e.name.endswith(".tmp")] == []
    assert_no_temp(pk)
