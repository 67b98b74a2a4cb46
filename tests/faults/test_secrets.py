"""Fault matrix, part 5: secrets on a target's command line never reach anything perfkit
writes (files, bundles, --json, messages) unless --no-redact; hostile names (bidi,
zero-width, C1, ANSI) never reach a terminal or a document raw."""

from __future__ import annotations

import gzip
import json
import stat
import tarfile
from pathlib import Path

import pytest
from harness import PY, ROOT, assert_unharmed, pk, target  # noqa: F401

pytestmark = pytest.mark.live

SECRET = "SeKr3tValue9"
SECRET_ARGS = [f"--token={SECRET}", "--db-password", SECRET, f"postgres://svc:{SECRET}@db/x", f"API_KEY={SECRET}"]
RAW_CONTROLS = ("\u202e", "\u2066", "\u200b", "\ufeff", "\x9b", "\x1b[31m")


def _texts(path: Path):
    """Every readable text a file holds (gzip and tar members opened)."""
    data = path.read_bytes()
    if path.name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(path) as tf:
            for m in tf.getmembers():
                if m.isfile():
                    yield f"{path.name}:{m.name}", _decoded(tf.extractfile(m).read())
        return
    yield path.name, _decoded(data)


def _decoded(data: bytes) -> str:
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data.decode("utf-8", "replace")


def _assert_clean(root: Path, *extra: str) -> int:
    files = [p for p in root.rglob("*") if p.is_file() and p.name not in ("stdout.txt", "stderr.txt")]
    assert files
    for p in files:
        for name, text in _texts(p):
            assert SECRET not in text, f"secret in {name}"
    for text in extra:
        assert SECRET not in text
    return len(files)


@pytest.fixture
def secretive(target):
    return target("mem_selfcheck", "--duration", 120, *SECRET_ARGS)


def test_cpu_every_format_and_json(pk, secretive):
    outs = ["c.perfkit", "c.html", "c.svg", "c.pb.gz", "c.speedscope.json", "c.collapsed"]
    res = pk.run("cpu", "--pid", secretive.pid, "-d", "1", *sum((["-o", o] for o in outs), []), "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["recording"]["redacted"] is True and "REDACTED" in " ".join(doc["recording"]["cmdline"])
    assert _assert_clean(pk.out, res.stdout, res.stderr) == len(outs)
    assert "REDACTED" in (pk.out / "c.html").read_text()
    assert_unharmed(secretive)


def test_heap_outputs_and_json(pk, secretive):
    res = pk.run("heap", "--pid", secretive.pid, "-d", "1", "-o", "h.perfkit", "-o", "h.html", "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["recording"]["redacted"] is True
    _assert_clean(pk.out, res.stdout, res.stderr)
    assert_unharmed(secretive)


def test_threads_json(pk, secretive):
    res = pk.run("threads", "--pid", secretive.pid, "--json")
    assert res.returncode == 0, res.stderr
    assert SECRET not in res.stdout + res.stderr


def test_leaks_reports(pk, secretive):
    res = pk.run("leaks", "--pid", secretive.pid, "-d", "2", "-o", "l.html", "-o", "l.md", "-o", "l.json", "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["redacted"] is True and any("REDACTED" in n for n in doc["notes"])
    assert _assert_clean(pk.out, res.stdout, res.stderr) == 3


@pytest.mark.parametrize("bundle", ["bundle", "bundle.tar.gz"])
def test_triage_bundle_every_file(pk, secretive, bundle):
    res = pk.run("triage", "--pid", secretive.pid, "-b", "12s", "--profile-top", "1", "--profile-seconds", "1",
                 "-o", bundle, "--json")
    assert res.returncode == 0, res.stderr
    n = _assert_clean(pk.out, res.stdout, res.stderr)
    assert n >= (5 if bundle == "bundle" else 1)
    summary = json.loads(res.stdout)
    assert any("REDACTED" in note for note in summary["notes"]), summary["notes"]
    for p in [pk.out / bundle, *(pk.out / bundle).rglob("*")]:  # private: 0600 files in 0700 directories
        assert stat.S_IMODE(p.stat().st_mode) == (0o700 if p.is_dir() else 0o600), (p, oct(p.stat().st_mode))


def test_launched_command_and_its_failure_message(pk):
    res = pk.run("cpu", "-o", "run.perfkit", "--json", "--", PY, "-c", "import sys, time; time.sleep(1.5); sys.exit(3)",
                 *SECRET_ARGS)
    assert res.returncode == 3, res.stderr
    assert "exited with status 3" in res.stderr
    _assert_clean(pk.out, res.stdout, res.stderr)


def test_no_redact_keeps_them(pk, secretive):
    res = pk.run("cpu", "--pid", secretive.pid, "-d", "1", "--json", "--no-redact")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert SECRET in " ".join(doc["recording"]["cmdline"]) and not doc["recording"].get("redacted")


def test_hostile_names_are_escaped_in_terminal_and_documents(pk, target):
    t = target("weird_names", "--duration", 60, "--controls")
    res = pk.run("cpu", "--pid", t.pid, "-d", "1.5", "--by-thread", "-o", "w.svg", "-o", "w.html")
    assert res.returncode == 0, res.stderr
    shown = res.stdout + res.stderr
    assert "\\u202e" in shown, shown[-2000:]  # the name is there, escaped
    for raw in RAW_CONTROLS:
        assert raw not in shown, repr(raw)
        for doc in ("w.svg", "w.html"):
            assert raw not in (pk.out / doc).read_text(), (doc, repr(raw))
    res = pk.run("threads", "--pid", t.pid)
    assert res.returncode == 0, res.stderr
    for raw in RAW_CONTROLS:
        assert raw not in res.stdout + res.stderr, repr(raw)
    assert "\\u202e" in res.stdout
