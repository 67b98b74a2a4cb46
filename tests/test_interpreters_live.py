"""The interpreter matrix: live targets on every CPython pyenv has (3.8–3.13), each
skipped when absent, so a machine without pyenv still passes.

What runs where (docs/support.md says the same and why), to keep CI time sane:

* ``cpu``: every version — the 75:25 split within 12 pp (N ≈ 300 samples: sampling
  error 2.5 pp, 3 sigma is 7.5 pp, plus interpreter start-up in launch mode), the
  target's version recorded, and ``<module>`` named right in go tool pprof;
* ``threads``, ``leaks``, ``triage``: the oldest and the newest version present;
* ``heap``: launch on every version where perfkit's own memray version installs for
  that interpreter (a capture is only readable by the memray version that wrote it),
  attach on the oldest and newest of those.  The venvs are cached in
  ``$PERFKIT_TEST_VENVS`` (default: a directory under the system temp dir).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from test_interop import pprof_top

from conftest import SCENARIOS, run_perfkit

pytestmark = [pytest.mark.live, pytest.mark.timeout(600)]
MINORS = ["3.8", "3.9", "3.10", "3.11", "3.12", "3.13"]
TOL = 12.0


def pyenv_versions() -> dict[str, Path]:
    """{"3.11": /root/.pyenv/versions/3.11.7/bin/python, ...}: the newest patch of each minor."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found: dict[str, tuple[tuple[int, ...], Path]] = {}
    if root.is_dir():
        for d in root.iterdir():
            m = re.fullmatch(r"(3\.\d+)\.(\d+)", d.name)
            exe = d / "bin" / "python"
            if m and exe.exists():
                key = (int(m.group(1).split(".")[1]), int(m.group(2)))
                if m.group(1) not in found or key > found[m.group(1)][0]:
                    found[m.group(1)] = (key, exe)
    return {minor: exe for minor, (_, exe) in found.items()}


VERSIONS = pyenv_versions()
PRESENT = [m for m in MINORS if m in VERSIONS]
EDGES = sorted({PRESENT[0], PRESENT[-1]}, key=MINORS.index) if PRESENT else []


def interp(minor: str) -> Path:
    if minor not in VERSIONS:
        pytest.skip(f"CPython {minor} is not installed (pyenv install {minor})")
    return VERSIONS[minor]


