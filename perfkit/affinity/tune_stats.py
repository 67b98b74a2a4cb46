"""Ranking tune candidates with confidence intervals and "within noise" verdicts.

Each candidate has repeated measurements (throughput: higher is better; or wall time:
lower is better).  For every candidate: mean, standard deviation and a 95 % Student-t
confidence interval of the mean.  Each candidate is compared with the best by Welch's
t-test and a 95 % CI of the difference (as % of the best): a difference whose CI
includes 0 (p ≥ alpha) or that is smaller than ``min_effect`` is *within noise*.

The recommendation is the best candidate, except that an unpinned candidate within
noise of the best wins: pinning must earn its keep.

Throughput and wall time are positive: an interval that reaches 0 or below (a run
count too small for the spread, e.g. two runs, where t(0.975, 1) = 12.7) is not
printed as numbers — it is flagged ``too few runs`` / ``too noisy`` (``ci95``
``null``), and so is a difference interval beyond −100 %.  ``tune`` refuses fewer than
``MIN_RUNS`` measured runs per candidate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from perfkit import stats

MIN_RUNS = 3  # per candidate: fewer cannot give a useful 95 % interval


@dataclass
class Stat:
    name: str
    values: list[float]
    mean: float
    sd: float
    ci_low: float
    ci_high: float
    meta: dict = field(default_factory=dict)
    diff_pct: float = 0.0  # vs the best, in % of the best's mean (negative = worse)
    diff_ci_pct: tuple[float, float] = (0.0, 0.0)
    p_value: float = 1.0
    within_noise: bool = True
    rank: int = 0

    @property
    def ci_problem(self) -> str | None:
        """Why the interval is not shown as numbers (None: it is sound)."""
        if len(self.values) < MIN_RUNS:
            return f"too few runs ({len(self.values)})"
        if not math.isfinite(self.ci_low) or self.ci_low <= 0 < self.mean:
            return "too noisy for this many runs"
        return None

    @property
    def diff_problem(self) -> str | None:
        lo, hi = self.diff_ci_pct
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo < -100.0:
            return "too noisy"
        return None

    def to_json(self) -> dict:
        ci = [None, None] if self.ci_problem else [_r(self.ci_low, 6), _r(self.ci_high, 6)]
        dci = [None, None] if self.diff_problem else [_r(self.diff_ci_pct[0], 2), _r(self.diff_ci_pct[1], 2)]
        return {"name": self.name, "rank": self.rank, "n": len(self.values), "values": [_r(v, 6) for v in self.values],
                "mean": _r(self.mean, 6), "sd": _r(self.sd, 6),
                "ci95": ci, "ci_note": self.ci_problem,
                "diff_vs_best_pct": _r(self.diff_pct, 2),
                "diff_ci95_pct": dci, "diff_ci_note": self.diff_problem,
                "p_value": _r(self.p_value, 4), "within_noise": self.within_noise, **self.meta}


def _r(x: float, nd: int) -> float | None:
    """Rounded, or None when not finite (one run has no interval): valid JSON."""
    return round(x, nd) if math.isfinite(x) else None


@dataclass
class Ranking:
    metric: str
    higher_is_better: bool
    stats: list[Stat]
    recommended: Stat | None
    verdict: str
    all_within_noise: bool

    def to_json(self) -> dict:
        return {"metric": self.metric, "higher_is_better": self.higher_is_better,
                "ranking": [s.to_json() for s in self.stats],
                "recommended": self.recommended.name if self.recommended else None,
                "verdict": self.verdict, "all_within_noise": self.all_within_noise}


def t_quantile(df: float, q: float = 0.975) -> float:
    if df <= 0 or not math.isfinite(df):
        return stats.norm_ppf(q)
    return stats.t_ppf(q, df)


def summarize(name: str, values: list[float], meta: dict | None = None) -> Stat:
    n = len(values)
    mean = sum(values) / n if n else float("nan")
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    half = t_quantile(n - 1) * sd / math.sqrt(n) if n > 1 else float("inf")
    return Stat(name, list(values), mean, sd, mean - half, mean + half, dict(meta or {}))


def welch(a: Stat, b: Stat) -> tuple[float, float, float]:
    """(difference a−b, CI half-width, two-sided p) by Welch's t-test."""
    diff, se, df, p = stats.welch(a.mean, a.sd, len(a.values), b.mean, b.sd, len(b.values))
    return diff, (math.inf if math.isinf(se) else t_quantile(df) * se), p


def rank(samples: dict[str, list[float]], *, higher_is_better: bool = True, metric: str = "throughput",
         meta: dict[str, dict] | None = None, alpha: float = 0.05, min_effect: float = 0.03,
         unpinned: set[str] | None = None) -> Ranking:
    meta = meta or {}
    stats_ = [summarize(k, v, meta.get(k)) for k, v in samples.items() if v]
    if not stats_:
        return Ranking(metric, higher_is_better, [], None, "no successful runs", True)
    sign = 1 if higher_is_better else -1
    stats_.sort(key=lambda s: (-sign * s.mean, s.name))
    best = stats_[0]
    for i, s in enumerate(stats_, 1):
        s.rank = i
        if s is best:
            s.within_noise, s.p_value = True, 1.0
            continue
        diff, half, p = welch(s, best)
        scale = abs(best.mean) or 1.0
        s.diff_pct = 100.0 * sign * diff / scale
        lo, hi = sign * (diff - half) / scale * 100.0, sign * (diff + half) / scale * 100.0
        s.diff_ci_pct = (min(lo, hi), max(lo, hi))
        s.p_value = p
        s.within_noise = p >= alpha or abs(s.diff_pct) < 100.0 * min_effect
    all_noise = all(s.within_noise for s in stats_)
    recommended = best
    unpinned = unpinned or set()
    calm = [s for s in stats_ if s.name in unpinned and s.within_noise]
    close = [s.name for s in stats_[1:] if s.within_noise]
    if best.name in unpinned:
        verdict = f"{best.name} is best"
        if close and not all_noise:
            verdict += f"; within noise of it: {', '.join(close)}"
    elif calm:
        recommended = calm[0]
        verdict = (f"{best.name} measured best, but {recommended.name} is within noise of it "
                   f"({recommended.diff_pct:+.1f} %, 95 % CI {recommended.diff_ci_pct[0]:+.1f} … "
                   f"{recommended.diff_ci_pct[1]:+.1f} %): stay unpinned")
    else:
        verdict = f"{best.name} is best, beyond noise of every unpinned candidate"
        if close:
            verdict += f"; within noise of it: {', '.join(close)}"
    if all_noise:
        verdict += "; every candidate is within noise of the best"
    return Ranking(metric, higher_is_better, stats_, recommended, verdict, all_noise)
