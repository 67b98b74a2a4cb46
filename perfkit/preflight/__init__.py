"""Preconditions of profiling a process, each checked without touching it, with its fix.

``perfkit doctor`` lists them (:func:`host` and :func:`for_pid`); any command may
call one and :func:`require` it (the gate's preflight can reuse the generic ones).
A :class:`Check` says what was checked, whether it holds, why not and how to fix it,
the error (and so the exit code) a failure means, and which commands need it
(``needs``: "cpu" for ``perfkit cpu``/``top``/``threads``, "heap" for ``perfkit heap``).

Nothing here attaches: /proc and /sys are read, tools are looked up, and the target's
*interpreter* (a separate copy of its executable, in its environment) is asked for
its version, build and whether it can import memray.  The one optional exception is
:func:`pyspy_probe`, a non-blocking ``py-spy dump`` (reads memory, never stops the
target) that confirms what the static checks predict.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

from perfkit.errors import (
    OutputError,
    PerfkitError,
    PermissionDenied,
    TargetError,
    ToolError,
    ToolMissing,
    UsageError,
)
from perfkit.preflight.checks import Check, require, verdict
from perfkit.preflight.tools import gdb, memray_python_range, own_memray, pyspy, pyspy_max_python
from perfkit.procs import proc
from perfkit.procs.interpreter import Interpreter, build_from_maps, interpreter_path
from perfkit.procs.interpreter import ask_interpreter as _ask

CAP_SYS_PTRACE = 19
PROBE_TIMEOUT = 20.0
MIN_TEMP_FREE = 256 << 20  # a heap capture of a busy process reaches hundreds of MiB
CONTAINER_HINT = ("in a container: docker run --cap-add SYS_PTRACE (docker-compose cap_add: [SYS_PTRACE]), "
                  "Kubernetes securityContext.capabilities.add: [\"SYS_PTRACE\"]; to reach a process in another "
                  "container share its PID namespace (--pid container:NAME, shareProcessNamespace: true)")


# ------------------------------------------------------------------ host

def privileges() -> dict:
    return {"euid": os.geteuid(), "root": os.geteuid() == 0, "cap_sys_ptrace": proc.has_capability(CAP_SYS_PTRACE),
            "ptrace_scope": proc.sysctl("kernel.yama.ptrace_scope"),
            "seccomp": proc.status_field(os.getpid(), "Seccomp")}


def ptrace_host() -> Check:
    """May perfkit's samplers read a program it launches (``perfkit cpu -- CMD``)?"""
    p = privileges()
    scope = p["ptrace_scope"]
    who = "root" if p["root"] else f"uid {p['euid']}" + (" with CAP_SYS_PTRACE" if p["cap_sys_ptrace"] else "")
    if scope == "3":
        return Check("ptrace (launched programs)", False,
                     "kernel.yama.ptrace_scope is 3: no process may be traced, not even by root",
                     "it cannot be lowered without a reboot; use perfkit leaks / triage (they read /proc only)",
                     PermissionDenied, needs=("cpu", "heap"))
    if scope == "2" and not (p["root"] or p["cap_sys_ptrace"]):
        return Check("ptrace (launched programs)", False,
                     f"kernel.yama.ptrace_scope is 2 (admin only) and perfkit runs as {who}",
                     "run as root, or give perfkit CAP_SYS_PTRACE" + (f"; {CONTAINER_HINT}" if in_container() else ""),
                     PermissionDenied, needs=("cpu",))
    return Check("ptrace (launched programs)", True,
                 f"kernel.yama.ptrace_scope {scope if scope is not None else 'absent (no Yama)'}; running as {who}")


