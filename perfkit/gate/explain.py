"""Explaining a CPU regression: the functions — your code first — whose CPU share grew,
consistently across the repeated profiles and beyond sampling noise.

Both sides are profiled several times (``bench.profile_runs``).  Per function and per
run, shares of the run's samples: *self* (its own code) and *total* (it or its callees).
A function is named only when its change is

* **consistent** across runs: a quasi-binomial test of the pooled shares whose noise is
  the runs' own spread (over-dispersion, see ``_quasi_p``), at a false-alarm rate of
  ``ALPHA`` shared (Bonferroni) over every function tested — what a run spends in
  imports or before py-spy attaches varies from run to run, and a function whose share
  moved in one run only is noise; and
* **significant** on the pooled sample counts: a two-proportion interval (99 %) of the
  change excludes 0, and the change is at least ``MIN_PP`` percentage points.

Two lists come out: ``your_code`` — the user's own functions (``perfkit.paths``) whose
**total** share grew, ranked by that total change (the loop that does more work, even
when the time lands in library code it calls) — and ``functions`` — any function whose
**self** share grew, ranked by its self change.  ``grew``, what every report prints, is
``your_code`` then the other ``functions``, each named once.  Profiles are compared through the
collapsed format, so a stored baseline and a fresh py-spy profile compare alike.  With
fewer than two runs a side, the consistency test cannot be made and nothing is named.
"""

from __future__ import annotations

import math
from typing import Any

from perfkit import paths, stats
from perfkit.model import Profile

ALPHA = 0.05  # family-wise: the chance of naming any function on a null change
CONFIDENCE = 0.99  # of the pooled-count interval
MIN_PP = 1.0  # smallest change of share worth naming
MIN_SHARE = 1.0  # functions under this share on both sides are not tested (they cannot matter)
MIN_RUN_SAMPLES = 30  # a run with fewer samples is left out of the across-runs test
MIN_SEEN = 0.85  # below this share of a run's wall time seen by py-spy, the report says so


def to_collapsed(profile: Profile) -> str:
    from perfkit.formats import collapsed

    return collapsed.write(profile).decode("utf-8")


def from_collapsed(text: str) -> Profile:
    """A run's profile from its collapsed stacks; no stacks at all (py-spy caught nothing,
    or only import time) is an empty profile: nothing to explain, not an error."""
    from perfkit.formats import collapsed
    from perfkit.model import SAMPLES

    if not text.strip():
        return Profile(frames=[], sample_types=[SAMPLES], samples=[])
    return collapsed.read(text.encode("utf-8"), "baseline profile")


def merge(texts: list[str]) -> Profile:
    """One profile from several runs' collapsed stacks (sample counts add up)."""
    return from_collapsed("".join(t if t.endswith("\n") else t + "\n" for t in texts if t.strip()))


def _normalised(p: Profile) -> Profile:
    """Through the collapsed format (a stored baseline and a fresh profile alike), without
    import-time stacks: what a run spends importing varies between runs (a first run
    compiles bytecode) and is not the benchmark's code."""
    from perfkit.analysis.yourcode import without_imports

    return without_imports(from_collapsed(to_collapsed(p)))


def _shares(p: Profile) -> tuple[dict[tuple[str, str], tuple[float, float, int]], int]:
    """{(function, file): (self %, total %, line)} and the run's sample count."""
    from perfkit.analysis.top import top

    vi = p.value_index("samples") if any(vt.type == "samples" for vt in p.sample_types) else None
    return ({(r.function, r.file): (r.self_pct, r.total_pct, r.line) for r in top(p, vi)}, p.total(vi))


