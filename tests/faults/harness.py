"""The fault matrix's harness (imported by every module here, fixtures included): targets,
perfkit runs in a private TMPDIR, and the checks every case makes afterwards.

Every case asserts, as it applies:
* perfkit's exit code and a one- or two-line error (``one_error``), never a traceback;
* the target's state afterwards (:func:`assert_unharmed`): alive, the same scheduler
  state as before (a stopped target stays stopped), TracerPid 0, its machine code
  byte-identical to its files (no debugger breakpoint left), memray's messages absent
  from its stderr;
* no perfkit helper left in the process table (:func:`assert_no_helpers`: py-spy,
  gdb, memray, guard.py started from this checkout or attached to the target);
* what was written: partial results present, old outputs untouched, and the private
  TMPDIR empty (:func:`assert_no_temp`) — after a SIGKILL only until the next run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import PY, ROOT, SCENARIOS, free_pid, one_error  # noqa: F401  (re-exported for the cases)

sys.path.insert(0, str(ROOT))
from perfkit.procs import codecheck, proc  # noqa: E402

HELPER_WORDS = ("py-spy", "memray", "guard.py")


def env_for(tmp: Path, extra: dict | None = None) -> dict:
    e = dict(os.environ)
    e.pop("RUST_BACKTRACE", None)
    e.update({"NO_COLOR": "1", "COLUMNS": "200", "TMPDIR": str(tmp)})
    e.update(extra or {})
    return e


class Runner:
    """Runs perfkit with TMPDIR pointing at a private, initially empty directory."""

    def __init__(self, base: Path) -> None:
        self.tmp = base / "tmp"
        self.tmp.mkdir(mode=0o700, exist_ok=True)
        self.out = base / "out"
        self.out.mkdir(exist_ok=True)

    def env(self, extra: dict | None = None) -> dict:
        return env_for(self.tmp, extra)

    def run(self, *args, timeout: float = 90, input: str | None = None, env: dict | None = None
            ) -> subprocess.CompletedProcess:
        return subprocess.run([PY, "-m", "perfkit", *map(str, args)], capture_output=True, text=True,
                              timeout=timeout, env=self.env(env), cwd=self.out, input=input)

    def spawn(self, *args, env: dict | None = None) -> subprocess.Popen:
        """perfkit in its own session (signals reach only it), output to files."""
        self._o = open(self.out / "stdout.txt", "w+")
        self._e = open(self.out / "stderr.txt", "w+")
        return subprocess.Popen([PY, "-m", "perfkit", *map(str, args)], stdout=self._o, stderr=self._e,
                                env=self.env(env), cwd=self.out, start_new_session=True)

    def finish(self, p: subprocess.Popen, timeout: float = 60) -> subprocess.CompletedProcess:
        p.wait(timeout)
        self._o.seek(0)
        self._e.seek(0)
        res = subprocess.CompletedProcess(p.args, p.returncode, self._o.read(), self._e.read())
        self._o.close()
        self._e.close()
        return res

    def temp_entries(self) -> list[str]:
        return sorted(os.listdir(self.tmp))


@pytest.fixture
def pk(tmp_path) -> Runner:
    return Runner(tmp_path)


class Target:
    """A scenario process in its own session; its stderr kept in a file."""

    def __init__(self, name: str, *args, ready: bool = True, prefix: list[str] | None = None,
                 env: dict | None = None, cwd: str | None = None, logdir: Path | None = None) -> None:
        logdir = logdir or Path(os.environ.get("TMPDIR", "/tmp"))
        self.errpath = logdir / f"target-{name}-{os.getpid()}-{time.monotonic_ns()}.err"
        self._err = open(self.errpath, "w")
        self.proc = subprocess.Popen([*(prefix or []), PY, str(SCENARIOS / f"{name}.py"), *map(str, args)],
                                     stdout=subprocess.PIPE, stderr=self._err, text=True, start_new_session=True,
                                     env=env, cwd=cwd)
        self.pid = self.proc.pid
        if ready:
            line = self.proc.stdout.readline()
            assert line.startswith("ready"), (name, line, self.stderr())
        self.state0 = proc.state(self.pid)

    def stderr(self) -> str:
        try:
            return self.errpath.read_text(errors="replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None and proc.alive(self.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        self.proc.stdout.close()
        self._err.close()
        try:
            self.errpath.unlink()
        except OSError:
            pass


@pytest.fixture
def target(tmp_path):
    """Factory: ``target("mem_selfcheck", "--duration", 60)``; all stopped at the end."""
    made: list[Target] = []

    def make(name: str, *args, **kw) -> Target:
        kw.setdefault("logdir", tmp_path)
        t = Target(name, *args, **kw)
        made.append(t)
        return t

    yield make
    for t in made:
        t.stop()


def assert_unharmed(t: Target, *, state: str | None = None) -> None:
    """Alive, same scheduler state, not traced, code intact, memray silent in its stderr."""
    assert t.alive(), f"target {t.pid} died: rc={t.proc.poll()} stderr={t.stderr()[-500:]}"
    st = proc.state(t.pid)
    want = state or t.state0
    if want in ("T", "t"):
        assert st == want, f"stopped target {t.pid} was resumed: state {st}"
    else:
        assert st in ("R", "S", "D"), f"target {t.pid} left in state {st}"
    assert proc.tracer(t.pid) == 0, f"target {t.pid} still traced by {proc.tracer(t.pid)}"
    strays = codecheck.stray_breakpoints(t.pid)
    assert not strays, f"breakpoint bytes left in target {t.pid}: {strays[:3]}"
    assert "memray: Deactivating" not in t.stderr(), t.stderr()


def helpers(pids: list[int] = ()) -> list[str]:
    """perfkit helpers from this checkout still alive (or any gdb/py-spy attached to ``pids``)."""
    out = []
    me = os.getpid()
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == me:
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
            st = proc.state(int(d))
        except OSError:
            continue
        if st in (None, "Z", "X") or "-m pytest" in cmd:
            continue
        ours = str(ROOT) in cmd and any(w in cmd for w in HELPER_WORDS) and "scenarios/" not in cmd
        attached = any(f"-p {p} " in cmd + " " or f"--pid {p} " in cmd + " " for p in pids) and \
            any(w in cmd for w in ("gdb", "py-spy", "memray"))
        if ours or attached:
            out.append(f"{d}: {cmd[:160]}")
    return out


def assert_no_helpers(pids: list[int] = (), timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    left = helpers(pids)
    while left and time.monotonic() < end:
        time.sleep(0.2)
        left = helpers(pids)
    assert not left, left


def assert_no_temp(pk: Runner) -> None:
    left = pk.temp_entries()
    assert not left, left


def wait_until(pred, timeout: float = 20.0, step: float = 0.1) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return False


def tracing(pid: int) -> bool:
    """gdb (memray attach) holds the target right now."""
    return proc.tracer(pid) != 0


def load_json(text: str) -> dict:
    return json.loads(text)