def in_container() -> str | None:
    """What says perfkit runs in a container (None when nothing does)."""
    if os.path.exists("/.dockerenv"):
        return "/.dockerenv"
    if os.path.exists("/run/.containerenv"):
        return "/run/.containerenv (podman)"
    if os.environ.get("container"):
        return f"container={os.environ['container']}"
    try:
        with open("/proc/1/cgroup", encoding="utf-8", errors="replace") as f:
            text = f.read()
        m = re.search(r"(docker|kubepods|containerd|libpod|lxc)", text)
        if m:
            return f"/proc/1/cgroup mentions {m.group(1)}"
    except OSError:
        pass
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return "KUBERNETES_SERVICE_HOST is set"
    return None


def container() -> Check:
    """Advice only: in a container, what ptrace and PID namespaces need."""
    where = in_container()
    if where is None:
        return Check("container", True, "not in a container (no /.dockerenv, container cgroup or marker)")
    p = privileges()
    if not (p["root"] and p["cap_sys_ptrace"]):
        seccomp = " and a seccomp filter is active" if p["seccomp"] == "2" else ""
        return Check("container", False, f"in a container ({where}) without CAP_SYS_PTRACE{seccomp}: attaching "
                                         "to another user's process is refused (any process, if the seccomp "
                                         "profile blocks ptrace)", CONTAINER_HINT)
    return Check("container", True, f"in a container ({where}) with CAP_SYS_PTRACE; only processes in this PID "
                                    "namespace are visible")


def temp_dir(base: str | None = None) -> Check:
    """The scratch directory captures go to: writable, room to spare, mount options."""
    base = base or tempfile.gettempdir()
    name = "temporary directory"
    try:
        d = tempfile.mkdtemp(prefix="perfkit-doctor-", dir=base)
        os.rmdir(d)
    except OSError as exc:
        return Check(name, False, f"cannot create a scratch directory in {base} ({exc.strerror or exc})",
                     "set TMPDIR to a writable directory", OutputError, needs=("cpu", "heap"))
    st = os.statvfs(base)
    free = st.f_bavail * st.f_frsize
    from perfkit.units import human_bytes

    mount, opts = mount_of(base)
    flags = f"; mounted {','.join(sorted(opts & {'noexec', 'nosuid', 'nodev', 'ro'}))} ({mount})" \
        if opts & {"noexec", "nosuid", "nodev"} else ""
    if free < MIN_TEMP_FREE:
        return Check(name, False, f"{base} has only {human_bytes(free)} free: a heap capture may not fit",
                     "set TMPDIR to a directory on a bigger file system", OutputError)
    return Check(name, True, f"{base}: {human_bytes(free)} free{flags}")


def mount_of(path: str) -> tuple[str, set[str]]:
    """The mount point holding ``path`` and its options (from /proc/self/mounts)."""
    best, opts = "/", set()
    real = os.path.realpath(path)
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 4:
                    continue
                mnt = parts[1].replace("\\040", " ")
                if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                    best, opts = mnt, set(parts[3].split(","))
    except OSError:
        pass
    return best, opts


def memray_library() -> Check:
    """memray attach makes the target load memray's injector library from perfkit's install."""
    try:
        import memray._memray as core
    except Exception:
        return Check("memray injector", True, "memray not installed (see above)")
    lib = Path(core.__file__).parent
    mount, opts = mount_of(str(lib))
    if "noexec" in opts:
        return Check("memray injector", False, f"memray's library directory {lib} is on a noexec mount ({mount}): "
                                               "a target cannot load the attach injector from it",
                     "install perfkit (and memray) on an exec mount, or launch the program: perfkit heap -- CMD",
                     ToolError, needs=("heap",))
    return Check("memray injector", True, f"{lib}")


def project_config() -> Check:
    from perfkit import config

    try:
        d = config.load()
    except UsageError as exc:
        return Check("project config", False, exc.message, exc.hint, UsageError, needs=("cpu", "heap"))
    if d.source is None:
        return Check("project config", True, "no pyproject.toml here: built-in defaults")
    if not d.raw:
        return Check("project config", True, f"{d.source}: no [tool.perfkit] table, built-in defaults")
    shown = ", ".join(f"{k}={v}" for k, v in d.to_json().items() if k != "source" and v not in (None, [], True))
    return Check("project config", True, f"{d.source} [tool.perfkit]: {shown or 'keys at their defaults'}")


