"""The target's own interpreter: where it is, how it was built, and what it says.

Nothing here touches the target: /proc is read, and :func:`ask_interpreter` runs a
*separate copy* of the target's interpreter (argv[0] on its PATH, so a venv keeps its
site-packages) in the target's environment — never as root for another user's
process — and asks its version, build and whether it can import memray.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field

from perfkit.procs import proc


@dataclass
class Interpreter:
    """What the target's own interpreter says about itself (asked in a separate process)."""

    path: str | None = None
    version: tuple[int, int, int] | None = None
    free_threaded: bool = False
    debug: bool = False
    memray: str | None = None  # memray's version when importable
    memray_error: str | None = None
    error: str | None = None  # why it could not be asked
    how: str = ""
    env: dict = field(default_factory=dict)


_PROBE = r"""
import importlib.util, json, sys, sysconfig
doc = {"version": list(sys.version_info[:3]), "abiflags": getattr(sys, "abiflags", ""),
       "gil_disabled": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
       "debug": hasattr(sys, "gettotalrefcount"), "memray": None, "memray_error": None}
try:
    if importlib.util.find_spec("memray") is None:
        doc["memray_error"] = "not installed"
    else:
        import importlib.metadata as md
        doc["memray"] = md.version("memray")
except Exception as exc:
    doc["memray_error"] = "%s: %s" % (type(exc).__name__, exc)
print("PERFKIT-PROBE " + json.dumps(doc))
"""


def _target_env(pid: int) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return {}
    env = {}
    for item in raw.split(b"\0"):
        k, sep, v = item.partition(b"=")
        if sep:
            env[k.decode("utf-8", "replace")] = v.decode("utf-8", "replace")
    return env


def interpreter_path(pid: int) -> tuple[str | None, str]:
    """The interpreter as the target started it (argv[0], so a venv keeps its site-packages),
    else its executable; and how it was found."""
    argv = proc.cmdline(pid)
    env = _target_env(pid)
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        cwd = None
    exe = proc.exe(pid)
    if argv:
        first = argv[0]
        if os.sep in first:
            cand = first if os.path.isabs(first) else os.path.join(cwd or "/", first)
            if os.access(cand, os.X_OK) and re.search(r"python", os.path.basename(cand)):
                return cand, "argv[0]"
        elif re.match(r"python", first):
            found = shutil.which(first, path=env.get("PATH") or os.defpath)
            if found:
                return found, "argv[0] on its PATH"
    if exe and os.access(exe, os.X_OK):
        return exe, "/proc/PID/exe"
    if os.access(f"/proc/{pid}/exe", os.X_OK):
        return f"/proc/{pid}/exe", "/proc/PID/exe"
    return None, "unreadable"


def ask_interpreter(pid: int, timeout: float = 20.0) -> Interpreter:
    """Run the target's interpreter (not the target) with its environment and ask it."""
    from perfkit.procs import supervisor

    path, how = interpreter_path(pid)
    info = Interpreter(path=path, how=how)
    if path is None:
        info.error = "the target's interpreter cannot be found or read"
        return info
    tenv = _target_env(pid)
    env = {k: v for k, v in tenv.items() if k in ("PATH", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "HOME",
                                                  "LD_LIBRARY_PATH", "PYTHONNOUSERSITE", "PYTHONUSERBASE")}
    env.setdefault("PATH", os.environ.get("PATH", os.defpath))
    info.env = env
    cwd: str | None
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
        cwd = cwd if os.path.isdir(cwd) else None
    except OSError:
        cwd = None
    argv = [path, "-c", _PROBE]
    owner = owner_ids(pid)
    if os.geteuid() == 0 and owner is not None and owner[0] != 0:
        # the target's environment runs code at start-up (.pth files, sitecustomize): never as root
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            info.error = f"not asked: it would run uid {owner[0]}'s interpreter as root (setpriv not found)"
            return info
        argv = [setpriv, f"--reuid={owner[0]}", f"--regid={owner[1]}", "--clear-groups", *argv]
    try:
        res = supervisor.run(argv, timeout=timeout, env=env, cwd=cwd)
    except OSError as exc:
        info.error = f"cannot run {path}: {getattr(exc, 'strerror', None) or exc}"
        return info
    out = res.stdout.decode("utf-8", "replace")
    m = re.search(r"^PERFKIT-PROBE (.*)$", out, re.M)
    if not m:
        tail = (res.stderr_tail or "").strip().splitlines()
        info.error = f"{path} did not answer ({tail[-1] if tail else f'exit status {res.returncode}'})"
        return info
    doc = json.loads(m.group(1))
    major, minor, micro = (int(x) for x in doc["version"])
    info.version = (major, minor, micro)
    info.free_threaded = bool(doc.get("gil_disabled")) or "t" in (doc.get("abiflags") or "")
    info.debug = bool(doc.get("debug")) or "d" in (doc.get("abiflags") or "")
    info.memray, info.memray_error = doc.get("memray"), doc.get("memray_error")
    return info


def build_from_maps(pid: int) -> tuple[str | None, bool, bool]:
    """X.Y, free-threaded, debug — from the executable's and libpython's names alone."""
    names = []
    try:
        names.append(os.path.basename(os.readlink(f"/proc/{pid}/exe")))
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/maps", "rb") as f:
            names += [m.decode() for m in re.findall(rb"libpython\d\.\d+[a-z]*", f.read())]
    except OSError:
        pass
    for n in names:
        m = re.search(r"python(\d\.\d+)([a-z]*)", n)
        if m:
            return m.group(1), "t" in m.group(2), "d" in m.group(2)
    return None, False, False


def owner_ids(pid: int) -> tuple[int, int] | None:
    """(effective uid, effective gid) of ``pid``."""
    try:
        uid = int((proc.status_field(pid, "Uid") or "").split()[1])
        gid = int((proc.status_field(pid, "Gid") or "").split()[1])
    except (IndexError, ValueError):
        return None
    return uid, gid
