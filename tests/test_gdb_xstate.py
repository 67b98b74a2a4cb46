"""gdb < 14 on an AMX CPU: an inferior call (what memray attach makes) must not kill the
target.  perfkit preloads a register fix into such a gdb (perfkit/tools/gdb_xstate.py);
these tests drive real gdb against a real sleeping Python process."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time

import pytest

from perfkit.errors import ToolMissing
from perfkit.tools import gdb_xstate

GDB = shutil.which("gdb")
pytestmark = [pytest.mark.live, pytest.mark.timeout(120),
              pytest.mark.skipif(GDB is None, reason="gdb not installed")]

# wakes from each 0.5 s sleep and says so; an interrupted sleep that returns a kernel-internal
# errno (514) into Python raises OSError and ends it
SLEEPER = ("import sys, time\n"
           "print('ready', flush=True)\n"
           "for i in range(240):\n"
           "    time.sleep(0.5)\n"
           "    print('woke', i, flush=True)\n")


def _sleeper() -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", SLEEPER], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    time.sleep(0.2)  # in its first sleep
    return p


def _call_getpid(pid: int, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([GDB, "-batch", "-nx", "-p", str(pid), "-ex", "call (int)getpid()"],
                          capture_output=True, text=True, timeout=60, env=env)


def _still_sleeping(p: subprocess.Popen) -> tuple[bool, str]:
    """The sleeper wakes twice more and is alive; its stderr if not."""
    assert p.stdout is not None
    lines = [p.stdout.readline() for _ in range(2)]
    alive = p.poll() is None and all(ln.startswith("woke") for ln in lines)
    err = ""
    if not alive:
        p.kill()
        err = p.communicate(timeout=10)[1]
    return alive, err


def test_gdb_inferior_call_with_perfkit_env_leaves_the_target_running(tmp_path):
    env = gdb_xstate.gdb_env(dict(os.environ), GDB, 0, str(tmp_path))
    if gdb_xstate.needs_fix(GDB):
        assert "gdb-xstate-" in env.get("LD_PRELOAD", "")
    p = _sleeper()
    try:
        for _ in range(3):  # repeated calls: each restores every register, AMX state included
            res = _call_getpid(p.pid, env)
            assert f"= {p.pid}" in res.stdout, res.stdout + res.stderr
            assert "Couldn't write" not in res.stdout + res.stderr
        alive, err = _still_sleeping(p)
        assert alive, err
    finally:
        p.kill()
        p.wait(10)


def test_without_the_fix_gdb13_kills_the_target_on_an_amx_cpu():
    """The failure the fix exists for (and so proof the test above can fail): only where it occurs."""
    if not (gdb_xstate.needs_fix(GDB) and gdb_xstate.cpu_has_amx()):
        pytest.skip("gdb >= 14 or no AMX on this CPU: gdb writes the register state whole by itself")
    p = _sleeper()
    try:
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        res = _call_getpid(p.pid, env)
        assert "Couldn't write extended state status" in res.stdout + res.stderr
        alive, err = _still_sleeping(p)
        assert not alive, "the sleeper survived gdb 13's failed register write"
        assert "OSError" in err, err  # time.sleep got the kernel-internal errno
    finally:
        p.kill()
        p.wait(10)


def test_library_is_private_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    lib = gdb_xstate.library()
    assert lib.startswith(str(tmp_path / "cache" / "perfkit"))
    assert stat.S_IMODE(os.stat(os.path.dirname(lib)).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(lib).st_mode) & 0o077 == 0
    before = os.stat(lib).st_mtime_ns
    assert gdb_xstate.library() == lib and os.stat(lib).st_mtime_ns == before  # built once


def test_a_cache_others_can_write_is_not_used(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    (cache / "perfkit").mkdir(parents=True)
    os.chmod(cache / "perfkit", 0o777)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    scratch = tmp_path / "scratch"
    scratch.mkdir(mode=0o700)
    lib = gdb_xstate.library(str(scratch))
    assert lib.startswith(str(scratch))  # built in this run's private directory instead
    with pytest.raises(ToolMissing):
        gdb_xstate.library(None)


def test_without_a_compiler_an_amx_attach_is_refused_before_gdb_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(gdb_xstate, "_compiler", lambda: None)
    monkeypatch.setattr(gdb_xstate, "needs_fix", lambda exe: True)
    monkeypatch.setattr(gdb_xstate, "cpu_has_amx", lambda: True)
    with pytest.raises(ToolMissing) as exc:
        gdb_xstate.gdb_env({}, GDB, 4242, str(tmp_path))
    assert "would kill pid 4242" in exc.value.message and "gcc" in (exc.value.hint or "")
    monkeypatch.setattr(gdb_xstate, "cpu_has_amx", lambda: False)
    assert gdb_xstate.gdb_env({"A": "1"}, GDB, 4242, str(tmp_path)) == {"A": "1"}  # not needed: gdb as it is


def test_doctor_fails_the_gdb_check_in_the_attach_refusals_words(tmp_path, monkeypatch):
    from perfkit.preflight import tools

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(gdb_xstate, "_compiler", lambda: None)
    monkeypatch.setattr(gdb_xstate, "needs_fix", lambda exe: True)
    monkeypatch.setattr(gdb_xstate, "cpu_has_amx", lambda: True)
    check = tools._gdb_xstate(GDB)
    assert not check.ok and check.needs == ("heap",) and check.error is ToolMissing
    with pytest.raises(ToolMissing) as exc:
        gdb_xstate.gdb_env({}, GDB, 4242, str(tmp_path))
    assert check.detail == exc.value.message.replace("pid 4242", "the target") and check.hint == exc.value.hint
    monkeypatch.setattr(gdb_xstate, "cpu_has_amx", lambda: False)
    ok = tools._gdb_xstate(GDB)
    assert ok.ok and "not needed on this CPU" in ok.detail