def host() -> list[Check]:
    """Everything that does not depend on a target."""
    return [project_config(), pyspy(), own_memray(), gdb("memray attach on Python < 3.14 (perfkit heap --pid)"),
            memray_library(), ptrace_host(), container(), temp_dir()]


# ------------------------------------------------------------------ a target

# the target's interpreter is perfkit.procs.interpreter's; asked through this module
# (for_pid and the tests look ask_interpreter up here)


def ask_interpreter(pid: int) -> Interpreter:
    """Run the target's interpreter (not the target) with its environment and ask it."""
    return _ask(pid, PROBE_TIMEOUT)


def for_pid(pid: int, *, probe: bool = True) -> list[Check]:
    """Everything ``perfkit cpu --pid N`` and ``perfkit heap --pid N`` need, without attaching."""
    from perfkit import target as tgt

    checks: list[Check] = []
    st = proc.state(pid)
    if st is None:
        checks.append(Check("target", False, f"no such process: pid {pid}", "check the pid (ps aux | grep python)",
                            TargetError, needs=("cpu", "heap")))
        return checks
    if st in ("Z", "X"):
        checks.append(Check("target", False, f"pid {pid} has exited (zombie)", None, TargetError,
                            needs=("cpu", "heap")))
        return checks
    if proc.is_kernel_thread(pid):
        checks.append(Check("target", False, f"pid {pid} is a kernel thread", "pick a Python process's pid",
                            TargetError, needs=("cpu", "heap")))
        return checks
    if st in ("T", "t"):
        checks.append(Check("target state", False, f"pid {pid} is stopped: attaching would resume it or hang",
                            f"resume it (kill -CONT {pid}) first; perfkit threads --pid {pid} --nonblocking reads it "
                            "as it is", TargetError, needs=("cpu", "heap")))
    else:
        checks.append(Check("target state", True, f"pid {pid} is {proc.STATE_NAMES.get(st, st)}"))
    checks.append(_ptrace_target(pid))
    try:
        is_py = tgt.is_python(pid)
    except PerfkitError:
        is_py = None
    ver, ft, dbg = build_from_maps(pid)
    interp = ask_interpreter(pid)
    if interp.version is not None:
        ver = f"{interp.version[0]}.{interp.version[1]}"
        ft, dbg = interp.free_threaded, interp.debug
    if is_py is False:
        checks.append(Check("Python", False, f"pid {pid} ({proc.comm(pid)}) is not a CPython process",
                            "pick the python/gunicorn/uvicorn pid", TargetError, needs=("cpu", "heap")))
        return checks
    build = "free-threaded" if ft else ("debug" if dbg else "")
    where = f" ({interp.path}, via {interp.how})" if interp.path else ""
    if ver is None:  # advice only: the permission check above says what blocks
        checks.append(Check("Python", False, f"cannot tell which Python pid {pid} runs: {interp.error}",
                            "perfkit doctor as root (or as the target's user) can"))
    else:
        checks.append(Check("Python", True, f"CPython {ver}{' ' + build if build else ''}{where}"
                            + (f"; could not ask it ({interp.error}): from its file names" if interp.error else "")))
    checks += _versions(ver, ft, dbg)
    checks += _heap(pid, interp, ver)
    if probe and all(c.ok for c in checks if "cpu" in c.needs):
        checks.append(pyspy_probe(pid))
    return checks


