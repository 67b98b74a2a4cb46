"""The benchmark collector: runs a benchmark command and measures it.

Three kinds of run, each a fresh child process that perfkit launches itself (no root,
no ptrace):

* ``run_plain``  — wall time, CPU user+sys and peak RSS from the child's ``os.wait4``
  rusage (reported by the supervisor's guard, a small ``python -S`` process: a forked
  child's peak RSS starts at its parent's, and perfkit's own is tens of MiB), max
  thread count from a cheap poll of ``/proc/PID/stat``;
* ``run_memray`` — ``python -m memray run`` on the command's own interpreter; the
  capture's metadata (memray.FileReader) gives the allocation count and peak heap;
* ``run_callgrind`` — ``valgrind --tool=callgrind``; the instruction count is the sum
  of the ``totals:`` lines of every output file (children included);
* ``profile``    — one py-spy CPU profile (launch mode) to explain a regression.

Every run has a timeout; on timeout, interrupt or perfkit's death the supervisor stops
the whole process group and everything it started (the benchmark is ours, nothing else
is touched).  A failing command raises
``BenchmarkFailed`` (exit 3) with its exit status and the last line of its stderr.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass

from perfkit.errors import TargetError, ToolError, ToolMissing
from perfkit.procs import proc, supervisor

_THREAD_POLL_S = 0.01
_STDERR_KEEP = 4000


class BenchmarkFailed(TargetError):
    """The benchmark command failed, timed out or could not be started (exit 3)."""


@dataclass
class RunSpec:
    name: str
    command: list[str]
    cwd: str | None = None
    env: dict[str, str] | None = None  # added to perfkit's environment
    timeout: float = 300.0
    side: str = ""  # "base" / "head", for messages
    root: str | None = None  # compare: the side's checkout; profiled files are named relative to it

    def full_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("RUST_BACKTRACE", "RUST_LIB_BACKTRACE")}
        env.update(self.env or {})
        return env

    def describe(self) -> str:
        return f"benchmark {self.name!r}" + (f" ({self.side})" if self.side else "")


def _run(spec: RunSpec, argv: list[str], *, poll_threads: bool = False, timeout: float | None = None) -> dict:
    """Run ``argv`` under the child supervisor; rusage facts, wall time, max threads, stderr tail.

    The supervisor's guard is a small ``python -S`` process, so a benchmark's peak RSS
    does not start at perfkit's own; its ``wait4`` gives CPU time and peak RSS.
    """
    timeout = spec.timeout if timeout is None else timeout
    with tempfile.TemporaryFile() as err:
        try:
            child = supervisor.spawn(argv, cwd=spec.cwd, env=spec.full_env(), stdout=supervisor.DEVNULL, stderr=err)
        except OSError as exc:
            if spec.cwd and not os.path.isdir(spec.cwd):
                raise BenchmarkFailed(f"{spec.describe()}: working directory {spec.cwd} does not exist") from None
            raise BenchmarkFailed(f"{spec.describe()}: cannot run {argv[0]!r}: {exc.strerror}",
                                  "check the benchmark's command and PATH") from None
        threads = 0
        deadline = time.monotonic() + timeout
        with child:
            while child.wait(_THREAD_POLL_S if poll_threads else 0.1) is None:
                if time.monotonic() > deadline:
                    child.stop(((signal.SIGTERM, 2.0),), reason="timeout")
                    raise BenchmarkFailed(f"{spec.describe()} timed out after {timeout:g} s",
                                          "raise its timeout in [tool.perfkit.gate] or make the benchmark shorter")
                if poll_threads:
                    try:
                        threads = max(threads, proc.stat(child.pid).num_threads)
                    except proc.Gone:
                        pass
        outcome = child.close()
        err.seek(0)
        tail = err.read()[-_STDERR_KEEP:].decode("utf-8", "replace")
    if outcome.returncode is None:
        raise BenchmarkFailed(f"{spec.describe()}: the benchmark ended without an exit status: {last_line(tail)}")
    if poll_threads and not threads:
        threads = 1  # finished before the first poll: at least its main thread
    return {"rc": outcome.returncode, "wall": outcome.wall_s, "cpu": outcome.cpu_s, "rss": outcome.maxrss_bytes,
            "threads": threads, "stderr": tail}


def _check(spec: RunSpec, res: dict, what: str = "") -> None:
    if res["rc"] != 0:
        how = f"was killed by signal {-res['rc']}" if res["rc"] < 0 else f"exited with status {res['rc']}"
        raise BenchmarkFailed(f"{spec.describe()}{what} {how}: {last_line(res['stderr'])}",
                              "run the command by hand to see why; the gate only measures commands that succeed")


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip() and not ln.startswith("==")]
    return (lines[-1][:300] if lines else "no error output")


def run_plain(spec: RunSpec) -> dict[str, float]:
    res = _run(spec, spec.command, poll_threads=True)
    _check(spec, res)
    return {"wall": res["wall"], "cpu": res["cpu"], "rss": float(res["rss"]), "threads": float(res["threads"])}


# ------------------------------------------------------------------------ memray

_PY = re.compile(r"^(python|pypy)[0-9.]*$")


def python_split(command: list[str]) -> tuple[str, list[str]] | None:
    """(interpreter, program argv) when ``command`` runs a Python program, else None."""
    if not command or not _PY.match(os.path.basename(command[0])):
        return None
    args = command[1:]
    # interpreter flags memray run cannot take are dropped only if harmless
    while args and args[0] in ("-u", "-B", "-E", "-s", "-I", "-O", "-OO"):
        args = args[1:]
    if not args:
        return None
    return command[0], args


def run_memray(spec: RunSpec, workdir: str) -> dict[str, float]:
    split = python_split(spec.command)
    if split is None:
        raise BenchmarkFailed(f"{spec.describe()}: the allocations / heap_peak metrics need a command that starts "
                              f"with a Python interpreter (python script.py, python -m mod)",
                              "drop those metrics for this benchmark (metrics = [...]) or call python directly")
    py, prog = split
    out = os.path.join(workdir, "memray.bin")
    if os.path.exists(out):
        os.unlink(out)
    res = _run(spec, [py, "-m", "memray", "run", "--quiet", "--force", "--output", out, *prog])
    if res["rc"] != 0 and "No module named memray" in res["stderr"]:
        raise ToolMissing(f"memray is not installed for {py}", f"install it with: {py} -m pip install memray")
    _check(spec, res, " under memray")
    try:
        from memray import FileReader

        meta = FileReader(out).metadata
        return {"allocations": float(meta.total_allocations), "heap_peak": float(meta.peak_memory)}
    except (OSError, RuntimeError, ValueError) as exc:
        raise ToolError(f"{spec.describe()}: cannot read memray's capture: {exc}") from None
    finally:
        if os.path.exists(out):
            os.unlink(out)


# --------------------------------------------------------------------- callgrind

_TOTALS = re.compile(rb"^(?:totals|summary):\s*(\d+)", re.M)


def find_valgrind() -> str:
    exe = os.environ.get("PERFKIT_VALGRIND") or shutil.which("valgrind")
    if not exe:
        raise ToolMissing("valgrind not found (needed for the 'instructions' metric)",
                          "install it (apt-get install valgrind) or drop 'instructions' from the metrics")
    return exe


def run_callgrind(spec: RunSpec, workdir: str, *, slowdown: float = 100.0) -> dict[str, float]:
    exe = find_valgrind()
    pattern = os.path.join(workdir, "callgrind.out.%p")
    for f in os.listdir(workdir):
        if f.startswith("callgrind.out."):
            os.unlink(os.path.join(workdir, f))
    argv = [exe, "--tool=callgrind", f"--callgrind-out-file={pattern}", "--trace-children=yes", "--quiet",
            *spec.command]
    res = _run(spec, argv, timeout=spec.timeout * slowdown)
    _check(spec, res, " under valgrind")
    total = 0
    found = False
    for f in os.listdir(workdir):
        if f.startswith("callgrind.out."):
            path = os.path.join(workdir, f)
            with open(path, "rb") as fh:
                data = fh.read()
            os.unlink(path)
            m = _TOTALS.findall(data)
            if m:
                total += int(m[-1])
                found = True
    if not found:
        raise ToolError(f"{spec.describe()}: callgrind wrote no instruction totals")
    return {"instructions": float(total)}


# ----------------------------------------------------------------------- py-spy

@contextmanager
def _in_context(spec: RunSpec):
    """py-spy's launcher inherits perfkit's cwd and environment: lend it the benchmark's."""
    old_cwd = os.getcwd()
    old_env = dict(os.environ)
    try:
        if spec.cwd:
            os.chdir(spec.cwd)
        os.environ.update(spec.env or {})
        yield
    finally:
        os.chdir(old_cwd)
        os.environ.clear()
        os.environ.update(old_env)


