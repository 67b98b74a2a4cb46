"""Explaining a CPU regression: which functions' share of the CPU profile grew.

Uses the differential-profile analysis (``perfkit.analysis.diff``) when it is there;
otherwise ranks functions by the growth of their self share (``analysis.top``) in the
two profiles.  Both profiles are normalised to sample counts through the collapsed
format first, so a stored baseline profile and a fresh py-spy profile compare alike.
"""

from __future__ import annotations

from perfkit.model import Profile


def to_collapsed(profile: Profile) -> str:
    from perfkit.formats import collapsed

    return collapsed.write(profile).decode("utf-8")


def from_collapsed(text: str) -> Profile:
    from perfkit.formats import collapsed

    return collapsed.read(text.encode("utf-8"), "baseline profile")


def _row(function: str, file: str, line: int, base_pct: float, new_pct: float) -> dict:
    return {"function": function, "file": file, "line": int(line or 0), "base_pct": round(base_pct, 3),
            "new_pct": round(new_pct, 3), "delta_pp": round(new_pct - base_pct, 3)}


def _via_diff(base: Profile, head: Profile, limit: int) -> list[dict] | None:
    try:
        from perfkit.analysis.diff import diff
    except ImportError:
        return None
    try:
        res = diff(base, head)
        rows = []
        for r in getattr(res, "rows", res):
            delta = float(getattr(r, "delta_pp"))
            if delta > 0:
                rows.append(_row(r.function, getattr(r, "file", ""), getattr(r, "line", 0),
                                 float(r.base_pct), float(r.new_pct)))
        rows.sort(key=lambda d: -d["delta_pp"])
        return rows[:limit]
    except Exception:  # the diff module is young; the fallback below always works
        return None


def _via_top(base: Profile, head: Profile, limit: int) -> list[dict]:
    from perfkit.analysis.top import top

    def shares(p: Profile) -> dict[tuple[str, str], tuple[float, int]]:
        return {(r.function, r.file): (r.self_pct, r.line) for r in top(p)}

    b, h = shares(base), shares(head)
    rows = []
    for key in set(b) | set(h):
        bp, bl = b.get(key, (0.0, 0))
        hp, hl = h.get(key, (0.0, 0))
        if hp > bp:
            rows.append(_row(key[0], key[1], hl or bl, bp, hp))
    rows.sort(key=lambda d: (-d["delta_pp"], d["function"]))
    return rows[:limit]


def explain(base: Profile, head: Profile, limit: int = 5) -> dict:
    """{"method": ..., "grew": [rows]} — functions whose self CPU share grew most."""
    rows = _via_diff(base, head, limit)
    method = "perfkit.analysis.diff"
    if rows is None:
        rows, method = _via_top(base, head, limit), "self-share growth (analysis.top)"
    return {"method": method, "grew": rows,
            "base_samples": base.total(base.value_index("samples")) if _has(base) else base.total(),
            "head_samples": head.total(head.value_index("samples")) if _has(head) else head.total()}


def _has(p: Profile) -> bool:
    return any(vt.type == "samples" for vt in p.sample_types)


def diff_svg(base: Profile, head: Profile) -> bytes | None:
    """The differential flame graph, when the renderer exists."""
    try:
        from perfkit.render.flamegraph_svg import write_diff
    except ImportError:
        return None
    try:
        return write_diff(base, head)
    except Exception:
        return None
