"""The tools perfkit drives, found and versioned: py-spy, memray (in perfkit's own
environment), gdb — each a :class:`~perfkit.preflight.checks.Check` with its fix."""

from __future__ import annotations

import re
import shutil
import sys

from perfkit.errors import ToolMissing
from perfkit.preflight.checks import Check


def pyspy() -> Check:
    from perfkit.tools.pyspy import find_pyspy, pyspy_version

    try:
        exe = find_pyspy()
    except ToolMissing as exc:
        return Check("py-spy", False, exc.message, exc.hint, ToolMissing, needs=("cpu",))
    ver = pyspy_version(exe)
    top = pyspy_max_python(ver)
    return Check("py-spy", True, f"{exe} {ver}" + (f" (reads CPython up to {top[0]}.{top[1]})" if top else ""))


def pyspy_max_python(version: str) -> tuple[int, int] | None:
    """The newest CPython a py-spy release can read (its bindings): 0.4.2 added 3.14, 0.4.0 3.12-3.13."""
    v = _version_tuple(version)
    if v is None:
        return None
    if v >= (0, 4, 2):
        return (3, 14)
    if v >= (0, 4, 0):
        return (3, 13)
    return (3, 11)


def own_memray() -> Check:
    """memray importable by perfkit itself (it reads the captures)."""
    import importlib.util

    try:
        found = importlib.util.find_spec("memray") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        return Check("memray (perfkit)", False, f"memray is not installed for perfkit's interpreter ({sys.executable})",
                     f"{sys.executable} -m pip install memray", ToolMissing, needs=("heap",))
    from perfkit.formats.memray_capture import memray_version

    lo, hi = memray_python_range()
    span = f" (CPython {lo[0]}.{lo[1]}–{hi[0]}.{hi[1]})" if lo and hi else ""
    return Check("memray (perfkit)", True, f"memray {memray_version()}{span}")


def memray_python_range() -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
    """The CPython versions the installed memray release declares (Requires-Python, classifiers)."""
    try:
        import importlib.metadata as md

        meta = md.metadata("memray")
    except Exception:
        return None, None
    lo = None
    m = re.search(r">=\s*(\d+)\.(\d+)", (meta.get_all("Requires-Python") or [""])[0])
    if m:
        lo = (int(m.group(1)), int(m.group(2)))
    vers = [tuple(int(x) for x in c.rsplit("::", 1)[1].strip().split(".")) for c in meta.get_all("Classifier") or []
            if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)]
    hi = max(vers) if vers else None
    return lo, hi  # type: ignore[return-value]


def gdb(why: str = "memray attach on Python < 3.14") -> Check:
    exe = shutil.which("gdb")
    if exe is None:
        from perfkit.tools.memray_attach import GDB_HINT

        return Check("gdb", False, f"gdb not found (needed for {why})", GDB_HINT, ToolMissing, needs=("heap",))
    return _gdb_xstate(exe)


def _gdb_xstate(exe: str) -> Check:
    """gdb < 14 on x86-64 runs with perfkit's XSAVE register fix (tools.gdb_xstate): it must build."""
    import tempfile

    from perfkit.tools import gdb_xstate

    if not gdb_xstate.needs_fix(exe):
        return Check("gdb", True, exe)
    name = gdb_xstate.describe(exe)
    with tempfile.TemporaryDirectory(prefix="perfkit-doctor-") as scratch:
        try:
            lib = gdb_xstate.library(scratch)
        except (ToolMissing, OSError) as exc:
            if not gdb_xstate.cpu_has_amx():
                why = exc.message if isinstance(exc, ToolMissing) else str(exc)
                return Check("gdb", True, f"{name} ({why}; not needed on this CPU)")
            return Check("gdb", False, *gdb_xstate.refusal(exe, exc), ToolMissing, needs=("heap",))
    where = "cached" if not lib.startswith(scratch) else "builds"
    amx = "AMX CPU: needed" if gdb_xstate.cpu_has_amx() else "no AMX: passes through"
    return Check("gdb", True, f"{name}, with perfkit's XSAVE register fix ({where}; {amx})")


def _version_tuple(text: str) -> tuple[int, ...] | None:
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    if not m:
        return None
    return tuple(int(x) for x in m.groups(default="0"))
