"""Preconditions, checked before anything is measured: every tool and permission the
chosen metrics and options need, each with its fix.

The gate used to find out late: 82 s of benchmarks ran before it said memray was
missing.  Now ``for_gate`` lists what a run will need — the benchmark's command and
working directory, memray in the benchmark's own interpreter (``allocations``,
``heap_peak``), valgrind (``instructions``), py-spy and ptrace rights (the CPU
explanation), writable output and scratch directories — and ``require`` fails at once
with the documented exit code (2 usage/output, 3 benchmark command, 4 tool) and how to
fix it.

The first half of this module holds generic checks that know nothing of the gate
(``python_module``, ``command``, ``valgrind``, ``pyspy``, ``ptrace``, ``writable_file``,
``writable_dir``, ``temp_dir``), each returning a :class:`Check`: a ``perfkit doctor``
can list them as they are.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from perfkit.errors import OutputError, PerfkitError, ToolMissing, UsageError
from perfkit.preflight import Check, require  # noqa: F401  (re-exported: gate code says preflight.require)

CAP_SYS_PTRACE = 19
_PROBE_TIMEOUT = 30.0


# One Check type for every precondition perfkit checks (doctor's, the gate's).
# ``require(checks)`` raises the first failed one, naming the others.


# ---------------------------------------------------------------- generic checks

def resolve(program: str, *, env: dict | None = None, cwd: str | None = None) -> str | None:
    """The executable ``program`` names, as a child started with ``env`` in ``cwd`` would find it."""
    if os.sep in program:
        path = program if os.path.isabs(program) else os.path.join(cwd or os.getcwd(), program)
        return path if os.path.isfile(path) and os.access(path, os.X_OK) else None
    search = (env or os.environ).get("PATH", os.defpath)
    return shutil.which(program, path=search)


def command(argv: list[str], *, what: str, env: dict | None = None, cwd: str | None = None,
            error: type[PerfkitError] = UsageError) -> Check:
    """The command's program exists and is executable, and its working directory exists."""
    name = f"{what}: command"
    if cwd and not os.path.isdir(cwd):
        return Check(name, False, f"{what}: working directory {cwd} does not exist",
                     "fix the benchmark's cwd (relative to the config file)", error)
    if not argv:
        return Check(name, False, f"{what}: empty command", None, UsageError)
    if resolve(argv[0], env=env, cwd=cwd) is None:
        return Check(name, False, f"{what}: cannot run {argv[0]!r}: command not found",
                     "check the benchmark's command and PATH", error)
    return Check(name, True, f"{argv[0]} found")


def python_module(python: str, module: str, *, why: str, env: dict | None = None, cwd: str | None = None) -> Check:
    """``module`` is importable by the interpreter ``python`` (started with ``env`` in ``cwd``)."""
    from perfkit.procs import supervisor

    name = f"{module} importable by {python}"
    probe = f"import importlib.util, sys; sys.exit(0 if importlib.util.find_spec({module!r}) else 3)"
    try:
        res = supervisor.run([python, "-c", probe], timeout=_PROBE_TIMEOUT, env=env, cwd=cwd)
    except OSError as exc:
        return Check(name, False, f"cannot start {python!r} to look for {module}: {exc.strerror or exc}",
                     "check the benchmark's interpreter", ToolMissing)
    if res.stopped_by == "timeout":  # a wedged interpreter: let the real run report it
        return Check(name, True, f"{python} did not answer in {_PROBE_TIMEOUT:g} s; not checked")
    if res.returncode == 3:
        return Check(name, False, f"{module} is not installed for {python} (needed for {why})",
                     f"install it with: {python} -m pip install {module}   (or drop {why})", ToolMissing)
    if res.returncode != 0:
        tail = (res.stderr_tail or "").strip().splitlines()
        return Check(name, False, f"{python} failed while looking for {module}: "
                                  f"{tail[-1] if tail else f'exit status {res.returncode}'}",
                     "run the interpreter by hand to see why", ToolMissing)
    return Check(name, True, f"{module} found by {python}")


def own_module(module: str, *, why: str) -> Check:
    """``module`` is importable by perfkit's own interpreter (it reads the tool's files)."""
    import importlib.util
    import sys

    name = f"{module} importable by perfkit"
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        return Check(name, False, f"{module} is not installed for perfkit's interpreter ({sys.executable}), "
                                  f"needed for {why}", f"install it: {sys.executable} -m pip install {module}")
    return Check(name, True, f"{module} found")


def valgrind(why: str = "the 'instructions' metric") -> Check:
    exe = os.environ.get("PERFKIT_VALGRIND") or shutil.which("valgrind")
    if not exe or not os.access(exe, os.X_OK):
        return Check("valgrind", False, f"valgrind not found (needed for {why})",
                     "install it (apt-get install valgrind) or drop 'instructions' from the metrics")
    return Check("valgrind", True, exe)


def pyspy(why: str = "explaining a CPU regression") -> Check:
    from perfkit.tools.pyspy import find_pyspy

    try:
        exe = find_pyspy()
    except ToolMissing as exc:
        return Check("py-spy", False, f"{exc.message} (needed for {why})",
                     f"{exc.hint}; or pass --no-profile")
    return Check("py-spy", True, exe)