def _ptrace_target(pid: int) -> Check:
    """Yama, uids and capabilities: may this perfkit attach to ``pid``?"""
    p = privileges()
    scope = p["ptrace_scope"]
    uid = _uid(pid)
    priv = p["root"] or p["cap_sys_ptrace"]
    container_hint = f"; {CONTAINER_HINT}" if in_container() else ""
    name = "ptrace (attach)"
    if scope == "3":
        return Check(name, False, "kernel.yama.ptrace_scope is 3: no process may be traced, not even by root",
                     "cannot be lowered without a reboot; perfkit leaks/triage read /proc only",
                     PermissionDenied, needs=("cpu", "heap"))
    if not os.access(f"/proc/{pid}/maps", os.R_OK) or not _can_read_maps(pid):
        if not priv:
            why = (f"pid {pid} belongs to uid {uid}, perfkit runs as uid {p['euid']}" if uid is not None
                   and uid != p["euid"] else f"this user may not read pid {pid}'s memory")
            return Check(name, False, f"permission denied: {why}",
                         "run as root (sudo perfkit …) or with CAP_SYS_PTRACE, or launch the program under perfkit: "
                         "perfkit cpu -- python app.py" + container_hint, PermissionDenied, needs=("cpu", "heap"))
        return Check(name, False, f"pid {pid}'s memory cannot be read even with privileges (ptrace_scope {scope})",
                     CONTAINER_HINT if in_container() else "check LSM policies (SELinux/AppArmor) for ptrace",
                     PermissionDenied, needs=("cpu", "heap"))
    if scope == "2" and not priv:
        return Check(name, False, "kernel.yama.ptrace_scope is 2: only processes with CAP_SYS_PTRACE may attach",
                     "run as root or with CAP_SYS_PTRACE" + container_hint, PermissionDenied, needs=("cpu", "heap"))
    if scope == "1" and not priv and not _is_descendant(pid, os.getpid()):
        return Check(name, False, f"kernel.yama.ptrace_scope is 1: only a parent may attach to pid {pid} without "
                                  "CAP_SYS_PTRACE",
                     "run as root (sudo), or grant CAP_SYS_PTRACE, or launch it under perfkit (perfkit cpu -- CMD), "
                     "or (as root) sysctl kernel.yama.ptrace_scope=0" + container_hint,
                     PermissionDenied, needs=("cpu", "heap"))
    who = "root" if p["root"] else ("CAP_SYS_PTRACE" if p["cap_sys_ptrace"] else f"uid {p['euid']} (same user)")
    return Check(name, True, f"may attach as {who} (ptrace_scope {scope if scope is not None else 'absent'})")


