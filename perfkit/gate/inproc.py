"""Measuring one callable (a test's body) in the running process, round by round.

The pytest plugin's runner: it plays the part ``bench.run_plain`` / ``bench.run_memray``
play for a benchmark command, and feeds the same adaptive loop (``runner.adaptive``).

* ``plain`` rounds: CPU time (user + system of the whole process, ``time.process_time``,
  plus the CPU of child processes reaped during the round, ``RUSAGE_CHILDREN``) and
  wall time per call.  A round repeats the call ``calls`` times so that it lasts at
  least ``min_round_s`` of CPU (a 20 µs test measured one call at a time is mostly
  clock and interrupt noise); the value is the round's total divided by ``calls``.
* **speed correction**: on a shared VM the same work costs a different CPU time from
  minute to minute — hypervisor steal and frequency changes are charged to the guest
  process as CPU time (measured here: one test's CPU per call went from 1.6 ms to
  2.4 ms between two runs a few seconds apart while the machine was busy).  So a fixed
  reference workload (:func:`reference`, ~1 ms of mixed pure-Python work) runs before
  and after every plain round, and ``cpu`` / ``wall`` are reported at the reference
  speed ``ref_s``: value x ``ref_s`` / (mean of the two neighbouring reference times).
  What slows both alike cancels (in the same measurement the corrected value moved by
  3 %); what hits the test's work differently from the reference's does not.  The raw
  numbers are kept as ``cpu_raw`` / ``wall_raw`` (limits compare those).
* ``memray`` rounds: one call under ``memray.Tracker`` with Python's allocators traced,
  so the peak is the largest number of bytes the call held at once — small objects
  included, independent of which pymalloc arenas earlier tests left free — plus
  native (C extension, NumPy) allocations; and the exact number of allocations.
  ``gc.collect()`` runs first, so no earlier test's garbage is freed (or counted)
  inside the round.

A call that raises in a later round (a test that is not repeatable with the same
fixture values) raises :class:`NotRepeatable`; the caller decides what that means.
"""

from __future__ import annotations

import gc
import math
import os
import resource
import time
from typing import Callable

MIN_ROUND_S = 0.002  # CPU seconds a plain round lasts at least
MAX_CALLS = 1000  # calls per plain round at most


REFERENCE_S = 0.001  # CPU seconds one reference run is sized to


def reference(n: int) -> int:
    """Fixed pure-Python work: integer arithmetic, calls, dict / list / str operations."""
    acc = 0
    d: dict = {}
    items: list = []
    for i in range(n):
        acc = (acc * 31 + i) & 0xFFFF
        d[i & 63] = d.get(i & 63, 0) + acc
        items.append(str(acc))
        if len(items) > 32:
            acc ^= len("".join(items))
            items.clear()
    return acc + len(d)


def reference_size(target_s: float = REFERENCE_S) -> int:
    """Iterations of :func:`reference` that take about ``target_s`` of CPU on this machine now."""
    n = 200
    while True:
        t0 = cpu_seconds()
        reference(n)
        dt = cpu_seconds() - t0
        if dt >= target_s / 4 or n > 10_000_000:
            return max(100, int(n * target_s / max(dt, 1e-9)))
        n *= 4


class NotRepeatable(Exception):
    """The callable failed on a repeat: ``round`` says which, ``exc`` what it raised."""

    def __init__(self, round_no: int, exc: BaseException) -> None:
        super().__init__(f"round {round_no} raised {type(exc).__name__}: {exc}")
        self.round = round_no
        self.exc = exc


def cpu_seconds() -> float:
    """CPU time of this process (every thread) and of the children it has reaped."""
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ch.ru_utime + ch.ru_stime