def ptrace(why: str = "explaining a CPU regression") -> Check:
    """Whether a sampler may read a process perfkit launched (Yama ``ptrace_scope``)."""
    from perfkit.procs import proc

    scope = proc.sysctl("kernel.yama.ptrace_scope")
    if scope == "3":
        return Check("ptrace", False, f"kernel.yama.ptrace_scope is 3: no process may be sampled (needed for {why})",
                     "pass --no-profile (the setting cannot be lowered without a reboot)")
    if scope == "2" and not proc.has_capability(CAP_SYS_PTRACE):
        return Check("ptrace", False, f"kernel.yama.ptrace_scope is 2 and perfkit lacks CAP_SYS_PTRACE "
                                      f"(needed for {why})",
                     "run as root / add CAP_SYS_PTRACE (docker --cap-add SYS_PTRACE), or pass --no-profile")
    return Check("ptrace", True, f"ptrace_scope {scope or 'absent'}")


def writable_file(path: str | os.PathLike, *, create_parents: bool = False) -> Check:
    """``path`` can be written (an existing file, or a new one in a writable directory).

    With ``create_parents`` a missing directory is fine when its nearest existing
    ancestor is writable (perfkit creates it).
    """
    from perfkit.fileio import check_writable

    p = Path(path)
    if create_parents and not p.parent.exists():
        return writable_dir(p.parent)
    try:
        check_writable(p)
    except OutputError as exc:
        return Check(f"write {p}", False, exc.message, exc.hint, OutputError)
    return Check(f"write {p}", True, str(p))


def writable_dir(path: str | os.PathLike) -> Check:
    """Files can be created in directory ``path`` (or it can be created)."""
    p = Path(path)
    name = f"write into {p}"
    if p.exists():
        if not p.is_dir():
            return Check(name, False, f"cannot write into {p}: it is not a directory", "choose a directory",
                         OutputError)
        if not os.access(p, os.W_OK | os.X_OK):
            return Check(name, False, f"cannot write into {p}: permission denied", "choose a writable directory",
                         OutputError)
        return Check(name, True, str(p))
    ancestor = p.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        return Check(name, False, f"cannot create directory {p}: {ancestor} is not writable",
                     "choose a writable directory", OutputError)
    return Check(name, True, f"{p} (created when needed)")


def temp_dir(why: str) -> Check:
    """The scratch directory tool captures go to accepts a new directory."""
    base = tempfile.gettempdir()
    try:
        d = tempfile.mkdtemp(prefix="perfkit-preflight-")
        os.rmdir(d)
    except OSError as exc:
        return Check("temporary directory", False, f"cannot create a scratch directory in {base} "
                                                   f"({exc.strerror or exc}), needed for {why}",
                     "set TMPDIR to a writable directory", OutputError)
    return Check("temporary directory", True, base)


# ------------------------------------------------------------------------- the gate

def for_gate(cfg, runs: list, *, diff_dir: str | os.PathLike | None = None) -> list[Check]:
    """Every precondition of measuring ``runs``: (``bench.RunSpec``, metric names) pairs.

    Each distinct interpreter is probed once; tools only when a selected metric or
    option (``cfg.profile``: py-spy explains CPU regressions) needs them.
    """
    from perfkit.gate import bench
    from perfkit.gate.metrics import METRICS, TIME_METRICS

    checks: list[Check] = []
    kinds: set[str] = set()
    probed: set[tuple] = set()
    explain = False
    for spec, metrics in runs:
        env = spec.full_env()
        checks.append(command(spec.command, what=spec.describe(), env=env, cwd=spec.cwd,
                              error=bench.BenchmarkFailed))
        used = {METRICS[m].run for m in metrics}
        kinds |= used
        explain = explain or (cfg.profile and any(m in TIME_METRICS + ("instructions",) for m in metrics))
        memray_metrics = sorted(m for m in metrics if METRICS[m].run == "memray")
        if memray_metrics:
            split = bench.python_split(spec.command)
            if split is None:
                checks.append(Check(f"{spec.describe()}: python command", False,
                                    f"{spec.describe()}: {', '.join(memray_metrics)} need a command that starts "
                                    f"with a Python interpreter (python script.py, python -m module), "
                                    f"not {spec.command[0]!r}",
                                    "call python directly in the command, or drop those metrics for this "
                                    "benchmark", UsageError))
                continue
            py = resolve(split[0], env=env, cwd=spec.cwd)
            if py is not None and (py, spec.cwd, env.get("PYTHONPATH")) not in probed:
                probed.add((py, spec.cwd, env.get("PYTHONPATH")))
                checks.append(python_module(py, "memray", why=" / ".join(memray_metrics), env=env,
                                            cwd=spec.cwd))
    if "memray" in kinds:
        checks.append(own_module("memray", why="reading memray's captures"))
    if "callgrind" in kinds:
        checks.append(valgrind())
    if kinds & {"memray", "callgrind"}:
        checks.append(temp_dir("memray / callgrind captures"))
    if explain:
        checks += [pyspy(), ptrace()]
    if diff_dir is not None:
        checks.append(writable_dir(diff_dir))
    return checks

