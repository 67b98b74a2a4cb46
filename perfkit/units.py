"""Human-readable quantities, one definition for every renderer."""

from __future__ import annotations


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