class Measurer:
    """Runs ``call`` in rounds; ``run(kind)`` returns that round's metric values."""

    def __init__(self, call: Callable[[], object], *, scratch: str, ref_n: int, ref_s: float,
                 min_round_s: float = MIN_ROUND_S, max_calls: int = MAX_CALLS) -> None:
        """``ref_n`` iterations of :func:`reference` take ``ref_s`` CPU seconds at the speed values are given in."""
        self.call = call
        self.ref_n = ref_n
        self.ref_s = ref_s
        self._ref_before: tuple[float, float] | None = None
        self.scratch = scratch
        self.min_round_s = min_round_s
        self.max_calls = max_calls
        self.calls = 1  # per plain round, set by calibrate()
        self.rounds = 0
        self.history: list[tuple[str, dict[str, float]]] = []  # (kind, values) of every measured round

    def _call(self) -> None:
        try:
            self.call()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # pytest's skip/fail/xfail outcomes are BaseExceptions
            raise NotRepeatable(self.rounds + 1, exc) from exc

    def calibrate(self) -> int:
        """One warm call, timed: how many calls make a plain round of ``min_round_s``."""
        gc.collect()  # earlier tests' garbage is not collected (and charged) inside this test's rounds
        t0 = cpu_seconds()
        self._call()
        dt = cpu_seconds() - t0
        self.rounds += 1
        self.calls = max(1, min(self.max_calls, math.ceil(self.min_round_s / max(dt, 1e-7))))
        return self.calls

    def run(self, kind: str) -> dict[str, float]:
        if kind == "plain":
            values = self._plain()
        elif kind == "memray":
            values = self._memray()
        else:
            raise ValueError(f"a test cannot be measured with {kind} runs")
        self.rounds += 1
        self.history.append((kind, values))
        return values

    def kinds_run(self) -> set[str]:
        return {kind for kind, _ in self.history}

    def raw_values(self) -> dict[str, list[float]]:
        """Every round's uncorrected numbers: cpu / wall per call, heap_peak, allocations."""
        out: dict[str, list[float]] = {}
        for _, values in self.history:
            for k, v in values.items():
                if k in ("cpu", "wall"):
                    continue
                out.setdefault(k[:-4] if k.endswith("_raw") else k, []).append(v)
        out.pop("reference", None)
        return out

    def _reference(self) -> tuple[float, float]:
        w0, c0 = time.perf_counter(), cpu_seconds()
        reference(self.ref_n)
        c1, w1 = cpu_seconds(), time.perf_counter()
        return max(c1 - c0, 1e-9), max(w1 - w0, 1e-9)

    def _plain(self) -> dict[str, float]:
        n = self.calls
        if not self.ref_n:  # no speed correction asked for (limits alone compare raw numbers)
            w0, c0 = time.perf_counter(), cpu_seconds()
            for _ in range(n):
                self._call()
            cpu, wall = (cpu_seconds() - c0) / n, (time.perf_counter() - w0) / n
            return {"cpu": cpu, "wall": wall, "cpu_raw": cpu, "wall_raw": wall}
        before = self._ref_before or self._reference()
        w0, c0 = time.perf_counter(), cpu_seconds()
        for _ in range(n):
            self._call()
        c1, w1 = cpu_seconds(), time.perf_counter()
        after = self._reference()
        self._ref_before = after
        cpu, wall = (c1 - c0) / n, (w1 - w0) / n
        ref_cpu, ref_wall = (before[0] + after[0]) / 2, (before[1] + after[1]) / 2
        return {"cpu": cpu * self.ref_s / ref_cpu, "wall": wall * self.ref_s / ref_wall,
                "cpu_raw": cpu, "wall_raw": wall, "reference": ref_cpu}

    def _memray(self) -> dict[str, float]:
        import memray

        path = os.path.join(self.scratch, f"round-{self.rounds}.bin")
        self._ref_before = None  # the next plain round measures its own reference first
        gc.collect()
        try:
            with memray.Tracker(path, native_traces=False, trace_python_allocators=True, follow_fork=False,
                                file_format=memray.FileFormat.ALL_ALLOCATIONS):
                self._call()
            meta = memray.FileReader(path).metadata
            return {"heap_peak": float(meta.peak_memory), "allocations": float(meta.total_allocations)}
        finally:
            if os.path.exists(path):
                os.unlink(path)
