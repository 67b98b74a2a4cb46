"""Absolute limits: ``@pytest.mark.perfkit_limit(cpu="50 ms", memory="20 MiB")``.

A limit names a measured quantity and its largest allowed value:

* ``cpu`` / ``wall``: time per call — ``500 us``, ``50 ms``, ``0.2 s`` (a bare number is
  seconds); compared with the median over the rounds of the raw (uncorrected) time;
* ``memory`` (metric ``heap_peak``): bytes — ``512 KiB``, ``20 MiB``, ``1 GiB`` are binary,
  ``20 MB`` is 20·10⁶ bytes (a bare number is bytes); compared with the largest peak heap
  of the memory rounds;
* ``allocations``: a count (``10k``); the largest count of the memory rounds.

The median for time (one slow round on a busy runner must not fail a test) and the
maximum for memory (deterministic once Python's allocators are traced: the peak the
test reached is the honest number).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from perfkit import stats

_TIME = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "sec": 1.0, "min": 60.0}
_BYTES: dict[str, float] = {"b": 1, "kb": 1000, "mb": 1000 ** 2, "gb": 1000 ** 3, "tb": 1000 ** 4,
          "kib": 1024, "mib": 1024 ** 2, "gib": 1024 ** 3, "tib": 1024 ** 4}
_COUNT: dict[str, float] = {"": 1, "k": 1e3, "m": 1e6}
_QTY = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-zµ]*)\s*$", re.I)

# marker key -> (metric, unit table, what the limit is compared with)
KEYS: dict[str, tuple[str, dict[str, float]]] = {
    "cpu": ("cpu", _TIME), "wall": ("wall", _TIME), "memory": ("heap_peak", _BYTES),
    "allocations": ("allocations", _COUNT)}
_MEMORY_METRICS = ("heap_peak", "allocations")


def parse(key: str, value: object) -> float:
    """``"50 ms"`` → 0.05 (seconds), ``"20 MiB"`` → 20971520 (bytes); ValueError with the accepted forms."""
    if key not in KEYS:
        raise ValueError(f"unknown limit {key!r} (known: {', '.join(KEYS)})")
    units = KEYS[key][1]
    if isinstance(value, bool):
        raise ValueError(f"{key}={value!r} is not a quantity")
    if isinstance(value, (int, float)):
        number, unit = float(value), ""
    elif isinstance(value, str) and (m := _QTY.match(value)):
        number, unit = float(m.group(1)), m.group(2).lower()
    else:
        raise ValueError(f"{key}={value!r} is not a quantity, e.g. {_example(key)}")
    if unit == "" and units is not _COUNT:
        scale = 1.0  # seconds or bytes
    elif unit in units:
        scale = units[unit]
    else:
        raise ValueError(f"{key}={value!r}: unknown unit {unit!r} (use one of {', '.join(u for u in units if u)})")
    if number <= 0:
        raise ValueError(f"{key}={value!r} must be positive")
    return number * scale


def _example(key: str) -> str:
    return {"cpu": '"50 ms"', "wall": '"0.2 s"', "memory": '"20 MiB"', "allocations": '"10k"'}[key]


@dataclass(frozen=True)
class Limit:
    key: str  # cpu | wall | memory | allocations
    metric: str
    limit: float
    text: str  # as the user wrote it

    def measured(self, values: list[float]) -> float:
        return max(values) if self.metric in _MEMORY_METRICS else stats.median(values)

    def how(self, n: int, calls: int) -> str:
        if self.metric in _MEMORY_METRICS:
            return f"max of {n} memory round{'s' if n != 1 else ''}"
        return f"median of {n} rounds x {calls} call{'s' if calls != 1 else ''}"


def from_kwargs(kwargs: dict) -> list[Limit]:
    """The limits of one marker's keyword arguments (ValueError on a bad one)."""
    if not kwargs:
        raise ValueError(f"perfkit_limit needs at least one of {', '.join(f'{k}=' for k in KEYS)}")
    return [Limit(k, KEYS[k][0] if k in KEYS else k, parse(k, v), str(v)) for k, v in kwargs.items()]


def violations(limits: list[Limit], values: dict[str, list[float]], calls: int) -> list[str]:
    """One line per limit the measured values exceed, naming the measured number."""
    from perfkit.gate.metrics import METRICS
    from perfkit.gate.report import fmt_value

    out = []
    for lim in limits:
        vals = values.get(lim.metric) or []
        if not vals:
            continue
        got = lim.measured(vals)
        if got > lim.limit:
            unit = METRICS[lim.metric].unit
            per = "" if lim.metric in _MEMORY_METRICS else " per call"
            what = {"heap_peak": "peak heap", "allocations": "allocations"}.get(lim.metric, lim.metric)
            out.append(f"{what} {fmt_value(got, unit)}{per} ({lim.how(len(vals), calls)}) exceeds the limit "
                       f"{lim.key}={lim.text} ({fmt_value(lim.limit, unit)})")
    return out