@contextmanager
def running(python: Path, name: str, *args: str):
    """A scenario on a given interpreter, ready; killed with its group afterwards."""
    proc = subprocess.Popen([str(python), str(SCENARIOS / f"{name}.py"), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("ready"), f"{name} on {python} did not start ({proc.poll()})"
        yield proc
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)
        proc.stdout.close()


def perfkit_doc(*args, timeout: float = 180) -> dict:
    cut = args.index("--") if "--" in args else len(args)
    res = run_perfkit(*args[:cut], "--json", *args[cut:], timeout=timeout)
    assert res.returncode == 0, (args, res.stderr)
    return json.loads(res.stdout)


# ------------------------------------------------------------------ cpu: every version
@pytest.mark.parametrize("minor", MINORS)
def test_cpu_on_every_interpreter(minor, tmp_path):
    python = interp(minor)
    out = tmp_path / "cpu.pb.gz"
    doc = perfkit_doc("cpu", "-r", "100", "-o", out, "--", str(python), str(SCENARIOS / "cpu_split.py"),
                      "--ratio", "75:25", "--duration", "3")
    shares = {r["function"]: r["self_pct"] for r in doc["top"]}
    assert 100 * shares["spin_a"] / (shares["spin_a"] + shares["spin_b"]) == pytest.approx(75, abs=TOL), shares
    assert doc["recording"]["python"] == minor
    rows, _, err = pprof_top(out, tmp_path)
    assert "<module>" in rows and "<unknown>" not in rows and "Main binary" not in err


# ------------------------------------------------------------------ threads, leaks, triage: the edges
@pytest.mark.parametrize("minor", EDGES or ["3.8"])
def test_threads_on_the_oldest_and_newest(minor):
    with running(interp(minor), "cpu_threads", "--duration", "60") as proc:
        doc = perfkit_doc("threads", "--pid", str(proc.pid), "--interval", "0.3")
    names = {t["name"] for t in doc["threads"]}
    assert {"worker-a", "worker-b"} <= names, names
    busy = {t["name"]: t for t in doc["threads"]}
    assert any(f["function"] in ("work_a", "_spin") for f in busy["worker-a"]["frames"])


@pytest.mark.parametrize("minor", EDGES or ["3.8"])
def test_leaks_on_the_oldest_and_newest(minor):
    with running(interp(minor), "leak_threads", "--duration", "60", "--rate", "2") as proc:
        doc = perfkit_doc("leaks", "--pid", str(proc.pid), "-d", "12", "--interval", "0.2")
    assert "threads" in doc["leaks"], doc["verdicts"]
    group = next(r for r in doc["resources"] if r["resource"] == "threads")["attribution"]["groups"][0]
    assert group["app_frame"]["function"] == "leaked_worker"


@pytest.mark.parametrize("minor", EDGES or ["3.8"])
def test_triage_on_the_oldest_and_newest(minor, tmp_path):
    with running(interp(minor), "cpu_split", "--duration", "60") as proc:
        doc = perfkit_doc("triage", "--pid", str(proc.pid), "-o", str(tmp_path / "b"), "--budget", "20s")
    text = json.dumps(doc)
    assert str(proc.pid) in text
    assert "spin_a" in text or "spin_b" in text or "main" in text  # its stacks are in the snapshot


# ------------------------------------------------------------------ heap: where memray installs
def memray_version() -> str:
    from perfkit.formats.memray_capture import memray_version as v

    return v()


def memray_venv(minor: str) -> Path:
    """A cached venv of that interpreter with perfkit's memray version, or skip saying why."""
    python = interp(minor)
    base = Path(os.environ.get("PERFKIT_TEST_VENVS", Path(tempfile.gettempdir()) / "perfkit-test-venvs"))
    version = memray_version()
    venv = base / f"py{minor}-memray{version}"
    exe = venv / "bin" / "python"
    marker = venv / "ok"
    failed = venv / "failed"
    if failed.exists():
        pytest.skip(failed.read_text())
    if not marker.exists():
        base.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(python), "-m", "venv", str(venv)], check=True, timeout=300, capture_output=True)
        res = subprocess.run([str(exe), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                              f"memray=={version}"], capture_output=True, text=True, timeout=600)
        if res.returncode != 0:
            reason = (f"memray {version} does not install for CPython {minor} "
                      f"({res.stderr.strip().splitlines()[-1][:200] if res.stderr.strip() else 'pip failed'}); "
                      "a capture is only readable by the memray version that wrote it")
            failed.write_text(reason)
            pytest.skip(reason)
        marker.write_text("ok")
    return exe


HEAP_MINORS = MINORS


@pytest.mark.parametrize("minor", HEAP_MINORS)
def test_heap_launch_where_memray_installs(minor):
    python = memray_venv(minor)
    doc = perfkit_doc("heap", "--", str(python), str(SCENARIOS / "mem_leak.py"), "--rate", "1048576",
                      "--duration", "3")
    leak = next(r for r in doc["top_alive"] if r["function"] == "leak")
    assert leak["bytes"] == pytest.approx(3 * 1048576, rel=0.35)  # rate x T, give or take start-up
    assert doc["recording"]["python"] == minor


def installable(minor: str) -> bool:
    try:
        memray_venv(minor)
    except pytest.skip.Exception:
        return False
    return True


@pytest.mark.parametrize("minor", MINORS)
def test_heap_attach_on_the_oldest_and_newest(minor):
    """Attach on the oldest and the newest interpreter memray installs for (venvs cached)."""
    ok = [m for m in PRESENT if installable(m)]
    if minor not in ok[:1] + ok[-1:]:
        pytest.skip(f"attach runs on {ok[:1] + ok[-1:]} only (the edges where memray {memray_version()} installs)")
    python = memray_venv(minor)
    with running(python, "mem_leak", "--rate", "1048576", "--duration", "60") as proc:
        doc = perfkit_doc("heap", "--pid", str(proc.pid), "-d", "3", timeout=240)
    assert doc["totals"]["inuse_bytes"] > 0
    leak = next(r for r in doc["top_alive"] if r["function"] == "leak")
    assert leak["bytes"] == pytest.approx(3 * 1048576, rel=0.5)