MAX_PROFILE_RATE = 1000  # py-spy keeps up with this on one busy thread
RUN_SAMPLES = 150  # aim for at least this many samples per profiled run


def profile_runs(spec: RunSpec, rate: int = 500, *, min_runs: int = 8, min_samples: int = 2000,
                 max_runs: int = 16, budget_s: float = 45.0) -> list:
    """py-spy CPU profiles (``Profile`` each) of several launched runs of the benchmark.

    Several runs, because one short run gives few samples and because what a run
    spends outside the benchmark proper (imports, py-spy's attach delay) varies from
    run to run: the explanation compares shares across runs, not one run against one
    (and needs enough runs a side for that test to have power).  At least ``min_runs``
    runs, then more until ``min_samples`` samples in all, ``max_runs`` runs or
    ``budget_s`` seconds.  A run that yields fewer than ``RUN_SAMPLES`` samples (a
    benchmark of a few tenths of a second) raises the rate of the next ones, up to
    ``MAX_PROFILE_RATE``.
    """
    return profile_sides([spec], rate, min_runs=min_runs, min_samples=min_samples, max_runs=max_runs,
                         budget_s=budget_s)[0]


def profile_pairs(base: RunSpec, head: RunSpec, rate: int = 500, **limits) -> tuple[list, list]:
    """Profiles of both sides, interleaved A B B A A B …: py-spy's attach delay (how much
    of a run's start it misses) follows the machine's load, and profiling one side after
    the other would turn a change of load into a change of share."""
    base_runs, head_runs = profile_sides([base, head], rate, **limits)
    return base_runs, head_runs