def _can_read_maps(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/maps", "rb") as f:
            f.read(1)
        return True
    except OSError:
        return False


def _uid(pid: int) -> int | None:
    line = proc.status_field(pid, "Uid")
    try:
        return int(line.split()[1]) if line else None  # effective uid
    except (IndexError, ValueError):
        return None


def _is_descendant(pid: int, ancestor: int) -> bool:
    seen = 0
    while pid > 1 and seen < 64:
        try:
            pid = proc.stat(pid).ppid
        except proc.Gone:
            return False
        if pid == ancestor:
            return True
        seen += 1
    return False


def _versions(ver: str | None, ft: bool, dbg: bool) -> list[Check]:
    from perfkit.tools.pyspy import find_pyspy, pyspy_version

    out: list[Check] = []
    try:
        pv = pyspy_version(find_pyspy())
    except ToolMissing:
        return out
    top = pyspy_max_python(pv)
    if ver and top:
        major, minor = (int(x) for x in ver.split(".")[:2])
        if (major, minor) > top:
            out.append(Check("py-spy supports it", False, f"py-spy {pv} reads CPython up to {top[0]}.{top[1]}, "
                                                          f"the target runs {ver}",
                             "pip install -U py-spy (0.4.2 reads 3.14)", ToolError, needs=("cpu",)))
        else:
            out.append(Check("py-spy supports it", True, f"py-spy {pv} reads CPython {ver}"))
    if ft:
        out.append(Check("free-threaded build", False, "a free-threaded (no-GIL) CPython: py-spy releases cannot "
                                                       "read its stacks yet (py-spy issue #711)",
                         "profile a default (GIL) build of the same code, or use perfkit leaks/triage (/proc only)",
                         TargetError, needs=("cpu",)))
    if dbg:
        out.append(Check("debug build", False, "a debug build of CPython: its object layout differs and py-spy may "
                                               "misread it", "profile a release build if the results look wrong"))
    return out


def _heap(pid: int, interp: Interpreter, ver: str | None) -> list[Check]:
    out = []
    if interp.error is None and interp.path:
        if interp.memray:
            from perfkit.formats.memray_capture import memray_version

            mine = memray_version()
            same = interp.memray == mine
            out.append(Check("memray in the target", same or mine == "unknown",
                             f"memray {interp.memray} importable by {interp.path}"
                             + ("" if same else f" (perfkit has {mine}: attach needs the same version)"),
                             None if same else f"{interp.path} -m pip install memray=={mine}", ToolMissing,
                             needs=() if same else ("heap",)))
        else:
            from perfkit.formats.memray_capture import memray_version
            from perfkit.tools.memray_attach import TARGET_MEMRAY_HINT

            out.append(Check("memray in the target", False,
                             f"memray is not importable by the target's interpreter {interp.path} "
                             f"({interp.memray_error})", TARGET_MEMRAY_HINT.format(version=memray_version()),
                             ToolMissing, needs=("heap",)))
    else:
        out.append(Check("memray in the target", False, f"cannot tell whether pid {pid} can import memray: "
                                                        f"{interp.error}", "perfkit heap --pid will tell"))
    try:
        major, minor = (int(x) for x in (ver or "0.0").split(".")[:2])
    except ValueError:
        major, minor = 0, 0
    if (major, minor) >= (3, 14) and sys.version_info >= (3, 14):
        out.append(Check("attach method", True, "sys.remote_exec (Python 3.14+): no gdb needed"))
    else:
        why = ("the target runs Python < 3.14" if (major, minor) < (3, 14)
               else "perfkit's own Python is < 3.14")
        g = gdb(f"memray attach: {why}")
        out.append(g if not g.ok else Check("gdb", True, f"{g.detail} (memray attach: {why})"))
    out.append(_capture_dir(pid))
    return out


def _capture_dir(pid: int) -> Check:
    """The target must see perfkit's scratch directory as the same directory (mount namespaces)."""
    base = tempfile.gettempdir()
    try:
        mine = os.stat(base)
        theirs = os.stat(f"/proc/{pid}/root{base}")
    except OSError:
        return Check("capture directory", False, f"cannot tell whether pid {pid} sees {base} (its root is "
                                                 "unreadable or has no such directory)",
                     "in a container, mount a shared directory and point TMPDIR at it")
    if (mine.st_dev, mine.st_ino) != (theirs.st_dev, theirs.st_ino):
        return Check("capture directory", False, f"pid {pid} sees a different {base} (another mount namespace: a "
                                                 "container?): memray attach could not write its capture there",
                     "set TMPDIR to a directory both see (a shared volume), or run perfkit inside the target's "
                     "container", ToolError, needs=("heap",))
    return Check("capture directory", True, f"pid {pid} writes captures to the same {base}")


def pyspy_probe(pid: int) -> Check:
    """A non-blocking ``py-spy dump`` (reads memory; the target is never stopped)."""
    from perfkit.tools import pyspy as tool

    try:
        threads = tool.dump(pid, nonblocking=True, timeout=PROBE_TIMEOUT)
    except PerfkitError as exc:
        return Check("py-spy reads it", False, exc.message, exc.hint, type(exc), needs=("cpu",))
    return Check("py-spy reads it", True, f"non-blocking dump: {len(threads)} thread{'s' if len(threads) != 1 else ''}")


__all__ = ["Check", "require", "verdict", "host", "for_pid", "pyspy", "pyspy_max_python", "own_memray",
           "memray_python_range", "gdb", "ptrace_host",
           "container", "temp_dir", "project_config", "pyspy_probe", "ask_interpreter", "interpreter_path"]
