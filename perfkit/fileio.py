"""Safe file output: atomic (temp + rename), created 0600, clear errors.

Report files can hold secrets (stack frames, paths, locals), so everything perfkit
writes is created with mode 0600.  A write either produces the whole file or leaves
the previous state untouched; never a half-written file.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from perfkit.errors import OutputError

FILE_MODE = 0o600


def _describe(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on device"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.ENOENT:
        return "directory does not exist"
    if exc.errno == errno.EROFS:
        return "read-only file system"
    return exc.strerror or str(exc)


def _is_special(p: Path) -> bool:
    """An existing path that is not a regular file or directory (device, FIFO, socket)."""
    import stat

    try:
        mode = os.stat(p).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def check_writable(path: str | os.PathLike) -> Path:
    """Fail early (before any recording) if ``path`` cannot be written."""
    p = Path(path)
    if _is_special(p):
        if not os.access(p, os.W_OK):
            raise OutputError(f"cannot write {p}: permission denied")
        return p
    if p.is_dir():
        raise OutputError(f"cannot write {p}: it is a directory", "give a file name, e.g. -o profile.svg")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"cannot write {p}: directory {parent} does not exist", "create it first or choose another "
                                                                                  "path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {p}: permission denied on {parent}", "choose a writable directory")
    if p.exists() and not os.access(p, os.W_OK):
        raise OutputError(f"cannot write {p}: permission denied", "choose another path")
    return p


def atomic_write(path: str | os.PathLike, data: bytes | str, *, mode: int = FILE_MODE) -> Path:
    """Write ``data`` to ``path`` atomically with permissions ``mode`` (default 0600)."""
    p = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    if _is_special(p):
        # /dev/null, /dev/stdout, a FIFO: write through; never rename over a device.
        try:
            with open(p, "wb") as f:
                f.write(payload)
        except OSError as exc:
            raise OutputError(f"cannot write {p}: {_describe(exc)}") from exc
        return p
    parent = p.parent if str(p.parent) else Path(".")
    fd = -1
    tmp = None
    try:
        sweep_partial(parent, p.name)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.perfkit-{os.getpid()}-", suffix=".tmp", dir=parent)
        os.fchmod(fd, mode)
        view = memoryview(payload)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, p)
        tmp = None
    except OSError as exc:
        raise OutputError(f"cannot write {p}: {_describe(exc)}", "free some space or choose another path"
                          if exc.errno == errno.ENOSPC else None) from exc
    finally:
        if fd >= 0:
            os.close(fd)
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return p


def atomic_copy(src: str | os.PathLike, dst: str | os.PathLike, *, mode: int = FILE_MODE) -> Path:
    """Copy a file atomically into place with mode 0600."""
    with open(src, "rb") as f:
        return atomic_write(dst, f.read(), mode=mode)


def private_mkdir(path: str | os.PathLike) -> Path:
    """Create a directory (and parents) with mode 0700.

    A directory that already exists is left exactly as it is: tightening the mode of
    the user's own directory (say /tmp, for ``--state /tmp/x.json``) would break
    everything else that uses it.
    """
    p = Path(path)
    if p.is_dir():
        return p
    try:
        p.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(p, 0o700)
    except OSError as exc:
        raise OutputError(f"cannot create directory {p}: {_describe(exc)}") from exc
    return p


TEMP_PREFIX = "perfkit-"


def private_tempdir(kind: str, *, owner: tuple[int, int] | None = None) -> str:
    """A fresh 0700 directory ``$TMPDIR/perfkit-KIND-PID-XXXX`` for one run's scratch files.

    ``PID`` is perfkit's own pid, so a later run can tell a directory whose perfkit was
    SIGKILLed (nothing else leaves one behind) and remove it (:func:`sweep_stale`).
    ``owner`` (uid, gid): hand the directory to that user (root writing a capture
    that another user's target must create); it stays 0700, private to that user and root.
    """
    import tempfile

    sweep_stale()
    d = tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{kind}-{os.getpid()}-")
    os.chmod(d, 0o700)
    if owner is not None and os.geteuid() == 0 and owner[0] != 0:
        try:
            os.chown(d, owner[0], owner[1])
        except OSError:
            pass
    return d


def private_file(directory: str, name: str, *, owner: tuple[int, int] | None = None) -> str:
    """Create ``directory/name`` empty, 0600 (and owned by ``owner`` when root); its path.

    Tools asked to overwrite it (memray ``-f``) keep the mode: nothing they write is
    ever readable by others, whatever the writer's umask.
    """
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        if owner is not None and os.geteuid() == 0 and owner[0] != 0:
            os.fchown(fd, owner[0], owner[1])
    finally:
        os.close(fd)
    return path


def sweep_partial(parent: Path, name: str) -> None:
    """Half-written ``.NAME.perfkit-PID-*.tmp`` files of a perfkit that was SIGKILLed mid-write."""
    head = f".{name}.perfkit-"
    try:
        entries = [e for e in os.listdir(parent) if e.startswith(head) and e.endswith(".tmp")]
    except OSError:
        return
    for e in entries:
        pid = e[len(head):].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        path = os.path.join(parent, e)
        try:
            if _may_be_creator(int(pid), os.lstat(path).st_mtime):
                continue  # its writer still runs (a perfkit, or a program using perfkit.api)
            os.unlink(path)
        except OSError:
            pass


def sweep_stale(tmp: str | None = None, *, min_age: float = 0.0, prefix: str = TEMP_PREFIX) -> list[str]:
    """Remove scratch directories of perfkit runs that died without cleaning up (SIGKILL, OOM).

    Only ``PREFIX KIND-PID-*`` directories (``perfkit-heap-4242-x1y2``) whose PID is gone
    or now belongs to a process that started after the directory was last written (the pid
    was reused), that this user owns (or root), older than ``min_age`` seconds.  A live
    creator keeps its directory whatever its command line (perfkit.api inside a program, a
    test runner).  Returns what was removed.  Never raises.
    """
    import shutil
    import tempfile
    import time

    removed: list[str] = []
    base = tmp or tempfile.gettempdir()
    try:
        names = os.listdir(base)
    except OSError:
        return removed
    me = os.geteuid()
    for name in names:
        if not name.startswith(prefix):
            continue
        if name.endswith(".lock"):
            if _unlink_unheld_lock(os.path.join(base, name)):
                removed.append(os.path.join(base, name))
            continue
        parts = name[len(prefix):].split("-")
        if len(parts) < 3 or not parts[-2].isdigit():
            continue
        pid = int(parts[-2])
        if pid == os.getpid():
            continue
        path = os.path.join(base, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if _may_be_creator(pid, st.st_mtime):
            continue
        import stat as stat_mod

        if not stat_mod.S_ISDIR(st.st_mode) or (me != 0 and st.st_uid != me) or time.time() - st.st_mtime < min_age:
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _may_be_creator(pid: int, mtime: float) -> bool:
    """``pid`` runs and started before ``mtime`` (so it may have made the directory).

    Start time from /proc/PID/stat (ticks since boot) and /proc/stat's btime; a second of
    slack for their rounding.  Unreadable: assume it may (keep the directory)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False  # gone
    try:
        ticks = int(data[data.rfind(b")") + 2:].split()[19])
        with open("/proc/stat", "rb") as f:
            btime = next(int(ln.split()[1]) for ln in f if ln.startswith(b"btime "))
        started = btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return True
    return started <= mtime + 1.0


def _unlink_unheld_lock(path: str) -> bool:
    """A lock file nobody holds (its perfkit was SIGKILLed) is removed; a held one is left alone."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    try:
        os.unlink(path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
