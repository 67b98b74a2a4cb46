"""Explaining a CPU regression: which functions' share of the CPU profile grew.

Uses the differential-profile analysis (``perfkit.analysis.diff``).  Both profiles are normalised to sample counts through the collapsed
format first, so a stored baseline profile and a fresh py-spy profile compare alike.
"""

from __future__ import annotations

from perfkit import stats
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


def merge(texts: list[str]) -> Profile:
    """One profile from several runs' collapsed stacks (sample counts add up)."""
    return from_collapsed("".join(t if t.endswith("\n") else t + "\n" for t in texts if t.strip()))


def _shares(p: Profile) -> dict[tuple[str, str], float]:
    from perfkit.analysis.top import top

    return {(r.function, r.file): r.self_pct for r in top(p, p.value_index("samples") if _has(p) else None)}


def _consistent_growth(base_runs: list[Profile], head_runs: list[Profile], min_t: float = 1.5
                       ) -> set[tuple[str, str]] | None:
    """Functions whose self share grew consistently across runs (Welch t >= ``min_t``).

    What a run spends in imports or before py-spy attaches varies a lot from run to run;
    a function whose share moved only in one run is noise, not the regression.  None
    when there are too few runs per side to tell.
    """
    if len(base_runs) < 2 or len(head_runs) < 2:
        return None
    b = [_shares(p) for p in base_runs]
    h = [_shares(p) for p in head_runs]
    keys = set().union(*b, *h)
    out = set()
    for k in keys:
        xb = [d.get(k, 0.0) for d in b]
        xh = [d.get(k, 0.0) for d in h]
        mb, sb = stats.mean_sd(xb)
        mh, sh = stats.mean_sd(xh)
        se = (sb * sb / len(xb) + sh * sh / len(xh) + 0.25) ** 0.5  # + 0.5 pp floor: sampling noise
        if mh > mb and (mh - mb) / se >= min_t:
            out.add(k)
    return out


def _via_diff(base: Profile, head: Profile) -> list[dict]:
    from perfkit.analysis.diff import diff

    res = diff(base, head)
    return [_row(r.function, r.file, r.line, float(r.base_pct), float(r.new_pct)) for r in res.rows if r.delta_pp > 0]


def explain(base_runs: list[Profile], head_runs: list[Profile], limit: int = 5) -> dict:
    """{"method", "grew": rows, ...}: functions whose self CPU share grew most, and consistently.

    Shares come from all runs of a side merged; a function is listed only if its share
    grew in the runs consistently (when there are at least two runs per side).
    """
    base, head = merge([to_collapsed(p) for p in base_runs]), merge([to_collapsed(p) for p in head_runs])
    rows = _via_diff(base, head)
    method = "perfkit.analysis.diff"
    keep = _consistent_growth(base_runs, head_runs)
    if keep is not None:
        steady = [r for r in rows if (r["function"], r["file"]) in keep]
        if steady:
            rows = steady
            method += f", consistent across runs ({len(base_runs)} base / {len(head_runs)} head)"
        else:
            method += (f"; no function grew consistently across runs ({len(base_runs)} base / "
                       f"{len(head_runs)} head): the shares vary a lot between runs, treat with care")
    rows.sort(key=lambda d: (-d["delta_pp"], d["function"]))
    return {"method": method, "grew": rows[:limit], "base_samples": base.total(), "head_samples": head.total(),
            "base_runs": len(base_runs), "head_runs": len(head_runs)}


def _has(p: Profile) -> bool:
    return any(vt.type == "samples" for vt in p.sample_types)


def diff_svg(base_runs: list[Profile], head_runs: list[Profile]) -> bytes | None:
    """The differential flame graph of the merged runs (None if it cannot be drawn)."""
    from perfkit.render.flamegraph_svg import write_diff

    try:
        return write_diff(merge([to_collapsed(p) for p in base_runs]), merge([to_collapsed(p) for p in head_runs]))
    except Exception:
        return None
