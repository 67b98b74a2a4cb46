"""Where a frame's code lives, and how its path is shown: one style everywhere.

Every frame's file is one of:

* ``user``   — your own code: anything that is not one of the others (a script under
  the working directory, an application under /srv, ``<string>`` from ``python -c``);
* ``stdlib`` — the standard library (``…/lib/pythonX.Y/…`` outside site-packages, and
  frozen modules such as ``<frozen importlib._bootstrap>``);
* ``site``   — an installed third-party package (``site-packages`` / ``dist-packages``);
* ``tool``   — perfkit, py-spy or memray themselves;
* ``native`` — no Python source (C/C++/Rust frames, shared libraries, unknown files).

Which code counts as yours is adjustable: ``--user-code PATTERN`` (repeatable) and
``user_code = ["PATTERN", …]`` under ``[tool.perfkit]`` (read by ``perfkit.config``).
A pattern is a shell glob matched against the absolute path, the path relative to the
working directory and the package-relative path (``pkg/module.py``); ``mypkg/*`` makes
an installed package yours, ``!vendor/*`` makes files that would be yours a library.

Display (terminal, markdown, HTML; ``--json`` keeps full paths):

* user code relative to the working directory (``app/handlers.py``), absolute outside it;
* site-packages as ``pkg/module.py``;
* the standard library with a marker: ``<stdlib>/json/encoder.py``.
"""

from __future__ import annotations

import fnmatch
import os
import re
from functools import lru_cache

USER, STDLIB, SITE, TOOL, NATIVE = "user", "stdlib", "site", "tool", "native"
KINDS = (USER, STDLIB, SITE, TOOL, NATIVE)
STDLIB_MARK = "<stdlib>"

_STDLIB = re.compile(r"/lib/python\d(?:\.\d+)?t?/(.*)$")
_SITE_MARKERS = ("/site-packages/", "/dist-packages/")
_NATIVE_SUFFIXES = (".so", ".c", ".cc", ".cpp", ".cxx", ".h", ".hpp", ".rs", ".S", ".pyx", ".pxd")
_TOOL_PACKAGES = ("memray/", "py_spy/", "perfkit/")
_PERFKIT_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep

_state: dict = {"patterns": None, "cwd": None}


# ----------------------------------------------------------------------- config
# The patterns come from the command line and [tool.perfkit] user_code; perfkit.config
# is the one reader of pyproject.toml, and the CLI hands its value here (configure).

def configure(patterns: list[str] | None = None, *, cwd: str | None = None) -> None:
    """Set the user-code patterns (the project's ``user_code``, then the flag's) and,
    for tests, the working directory paths are shown relative to."""
    _state["cwd"] = cwd
    _state["patterns"] = list(patterns or [])
    classify.cache_clear()
    display.cache_clear()


def patterns() -> list[str]:
    return list(_state["patterns"] or [])


def _cwd() -> str:
    if _state["cwd"]:
        return _state["cwd"]
    try:
        return os.getcwd()
    except OSError:
        return ""


# ----------------------------------------------------------------------- classify

def _package_path(path: str) -> str | None:
    for marker in _SITE_MARKERS:
        if marker in path:
            return path.rsplit(marker, 1)[1]
    return None


def _relative(path: str) -> str | None:
    cwd = _cwd()
    if cwd and path.startswith(cwd.rstrip(os.sep) + os.sep):
        return path[len(cwd.rstrip(os.sep)) + 1:]
    return None


def _matches(path: str, pattern: str) -> bool:
    forms = [path]
    for f in (_relative(path), _package_path(path)):
        if f:
            forms.append(f)
    m = _STDLIB.search(path)
    if m:
        forms.append(m.group(1))
    return any(fnmatch.fnmatchcase(f, pattern) for f in forms)


def _builtin_kind(path: str, function: str = "") -> str:
    if not path or function.startswith("0x"):
        return NATIVE
    if path.startswith("<frozen"):
        return STDLIB
    if path.startswith("<"):
        return USER  # <string>, <stdin>: code the user typed or exec'd
    if path.startswith(_PERFKIT_DIR):
        return TOOL
    pkg = _package_path(path)
    if pkg is not None:
        return TOOL if pkg.startswith(_TOOL_PACKAGES) else SITE
    if path.endswith(_NATIVE_SUFFIXES) or ".so." in path:
        return NATIVE
    if _STDLIB.search(path):
        return STDLIB
    if "/" not in path and not path.endswith(".py"):
        return NATIVE  # a bare library name from a native unwinder
    return USER


@lru_cache(maxsize=65536)
def classify(path: str, function: str = "") -> str:
    """``user`` / ``stdlib`` / ``site`` / ``tool`` / ``native`` for a frame's file."""
    kind = _builtin_kind(path, function)
    if kind in (NATIVE, TOOL):
        return kind
    for pat in patterns():
        neg = pat.startswith("!")
        if _matches(path, pat[1:] if neg else pat):
            return (SITE if kind == USER else kind) if neg else USER
    return kind


def is_user(path: str, function: str = "") -> bool:
    return classify(path, function) == USER


# ----------------------------------------------------------------------- display

@lru_cache(maxsize=65536)
def display(path: str) -> str:
    """The one display style: cwd-relative user code, ``pkg/mod.py``, ``<stdlib>/mod.py``."""
    if not path:
        return ""
    if path.startswith("<"):
        return path
    pkg = _package_path(path)
    if pkg is not None:
        return pkg
    m = _STDLIB.search(path)
    if m:
        return f"{STDLIB_MARK}/{m.group(1)}"
    rel = _relative(path)
    if rel is not None:
        return rel
    home = os.path.expanduser("~")
    if home not in ("", "/") and path.startswith(home.rstrip(os.sep) + os.sep):
        return "~" + path[len(home.rstrip(os.sep)):]
    return path


def location(path: str, line: int | None = 0) -> str:
    """``display(path):line`` (no line when unknown)."""
    shown = display(path)
    if not shown:
        return ""
    return f"{shown}:{line}" if line else shown


def frame_text(function: str, path: str, line: int | None = 0) -> str:
    """``function display(path):line`` — how a frame is named in every table."""
    where = location(path, line)
    return f"{function} {where}" if where else function


def short_path(path: str) -> str:
    """Kept for older callers: the same as :func:`display`."""
    return display(path)


_IMPORT_FUNCS = frozenset({"_call_with_frames_removed", "_find_and_load", "_find_and_load_unlocked",
                           "_load_unlocked", "exec_module", "_handle_fromlist", "_gcd_import", "load_module"})


def is_import_machinery(path: str, function: str = "") -> bool:
    """A frame of the import system: module code running because something was imported."""
    if path.startswith("<frozen importlib._bootstrap") or path.startswith("<frozen zipimport"):
        return True
    if path.endswith(("/importlib/_bootstrap.py", "/importlib/_bootstrap_external.py", "/zipimport.py")):
        return True
    return function in _IMPORT_FUNCS and classify(path, function) == STDLIB
