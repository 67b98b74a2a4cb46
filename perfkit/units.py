"""Human-readable quantities: the one value formatter and sparkline for every renderer."""

from __future__ import annotations

import math

BARS = "▁▂▃▄▅▆▇█"


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def human_bytes(n: float | int | None) -> str:
    """``1536`` → ``"1.5 KiB"``; negative sizes keep their sign; ``None`` → ``"?"``."""
    if n is None:
        return "?"
    sign = "-" if n < 0 else ""
    n = abs(float(n))
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{sign}{n:.0f} {unit}" if unit == "B" else f"{sign}{n:.1f} {unit}"
        n /= 1024
    return f"{sign}{n:.1f} TiB"


def human_seconds(s: float | None, digits: int = 2) -> str:
    """Short spans: ``"1.23 s"``, ``"45.0 ms"``, ``"12 µs"``."""
    if _missing(s):
        return "-"
    assert s is not None
    a = abs(float(s))
    if a >= 1 or a == 0:
        return f"{s:,.{digits}f} s"
    if a >= 1e-3:
        return f"{s * 1e3:,.1f} ms"
    return f"{s * 1e6:,.0f} µs"


def human_duration(s: float | None) -> str:
    """Long spans: ``"90 s"``, ``"12 min"``, ``"3.5 h"``, ``"2.1 days"``."""
    if _missing(s):
        return "-"
    assert s is not None
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


def fmt_value(v: float | None, unit: str, *, digits: int = 2) -> str:
    """A value in a profile's or metric's unit (nanoseconds, seconds, bytes, count)."""
    if _missing(v):
        return "-"
    if unit == "nanoseconds":
        return human_seconds(v / 1e9, digits)  # type: ignore[operator]
    if unit == "seconds":
        return human_seconds(v, digits)
    if unit == "bytes":
        return human_bytes(v)
    if isinstance(v, float) and not v.is_integer() and abs(v) < 10:
        return f"{v:.2f}"
    return f"{v:,.0f}"


def fmt_rate(v: float | None, unit: str) -> str:
    """A rate per second: ``"2.0 MiB/s"``, ``"5/s"``; ±∞ and missing shown as such."""
    if v is None:
        return "-"
    if not math.isfinite(v):
        return "∞" if v > 0 else "-∞"
    if unit == "bytes":
        return f"{human_bytes(v)}/s"
    if unit in ("nanoseconds", "seconds"):  # time per second of recording: cores busy
        s = v / 1e9 if unit == "nanoseconds" else v
        return "0 s/s" if s == 0 else f"{s:.3g} s/s"
    return f"{v:.3g}/s"


def sparkline(values, width: int | None = None) -> str:
    """A one-line chart of numbers (or ``[t, v]`` points): bucket maxima, scaled min → max."""
    vals = [p[1] if isinstance(p, (list, tuple)) else p for p in values]
    if not vals:
        return ""
    n = min(width or len(vals), len(vals))
    buckets = []
    for i in range(n):
        lo, hi = i * len(vals) // n, max((i + 1) * len(vals) // n, i * len(vals) // n + 1)
        buckets.append(max(vals[lo:hi]))
    low, high = min(buckets), max(buckets)
    if high <= low:
        return BARS[0] * n
    return "".join(BARS[int((v - low) / (high - low) * (len(BARS) - 1) + 0.5)] for v in buckets)
