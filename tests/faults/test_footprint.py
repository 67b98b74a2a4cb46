"""Fault matrix, part 6: perfkit's footprint in the target and on the host — private files
(0600 in 0700 directories, scratch included), another user's process profiled by root,
memray silent in the target, the one loopback port memray attach opens and closes."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest
from harness import PY, ROOT, assert_no_helpers, assert_no_temp, assert_unharmed, pk, target, wait_until  # noqa: F401

from perfkit.procs import proc

pytestmark = pytest.mark.live


def _modes(root: Path) -> list[tuple[str, str]]:
    """(path, octal mode) of everything under ``root`` that is not private."""
    bad = []
    for p in [root, *root.rglob("*")]:
        try:
            mode = stat.S_IMODE(p.lstat().st_mode)
        except FileNotFoundError:
            continue
        want = 0o700 if p.is_dir() else 0o600
        if mode & 0o077:
            bad.append((str(p), oct(mode)))
        elif not p.is_dir() and mode != want and mode & 0o600 != 0o600:
            bad.append((str(p), oct(mode)))
    return bad


def _scratch_while(pk, p, what: str, timeout: float = 30.0) -> list[tuple[str, str]]:
    """Poll perfkit's TMPDIR while it runs: every scratch file and directory is private."""
    seen, bad = set(), []
    end = time.monotonic() + timeout
    while p.poll() is None and time.monotonic() < end:
        for d in pk.tmp.iterdir():
            seen.add(d.name)
            bad.extend(_modes(d))
        time.sleep(0.05)
    assert any(n.startswith(what) for n in seen), seen
    return bad


def test_heap_attach_scratch_is_private_silent_and_listens_only_on_loopback(pk, target):
    """One heap attach, watched while it runs: its scratch directory and files are private,
    the only listening socket in its process tree is memray attach's control port on
    127.0.0.1 (gone when it ends), and memray prints nothing into the target."""
    t = target("mem_selfcheck", "--duration", 120)
    p = pk.spawn("heap", "--pid", t.pid, "-d", 2)
    seen, bad, listening = set(), [], []
    end = time.monotonic() + 40
    while p.poll() is None and time.monotonic() < end:
        for d in pk.tmp.iterdir():
            seen.add(d.name)
            bad.extend(_modes(d))
        listening.extend(_listening({p.pid, *proc.child_pids(p.pid)}))
        time.sleep(0.02)
    res = pk.finish(p)
    assert res.returncode == 0, res.stderr
    assert any(n.startswith("perfkit-heap-") for n in seen), seen
    assert not bad, bad
    # 0100007F = 127.0.0.1 (and ::1 in tcp6): never a public address
    assert listening, "memray attach's control port was never seen"
    assert all(a.split(":")[0] in ("0100007F", "00000000000000000000000001000000") for a in listening), listening
    time.sleep(0.3)
    assert "memray" not in t.stderr(), t.stderr()
    assert_no_helpers([t.pid])
    assert_unharmed(t)
    assert_no_temp(pk)


def test_cpu_scratch_is_private(pk, target):
    t = target("mem_selfcheck", "--duration", 120)
    p = pk.spawn("cpu", "--pid", t.pid, "-d", 1)
    bad = _scratch_while(pk, p, "perfkit-cpu-")
    res = pk.finish(p)
    assert res.returncode == 0, res.stderr
    assert not bad, bad
    assert_no_temp(pk)


def test_every_output_file_is_0600(pk, target):
    t = target("mem_selfcheck", "--duration", 120)
    res = pk.run("cpu", "--pid", t.pid, "-d", "1", "-o", "a.perfkit", "-o", "a.svg", "-o", "a.html", "-o", "a.pb.gz")
    assert res.returncode == 0, res.stderr
    files = [pk.out / n for n in ("a.perfkit", "a.svg", "a.html", "a.pb.gz")]
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files), [oct(f.stat().st_mode) for f in files]


@pytest.fixture
def reachable_dir():
    """A directory user nobody can traverse (pytest's own tmp is private to root)."""
    import shutil
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="perfkit-test-nobody-", dir="/tmp"))
    os.chmod(d, 0o711)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_root_tracks_another_users_process_privately(reachable_dir, pk, target):
    from conftest import require_nobody

    prefix = require_nobody()
    home = reachable_dir / "home"  # the target's own HOME (memray stats its user site there)
    home.mkdir()
    os.chown(home, 65534, 65534)
    shared_tmp = reachable_dir / "shared"  # the target must reach the capture directory perfkit makes
    shared_tmp.mkdir(mode=0o711)
    os.chmod(shared_tmp, 0o711)
    t = target("mem_selfcheck", "--duration", 120, prefix=prefix, env={**os.environ, "HOME": str(home)}, cwd="/")
    assert os.stat(f"/proc/{t.pid}").st_uid == 65534
    p = pk.spawn("heap", "--pid", t.pid, "-d", 2, "--json", env={"TMPDIR": str(shared_tmp)})
    owners = set()
    end = time.monotonic() + 40
    while p.poll() is None and time.monotonic() < end:
        for d in shared_tmp.glob("perfkit-heap-*"):
            try:
                st = d.stat()
                owners.add(("dir", st.st_uid, oct(stat.S_IMODE(st.st_mode))))
                c = d / "capture.bin"
                if c.exists():
                    cst = c.stat()
                    owners.add(("capture", cst.st_uid, oct(stat.S_IMODE(cst.st_mode))))
            except FileNotFoundError:
                pass
        time.sleep(0.05)
    res = pk.finish(p)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["recording"]["heap"]["totals"]["alloc_count"] > 0
    assert ("dir", 65534, "0o700") in owners and ("capture", 65534, "0o600") in owners, owners
    assert list(shared_tmp.iterdir()) == []
    assert_unharmed(t)


def _listening(pids: set[int]) -> list[str]:
    """Listening TCP sockets held by ``pids``: "addr:port"."""
    inodes = {}
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if link.startswith("socket:["):
                    inodes[link[8:-1]] = pid
        except OSError:
            continue
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for ln in lines:
            f = ln.split()
            if f[3] == "0A" and f[9] in inodes:  # LISTEN
                out.append(f[1])
    return out
