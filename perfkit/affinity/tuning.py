"""Run a workload once under a given worker count and layout, and measure it.

The command gets the worker count through a ``{workers}`` placeholder in its
arguments and the environment variable (``PERFKIT_WORKERS`` by default).  Layouts:

* ``unpinned``: the command runs as is;
* ``spread`` / ``compact``: every process the command starts (its descendants; the
  top process is the master and stays unpinned) is pinned, as soon as it appears,
  to the next CPU of the plan's order — the i-th worker gets ``order[i % len]``.

Measurement: the last ``throughput=<float>`` line on the command's stdout, or the
wall time of the run when it prints none.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable

from perfkit.errors import TargetError
from perfkit.procs import proc, supervisor
from perfkit.procs.signals import sigterm_as_interrupt

_THROUGHPUT = re.compile(r"(?:^|\s)throughput\s*[=:]\s*([-+0-9.eE]+)")


@dataclass
class RunResult:
    workers: int
    layout: str
    ok: bool
    throughput: float | None
    wall_s: float
    pinned: int  # worker processes pinned during the run
    error: str = ""


def substitute(command: list[str], workers: int) -> list[str]:
    return [a.replace("{workers}", str(workers)) for a in command]


def parse_throughput(stdout: str) -> float | None:
    found = None
    for line in stdout.splitlines():
        m = _THROUGHPUT.search(line)
        if m:
            try:
                found = float(m.group(1))
            except ValueError:
                pass
    return found


def _is_helper(pid: int) -> bool:
    cmd = " ".join(proc.cmdline(pid))
    return "multiprocessing.resource_tracker" in cmd or "multiprocessing.forkserver" in cmd


def run_once(command: list[str], workers: int, layout: str, order: list[int], *, env_var: str = "PERFKIT_WORKERS",
             timeout: float = 300.0) -> RunResult:
    from perfkit.affinity.workers import _set_all_threads

    argv = substitute(command, workers)
    env = dict(os.environ)
    env[env_var] = str(workers)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        try:
            child = supervisor.spawn(argv, stdout=out, stderr=err, env=env)
        except OSError as exc:
            raise TargetError(f"cannot run {argv[0]!r}: {exc.strerror}", "check the command after --") from None
        pinned: set[int] = set()
        skipped: set[int] = set()
        with child:  # stopped and swept on any exit: Ctrl-C, SIGTERM, an exception
            while child.wait(0.01) is None:
                if time.monotonic() - start > timeout:
                    child.stop(reason="timeout")
                    return RunResult(workers, layout, False, None, time.monotonic() - start, len(pinned),
                                     f"timed out after {timeout:g} s")
                if layout != "unpinned" and order:
                    for kid in proc.child_pids(child.pid):
                        if kid in pinned or kid in skipped:
                            continue
                        if _is_helper(kid):  # multiprocessing's resource tracker / forkserver
                            skipped.add(kid)
                            continue
                        try:
                            _set_all_threads(kid, {order[len(pinned) % len(order)]})
                            pinned.add(kid)
                        except (ProcessLookupError, PermissionError, OSError):
                            skipped.add(kid)
        outcome = child.close()
        wall = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    if outcome.returncode != 0:
        last = [ln for ln in stderr.strip().splitlines() if ln.strip()][-1:] or ["no stderr"]
        return RunResult(workers, layout, False, None, wall, len(pinned),
                         f"exit {outcome.returncode}: {last[0][:200]}")
    return RunResult(workers, layout, True, parse_throughput(stdout), wall, len(pinned))


@dataclass
class Matrix:
    """Measured runs per candidate name ("2 workers, spread"), after warm-up."""
    results: dict[str, list[RunResult]]
    failures: list[str] = field(default_factory=list)
    interrupted: bool = False


def candidate_name(workers: int, layout: str) -> str:
    return f"{workers} workers, {layout}"


def run_matrix(command: list[str], counts: list[int], layouts: list[str], orders: dict[str, list[int]], *,
               repeat: int, warmup: int, env_var: str = "PERFKIT_WORKERS", timeout: float = 300.0,
               on_progress: Callable[[int, str], None] | None = None) -> Matrix:
    """Every (count, layout) ``warmup + repeat`` times, interleaved: each round runs all
    candidates, in an order rotated by one each round so drift hits all alike.
    Ctrl-C stops early and keeps what was measured (``interrupted``)."""
    cands = [(n, lay) for n in counts for lay in layouts]
    m = Matrix({candidate_name(n, lay): [] for n, lay in cands})
    try:
        with sigterm_as_interrupt():  # SIGTERM stops like Ctrl-C: the workload is killed, never orphaned
            _run_rounds(m, cands, command, orders, warmup, repeat, env_var, timeout, on_progress)
    except KeyboardInterrupt:
        m.interrupted = True
    return m


def _run_rounds(m, cands, command, orders, warmup, repeat, env_var, timeout, on_progress) -> None:
    for r in range(warmup + repeat):
        k = r % len(cands)
        for n, lay in cands[k:] + cands[:k]:
            name = candidate_name(n, lay)
            if on_progress:
                on_progress(r + 1, name)
            res = run_once(command, n, lay, orders.get(lay, []), env_var=env_var, timeout=timeout)
            if not res.ok:
                m.failures.append(f"{name}: {res.error}")
            elif r >= warmup:
                m.results[name].append(res)