def _quasi_p(b: list[tuple[float, int]], h: list[tuple[float, int]]) -> tuple[float, float]:
    """One-sided p of "the head share is larger" from per-run (share %, samples) pairs, and
    the over-dispersion used.

    A quasi-binomial test: the pooled shares' difference over its binomial standard
    error, inflated by the runs' own over-dispersion (Pearson χ² of the per-run shares
    around each side's pooled share, per degree of freedom, at least 1), against
    Student's t with (runs − 2) degrees of freedom.  Runs weigh by their samples, and a
    share that jumps between runs (an import, py-spy's attach delay) counts as the noise
    it is."""
    kb, kh = len(b), len(h)
    nb, nh = sum(n for _, n in b), sum(n for _, n in h)
    if kb < 2 or kh < 2 or not nb or not nh:
        return 1.0, math.inf
    pb = sum(x / 100.0 * n for x, n in b) / nb
    ph = sum(x / 100.0 * n for x, n in h) / nh
    chi2 = 0.0
    for runs, p in ((b, pb), (h, ph)):
        var = max(p * (1 - p), 1e-9)
        chi2 += sum((x / 100.0 * n - n * p) ** 2 / (n * var) for x, n in runs if n)
    phi = max(1.0, chi2 / (kb + kh - 2))
    se = math.sqrt(phi * (max(pb * (1 - pb), 1.0 / nb) / nb + max(ph * (1 - ph), 1.0 / nh) / nh))
    return stats.t_sf((ph - pb) / se, kb + kh - 2), phi


def _pooled_interval(bp: float, bn: int, hp: float, hn: int) -> tuple[float, float]:
    """Two-proportion interval (pp) of the pooled share change at CONFIDENCE."""
    z = stats.norm_ppf(1 - (1 - CONFIDENCE) / 2)
    p1, p2 = bp / 100.0, hp / 100.0
    var = (p1 * (1 - p1) / bn if bn else 1.0) + (p2 * (1 - p2) / hn if hn else 1.0)
    var = max(var, (1.0 / max(bn, 1)) ** 2 + (1.0 / max(hn, 1)) ** 2)
    d = (p2 - p1) * 100.0
    half = z * math.sqrt(var) * 100.0
    return d - half, d + half


def seen_share(runs: list[Profile]) -> float | None:
    """Median share of each launched run's wall time that py-spy sampled, or None when the
    runs carry no record of it (a baseline's stored profiles).  py-spy attaches some
    milliseconds after the program starts — more on a loaded machine — so what a short
    benchmark does first is under-counted in its shares."""
    seen = []
    for p in runs:
        rec = p.recording
        wall = (rec.program or {}).get("wall_s")
        if wall and wall > 0 and rec.duration_s is not None:
            seen.append(min(1.0, rec.duration_s / wall))
    return stats.median(seen) if seen else None


def coverage_note(base: float | None, head: float | None) -> str | None:
    """The report's sentence when py-spy missed enough of the runs to bias the shares."""
    if all(x is None or x >= MIN_SEEN for x in (base, head)):
        return None
    sides = " and ".join(f"{x:.0%} of each {side} run" for side, x in (("base", base), ("head", head))
                         if x is not None)
    return (f"py-spy saw {sides} (median): it attaches after a launched program starts, so what a benchmark "
            "does first is under-counted in the CPU shares; a benchmark that runs longer (or starts its work "
            "a moment later) is explained better")


