"""perfkit.preflight's rules on simulated hosts: every Yama ptrace_scope, with and without
root / CAP_SYS_PTRACE, containers, py-spy's reach, free-threaded and debug builds, temp
space — the cases this machine cannot show for real (it may have no Yama at all)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from perfkit import preflight
from perfkit.errors import OutputError, PermissionDenied, TargetError, ToolMissing


def host(monkeypatch, *, scope, root=False, cap=False, container=None, euid=1000):
    monkeypatch.setattr(preflight, "privileges", lambda: {"euid": 0 if root else euid, "root": root,
                                                          "cap_sys_ptrace": cap, "ptrace_scope": scope,
                                                          "seccomp": "2"})
    monkeypatch.setattr(preflight, "in_container", lambda: container)


@pytest.mark.parametrize("scope,root,cap,ok", [
    ("0", False, False, True), ("1", False, False, True), ("2", False, False, False), ("2", False, True, True),
    ("2", True, True, True), ("3", True, True, False), (None, False, False, True)])
def test_launched_programs(monkeypatch, scope, root, cap, ok):
    host(monkeypatch, scope=scope, root=root, cap=cap)
    c = preflight.ptrace_host()
    assert c.ok is ok, c
    if not ok:
        assert c.error is PermissionDenied and "cpu" in c.needs and c.hint


def test_attach_scope_1_needs_a_parent_or_privileges(monkeypatch):
    me = os.getpid()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        host(monkeypatch, scope="1", euid=os.geteuid())
        assert preflight._ptrace_target(child.pid).ok  # perfkit's own child: a parent may attach
        # a process of this user that is not this one's descendant: a sleep orphaned by its shell
        # (the test's own parent will not do: it may be pid 1, whose memory is not readable here)
        out = subprocess.run(["sh", "-c", "sleep 30 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True,
                             check=True, timeout=10)
        orphan = int(out.stdout.split()[0])
        try:
            assert preflight._can_read_maps(orphan)
            c = preflight._ptrace_target(orphan)
            assert not c.ok and "only a parent may attach" in c.detail and "sudo" in c.hint
        finally:
            os.kill(orphan, 9)
        host(monkeypatch, scope="1", root=True, cap=True)
        assert preflight._ptrace_target(me).ok
    finally:
        child.kill()
        child.wait()


@pytest.mark.parametrize("scope,cap,ok", [("0", False, True), ("2", False, False), ("2", True, True),
                                          ("3", True, False)])
def test_attach_other_scopes(monkeypatch, scope, cap, ok):
    host(monkeypatch, scope=scope, cap=cap, euid=os.geteuid())
    c = preflight._ptrace_target(os.getpid())
    assert c.ok is ok, c
    if not ok:
        assert c.error is PermissionDenied and c.needs == ("cpu", "heap")


def test_container_hints(monkeypatch):
    host(monkeypatch, scope="1", container="/.dockerenv")
    c = preflight.container()
    assert not c.ok and c.status == "warn" and "--cap-add SYS_PTRACE" in c.hint and "seccomp" in c.detail
    host(monkeypatch, scope="2", container="/.dockerenv")
    assert "SYS_PTRACE" in preflight.ptrace_host().hint
    host(monkeypatch, scope="1", root=True, cap=True, container="kubepods")
    assert preflight.container().ok
    host(monkeypatch, scope="1", container=None)
    assert preflight.container().ok


def test_pyspy_reach_by_version():
    assert preflight.pyspy_max_python("0.3.14") == (3, 11)
    assert preflight.pyspy_max_python("0.4.0") == (3, 13)
    assert preflight.pyspy_max_python("0.4.3") == (3, 14)
    assert preflight.pyspy_max_python("unknown") is None


def test_builds_py_spy_cannot_read(monkeypatch):
    monkeypatch.setattr("perfkit.tools.pyspy.pyspy_version", lambda exe=None: "0.4.0")
    checks = {c.name: c for c in preflight._versions("3.14", ft=True, dbg=True)}
    assert not checks["py-spy supports it"].ok and "3.13" in checks["py-spy supports it"].detail
    ft = checks["free-threaded build"]
    assert not ft.ok and ft.error is TargetError and ft.needs == ("cpu",)
    assert checks["debug build"].status == "warn"
    ok = {c.name: c for c in preflight._versions("3.11", ft=False, dbg=False)}
    assert ok["py-spy supports it"].ok and set(ok) == {"py-spy supports it"}


def test_temp_space_and_mounts(monkeypatch, tmp_path):
    assert preflight.temp_dir(str(tmp_path)).ok
    monkeypatch.setattr(preflight, "MIN_TEMP_FREE", 1 << 62)
    c = preflight.temp_dir(str(tmp_path))
    assert not c.ok and c.error is OutputError and "free" in c.detail
    assert preflight.mount_of("/proc/self")[0] == "/proc"
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    if os.geteuid() != 0:  # root writes anywhere
        c = preflight.temp_dir(str(ro))
        assert not c.ok and "cannot create" in c.detail


def test_verdict_and_require():
    checks = [preflight.Check("a", True, "fine"),
              preflight.Check("b", False, "heap only", "fix b", ToolMissing, needs=("heap",)),
              preflight.Check("c", False, "advice", "fix c")]
    assert preflight.verdict(checks, "cpu") == (True, 0)
    assert preflight.verdict(checks, "heap") == (False, 4)
    preflight.require(checks, "cpu")
    with pytest.raises(ToolMissing) as exc:
        preflight.require(checks, "heap")
    assert exc.value.message == "heap only" and exc.value.exit_code == 4
    assert [c.status for c in checks] == ["ok", "fail", "warn"]