def profile_sides(specs: list[RunSpec], rate: int = 500, *, min_runs: int = 8, min_samples: int = 2000,
                  max_runs: int = 16, budget_s: float = 45.0) -> list[list]:
    """Profiles of each spec's runs, the specs taking turns (order rotated every round).

    The limits apply per spec: ``min_runs`` runs each, then more until each has
    ``min_samples`` samples, ``max_runs`` runs, or ``budget_s`` seconds per spec pass.
    """
    start = time.monotonic()
    runs: list[list] = [[] for _ in specs]
    samples = [0] * len(specs)
    rates = [rate] * len(specs)
    failed: Exception | None = None
    budget = budget_s * len(specs)
    for i in range(max_runs):
        order = list(range(len(specs)))
        if i % 2:
            order.reverse()
        for k in order:
            prof, exc, interrupted = _profile_once(specs[k], rates[k])
            if exc is not None:
                failed = exc
                continue
            n = prof.total(prof.value_index("samples")) if prof is not None else 0
            if n:
                runs[k].append(prof)
                samples[k] += n
            if n < RUN_SAMPLES and rates[k] < MAX_PROFILE_RATE:
                rates[k] = int(min(MAX_PROFILE_RATE, rates[k] * RUN_SAMPLES / max(n, 10)))
            if interrupted:
                return _checked(specs, runs, failed)
        if i + 1 >= min_runs and (min(samples) >= min_samples or time.monotonic() - start > budget):
            break
    return _checked(specs, runs, failed)


def _profile_once(spec: RunSpec, rate: int):
    """(profile, None, interrupted) of one launched run, or (None, error, False) when py-spy
    lost the race with a run still starting or already done (that run gives no profile)."""
    from perfkit.errors import NotPython, TargetExited
    from perfkit.target import Target
    from perfkit.tools import pyspy

    with _in_context(spec):
        try:
            result = pyspy.record(Target(command=list(spec.command)), pyspy.RecordOptions(duration=None, rate=rate))
        except (NotPython, TargetExited) as exc:
            return None, exc, False
    profile = relative_files(result.profile, spec.root) if spec.root else result.profile
    return profile, None, result.interrupted


def relative_files(profile, root: str):
    """The profile with files under ``root`` (a compare side's checkout) named relative to
    it.  The two sides of a compare run in different checkouts (``--base-dir``):
    ``bench.py:hot`` must compare as itself, not as ``/ci/base/bench.py`` against
    ``/ci/head/bench.py`` (which made every function of the benchmark look new on the head
    side: 0 % -> 100 %)."""
    import dataclasses

    prefixes = {os.path.abspath(root).rstrip("/") + "/", os.path.realpath(root).rstrip("/") + "/"}
    frames = []
    for f in profile.frames:
        pre = next((p for p in prefixes if f.file.startswith(p)), None)
        frames.append(dataclasses.replace(f, file=f.file[len(pre):]) if pre else f)
    return dataclasses.replace(profile, frames=frames)


def _checked(specs: list[RunSpec], runs: list[list], failed: Exception | None) -> list[list]:
    for spec, got in zip(specs, runs, strict=True):
        if not got:
            if failed is not None:
                raise failed
            raise ToolError(f"{spec.describe()}: py-spy took no samples (the benchmark is too short to profile)")
    return runs
