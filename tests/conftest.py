"""Shared test fixtures: run perfkit as a real CLI, start real scenario processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"
TOOLS = ROOT / "tools" / "node_modules"
PY = sys.executable
IN_CI = bool(os.environ.get("CI"))

# A suite started in the background by a non-interactive shell (`./.ci/run &`) inherits
# SIGINT ignored, and every perfkit it starts would inherit that too: the Ctrl-C tests
# then see perfkit run on (a nohup'd perfkit rightly ignores SIGINT).  A Python-level
# handler here means children start with SIGINT at its default, as under a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def perfkit_cmd() -> list[str]:
    return [PY, "-m", "perfkit"]


def run_perfkit(*args: str, timeout: float = 120, env: dict | None = None, check: bool = False,
                input: str | None = None) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess; returns CompletedProcess with text output."""
    e = dict(os.environ)
    e.pop("RUST_BACKTRACE", None)
    e["NO_COLOR"] = "1"
    e["COLUMNS"] = "200"
    if env:
        e.update(env)
    res = subprocess.run(perfkit_cmd() + [str(a) for a in args], capture_output=True, text=True,
                         timeout=timeout, env=e, input=input, cwd=ROOT)
    if check and res.returncode != 0:
        raise AssertionError(f"perfkit {' '.join(map(str, args))} exited {res.returncode}\n"
                             f"stdout:\n{res.stdout}\nstderr:\n{res.stderr}")
    return res


def perfkit_json(*args: str, **kw) -> dict:
    """Run perfkit with --json (placed before any `--` command) and parse stdout."""
    args = list(args)
    cut = args.index("--") if "--" in args else len(args)
    res = run_perfkit(*args[:cut], "--json", *args[cut:], check=True, **kw)
    return json.loads(res.stdout)


class Scenario:
    """A running scenario process (``python scenarios/NAME.py ARGS``)."""

    def __init__(self, proc: subprocess.Popen, ready_line: str) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.ready_line = ready_line

    def alive(self) -> bool:
        return self.proc.poll() is None


@contextmanager
def scenario(name: str, *args: str, ready_timeout: float = 30.0, wait_ready: bool = True, **popen_kw):
    """Start ``scenarios/<name>.py`` and wait for its ``ready`` line; always cleaned up."""
    cmd = [PY, str(SCENARIOS / f"{name}.py"), *map(str, args)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True, **popen_kw)
    line = ""
    try:
        if wait_ready:
            deadline = time.monotonic() + ready_timeout
            while time.monotonic() < deadline:
                line = proc.stdout.readline()
                if line.startswith("ready") or not line:
                    break
            if not line.startswith("ready"):
                raise RuntimeError(f"scenario {name} did not become ready (exit {proc.poll()})")
        yield Scenario(proc, line.strip())
    finally:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc.stdout:
            proc.stdout.close()


def scenario_cmd(name: str, *args: str) -> list[str]:
    """The argv that launches a scenario (for `perfkit X -- CMD` launch mode)."""
    return [PY, str(SCENARIOS / f"{name}.py"), *map(str, args)]


def require_tool(path: Path, what: str) -> Path:
    """A third-party consumer the tests need; fail in CI, skip on a bare dev box."""
    if path.exists():
        return path
    msg = f"{what} not installed ({path}); run ./scripts/setup"
    if IN_CI:
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def speedscope_schema() -> dict:
    p = require_tool(TOOLS / "speedscope" / "dist" / "release" / "file-format-schema.json", "speedscope schema (npm "
                                                                                            "speedscope)")
    return json.loads(p.read_text())


AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
_nobody_probe: list = []


def require_nobody() -> list[str]:
    """The command prefix that runs as user nobody, or skip with the reason it cannot.

    Needs root, setpriv, and a checkout + interpreter that user nobody can reach
    (every parent directory traversable).  The answer is probed once per session.
    """
    if os.geteuid() != 0:
        pytest.skip("needs root to start a root-owned target and drop to user nobody")
    if not _nobody_probe:
        try:
            res = subprocess.run(AS_NOBODY + [PY, "-c", "import perfkit, psutil"], capture_output=True, text=True,
                                 timeout=30, cwd="/")
            _nobody_probe.append(res.stderr.strip() if res.returncode else "")
        except (OSError, subprocess.TimeoutExpired) as exc:
            _nobody_probe.append(str(exc))
    if _nobody_probe[0]:
        pytest.skip(f"user nobody cannot run perfkit from {ROOT}: {_nobody_probe[0].splitlines()[-1]}")
    return list(AS_NOBODY)


def one_error(res: subprocess.CompletedProcess, code: int | None = None, *needles: str) -> str:
    """Assert perfkit failed the documented way and return its error line.

    The exit code (if given); exactly one ``perfkit: error:`` line, followed by at
    most two hint lines; no traceback; every needle somewhere in stderr.  Output a
    launched program printed before the error is allowed.
    """
    if code is not None:
        assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    errors = [i for i, ln in enumerate(lines) if ln.startswith("perfkit: error: ")]
    assert len(errors) == 1, res.stderr
    assert len(lines) - errors[0] - 1 <= 2, res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    for n in needles:
        assert n in res.stderr, res.stderr
    return lines[errors[0]]


def free_pid() -> int:
    """A pid that no process has right now."""
    pid = 4_000_000
    while os.path.exists(f"/proc/{pid}"):
        pid -= 1
    return pid