def explain(base_runs: list[Profile], head_runs: list[Profile], limit: int = 5) -> dict:
    """{"method", "your_code": rows, "grew": rows, ...} — see the module docstring."""
    base_runs = [_normalised(p) for p in base_runs]
    head_runs = [_normalised(p) for p in head_runs]
    # a run with only a handful of samples (py-spy caught the end of it) says nothing about
    # shares: the consistency test uses the runs with at least MIN_RUN_SAMPLES samples
    b_runs = [x for x in (_shares(p) for p in base_runs) if x[1] >= MIN_RUN_SAMPLES] or \
        [_shares(p) for p in base_runs]
    h_runs = [x for x in (_shares(p) for p in head_runs) if x[1] >= MIN_RUN_SAMPLES] or \
        [_shares(p) for p in head_runs]
    base, head = merge([to_collapsed(p) for p in base_runs]), merge([to_collapsed(p) for p in head_runs])
    (bpool, bn), (hpool, hn) = _shares(base), _shares(head)
    runs = f"{len(base_runs)} base / {len(head_runs)} head runs"
    out: dict[str, Any] = {"base_samples": bn, "head_samples": hn, "base_runs": len(base_runs),
                           "head_runs": len(head_runs), "grew": [], "your_code": []}
    if len(b_runs) < 2 or len(h_runs) < 2:
        out["method"] = (f"not enough profiles to tell a consistent change from run-to-run noise ({runs}; "
                         f"at least 2 a side): no function named")
        return out
    keys = set(bpool) | set(hpool)
    tests = []
    for k in keys:
        # the user's own functions by their total share (the loop that does more, wherever
        # the time lands), every other function by its self share: one test per function
        measure, idx = ("total", 1) if paths.is_user(k[1], k[0]) else ("self", 0)
        bshare = bpool.get(k, (0.0, 0.0, 0))[idx]
        hshare = hpool.get(k, (0.0, 0.0, 0))[idx]
        if max(bshare, hshare) < MIN_SHARE:
            continue
        tests.append((k, measure, idx, bshare, hshare))
    alpha = ALPHA / max(1, len(tests))
    considered: list[dict[str, Any]] = []
    for k, measure, idx, bshare, hshare in tests:
        xb = [(d.get(k, (0.0, 0.0, 0))[idx], n) for d, n in b_runs]
        xh = [(d.get(k, (0.0, 0.0, 0))[idx], n) for d, n in h_runs]
        p, phi = _quasi_p(xb, xh)
        lo, hi = _pooled_interval(bshare, bn, hshare, hn)
        considered.append({"function": k[0], "measure": measure, "base_pct": round(bshare, 2),
                           "new_pct": round(hshare, 2), "p_runs": float(f"{p:.3g}"), "dispersion": round(phi, 2),
                           "interval_pp": [round(lo, 2), round(hi, 2)]})
        if not (p < alpha and lo > 0 and hshare - bshare >= MIN_PP):
            continue
        line = (hpool.get(k) or bpool.get(k) or (0.0, 0.0, 0))[2]
        row = {"function": k[0], "file": k[1], "line": int(line or 0), "measure": measure,
               "base_pct": round(bshare, 3), "new_pct": round(hshare, 3), "delta_pp": round(hshare - bshare, 3),
               "interval_pp": [round(lo, 3), round(hi, 3)], "p_runs": float(f"{p:.3g}"),
               "your_code": paths.is_user(k[1], k[0])}
        out["your_code" if measure == "total" else "grew"].append(row)
    for name in ("grew", "your_code"):
        out[name].sort(key=lambda d: (-d["delta_pp"], d["function"]))
        out[name] = out[name][:limit]
    # every report reads "grew": your code first (by total), then other functions (by self), each once
    out["functions"] = out["grew"]
    named = {(r["function"], r["file"]) for r in out["your_code"]}
    out["grew"] = out["your_code"] + [r for r in out["functions"] if (r["function"], r["file"]) not in named]
    out["tested"] = len(tests)
    out["per_test_alpha"] = float(f"{alpha:.3g}")
    # the largest increases that were tested, named or not: why a function was (not) named
    out["considered"] = sorted(considered, key=lambda d: d["base_pct"] - d["new_pct"])[:6]
    out["method"] = (f"per-run shares ({runs}): named only if consistent across runs (quasi-binomial t on the "
                     f"runs' spread, family-wise false-alarm rate {ALPHA:g} over {len(tests)} tests) and beyond "
                     f"sampling noise "
                     f"({CONFIDENCE:.0%} interval on the pooled counts, ≥ {MIN_PP:g} pp); your code ranked by "
                     f"total share, other functions by self share")
    if not out["grew"] and not out["your_code"]:
        out["method"] += "; no function's share changed that way"
    return out


def diff_svg(base_runs: list[Profile], head_runs: list[Profile]) -> bytes | None:
    """The differential flame graph of the merged runs (None if it cannot be drawn)."""
    from perfkit.render.flamegraph_svg import write_diff

    try:
        return write_diff(merge([to_collapsed(p) for p in base_runs]), merge([to_collapsed(p) for p in head_runs]))
    except Exception:
        return None
