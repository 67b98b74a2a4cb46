"""Does a resource series grow?  A robust per-resource verdict: ``leak``, ``steady`` or
``inconclusive``.

The rule (every threshold is a field of :class:`Thresholds`, printed in ``--help`` and in
the report):

1. **Warm-up** — the first ``warmup_fraction`` of the window is dropped.
2. **Bins** — the rest is cut into equal bins (about one per second, at least
   ``min_bins``); each bin is replaced by its median, which removes bursts and GC spikes.
3. **Trend test** — Mann–Kendall on the bin medians with the Hamed–Rao variance
   correction for autocorrelation (a sawtooth or slow oscillation inflates the variance
   instead of faking a trend); significant when the one-sided p < ``alpha``.
4. **Slope** — Theil–Sen slope with Sen's confidence interval (using the same corrected
   variance, so it widens under autocorrelation); its lower bound must be above zero and
   the slope above the resource's minimum rate (``min_rate``), and the rise over the
   window above ``min_rise``.
5. **High-water mark** — the window is cut into ``subwindows`` parts; the maximum of
   each must exceed the maximum of all earlier parts by more than the resource's noise
   (``hwm_tolerance``).  A cache that fills to a bound, a one-off step or a sawtooth
   stops making new highs, so it fails this test.

``leak`` needs 3, 4 and 5.  When 3 and 4 pass but not 5 (growth through most of the
window without a new high in every part) the verdict is ``inconclusive``.  Otherwise
``steady`` when no new high-water mark was made in the last part, or the slope's upper
bound is below the minimum rate.  Anything else (or too few bins) is ``inconclusive``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from perfkit import stats, units

LEAK = "leak"
STEADY = "steady"
INCONCLUSIVE = "inconclusive"

MIB = 1024 * 1024


@dataclass(frozen=True)
class Thresholds:
    alpha: float = 0.01  # one-sided Mann–Kendall significance
    confidence: float = 0.95  # Theil–Sen interval
    warmup_fraction: float = 0.1
    subwindows: int = 4
    min_bins: int = 8
    min_rate: float = 0.0  # units per second
    min_rise: float = 0.0  # units over the analysed window
    hwm_tolerance: float = 0.0  # a new high must exceed the old by more than this

    def to_json(self) -> dict:
        return asdict(self)


# per-resource defaults: the smallest growth worth calling a leak
DEFAULT_THRESHOLDS = {
    "memory": Thresholds(min_rate=16 * 1024, min_rise=1 * MIB, hwm_tolerance=256 * 1024),
    "threads": Thresholds(min_rate=0.02, min_rise=3, hwm_tolerance=0),
    "fds": Thresholds(min_rate=0.02, min_rise=3, hwm_tolerance=0),
    "sockets": Thresholds(min_rate=0.02, min_rise=3, hwm_tolerance=0),
    "children": Thresholds(min_rate=0.02, min_rise=3, hwm_tolerance=0),
}


@dataclass
class MannKendall:
    n: int
    s: float
    var_s: float  # corrected
    var_s_raw: float
    correction: float  # n / n*  (>1 under positive autocorrelation)
    z: float
    p: float  # one-sided, for an increasing trend
    tau: float

    def to_json(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass
class Slope:
    slope: float  # units per second
    low: float
    high: float
    intercept: float

    def to_json(self) -> dict:
        return {k: _r(v) for k, v in asdict(self).items()}


@dataclass
class Verdict:
    resource: str
    verdict: str
    reasons: list[str]
    n_samples: int
    n_bins: int
    start_value: float | None = None
    end_value: float | None = None
    mk: MannKendall | None = None
    slope: Slope | None = None
    hwm: list[float] = field(default_factory=list)
    hwm_rising: bool = False
    thresholds: Thresholds = field(default_factory=Thresholds)
    time_to_limit_s: float | None = None
    limit: float | None = None
    limit_source: str | None = None

    def to_json(self) -> dict:
        return {"resource": self.resource, "verdict": self.verdict, "reasons": self.reasons,
                "n_samples": self.n_samples, "n_bins": self.n_bins, "start_value": _r(self.start_value),
                "end_value": _r(self.end_value), "mann_kendall": self.mk.to_json() if self.mk else None,
                "slope_per_s": self.slope.to_json() if self.slope else None,
                "high_water_marks": [_r(v) for v in self.hwm], "hwm_rising": self.hwm_rising,
                "thresholds": self.thresholds.to_json(), "limit": _r(self.limit),
                "limit_source": self.limit_source, "time_to_limit_s": _r(self.time_to_limit_s)}


def _r(v):
    if v is None or isinstance(v, int):
        return v
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return round(v, 6)


# ------------------------------------------------------------------ statistics


_norm_sf = stats.norm_sf
_norm_ppf = stats.norm_ppf


def _s_statistic(y: list[float]) -> float:
    n = len(y)
    s = 0
    for i in range(n - 1):
        yi = y[i]
        for j in range(i + 1, n):
            d = y[j] - yi
            s += (d > 0) - (d < 0)
    return float(s)


def _var_s(y: list[float]) -> float:
    n = len(y)
    counts: dict[float, int] = {}
    for v in y:
        counts[v] = counts.get(v, 0) + 1
    ties = sum(t * (t - 1) * (2 * t + 5) for t in counts.values() if t > 1)
    return (n * (n - 1) * (2 * n + 5) - ties) / 18.0


def _ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        avg = (i + j) / 2.0 + 1.0
        for k in range(i, j + 1):
            ranks[order[k]] = avg
        i = j + 1
    return ranks


def hamed_rao_correction(x: list[float], y: list[float], slope: float, alpha: float = 0.05) -> float:
    """n/n*: the variance inflation of S for autocorrelated data (Hamed & Rao 1998).

    Autocorrelations of the ranks of the detrended series, at every lag, counted only
    where significant at ``alpha`` (two-sided).
    """
    n = len(y)
    if n < 4:
        return 1.0
    detr = [yi - slope * xi for xi, yi in zip(x, y)]
    r = _ranks(detr)
    mean = sum(r) / n
    dev = [v - mean for v in r]
    denom = sum(d * d for d in dev)
    if denom == 0:
        return 1.0
    z = _norm_ppf(1 - alpha / 2)
    total = 0.0
    for k in range(1, n - 1):
        rho = sum(dev[i] * dev[i + k] for i in range(n - k)) / denom
        bound = z / math.sqrt(n)
        if abs(rho) > bound:
            total += (n - k) * (n - k - 1) * (n - k - 2) * rho
    ratio = 1.0 + 2.0 / (n * (n - 1) * (n - 2)) * total
    return max(ratio, 1.0)  # never shrink the variance: the conservative choice for alarms


def mann_kendall(x: list[float], y: list[float], slope: float) -> MannKendall:
    n = len(y)
    s = _s_statistic(y)
    var_raw = _var_s(y)
    corr = hamed_rao_correction(x, y, slope)
    var = var_raw * corr
    if var <= 0:
        z = 0.0
    elif s > 0:
        z = (s - 1) / math.sqrt(var)
    elif s < 0:
        z = (s + 1) / math.sqrt(var)
    else:
        z = 0.0
    tau = s / (n * (n - 1) / 2.0) if n > 1 else 0.0
    return MannKendall(n=n, s=s, var_s=var, var_s_raw=var_raw, correction=corr, z=z, p=_norm_sf(z), tau=tau)


def theil_sen(x: list[float], y: list[float], var_s: float | None = None, confidence: float = 0.95) -> Slope:
    """Theil–Sen slope with Sen's (1968) interval from the variance of S."""
    n = len(x)
    slopes = sorted((y[j] - y[i]) / (x[j] - x[i]) for i in range(n) for j in range(i + 1, n) if x[j] != x[i])
    if not slopes:
        return Slope(0.0, 0.0, 0.0, y[0] if y else 0.0)
    m = len(slopes)
    med = _median(slopes)
    if var_s is None:
        var_s = _var_s(y)
    c = _norm_ppf(1 - (1 - confidence) / 2) * math.sqrt(max(var_s, 0.0))
    lo_i = int(math.floor((m - c) / 2.0))
    hi_i = int(math.ceil((m + c) / 2.0))
    low = slopes[max(0, min(m - 1, lo_i - 1))] if lo_i >= 1 else -math.inf
    high = slopes[max(0, min(m - 1, hi_i - 1))] if hi_i <= m else math.inf
    intercept = _median([yi - med * xi for xi, yi in zip(x, y)])
    return Slope(slope=med, low=low, high=high, intercept=intercept)


_median = stats.median


# ------------------------------------------------------------------ the verdict


def bin_medians(points: list[tuple[float, float]], n_bins: int) -> tuple[list[float], list[float]]:
    """Cut ``points`` (t, v) into ``n_bins`` equal time bins; (bin centre, median) of non-empty bins."""
    if not points:
        return [], []
    t0, t1 = points[0][0], points[-1][0]
    width = (t1 - t0) / n_bins if t1 > t0 else 1.0
    groups: list[list[float]] = [[] for _ in range(n_bins)]
    for t, v in points:
        i = min(n_bins - 1, int((t - t0) / width)) if width > 0 else 0
        groups[i].append(v)
    xs, ys = [], []
    for i, g in enumerate(groups):
        if g:
            xs.append(t0 + (i + 0.5) * width)
            ys.append(_median(g))
    return xs, ys


def high_water_marks(points: list[tuple[float, float]], parts: int) -> list[float]:
    if not points:
        return []
    t0, t1 = points[0][0], points[-1][0]
    width = (t1 - t0) / parts if t1 > t0 else 1.0
    maxes: list[float | None] = [None] * parts
    for t, v in points:
        i = min(parts - 1, int((t - t0) / width)) if width > 0 else 0
        m = maxes[i]
        maxes[i] = v if m is None else max(m, v)
    return [m for m in maxes if m is not None]


def assess(resource: str, points: list[tuple[float, float]], thresholds: Thresholds | None = None,
           *, bin_seconds: float = 1.0) -> Verdict:
    """The verdict for one resource from its (t seconds, value) series."""
    th = thresholds or DEFAULT_THRESHOLDS.get(resource, Thresholds())
    pts = [(float(t), float(v)) for t, v in points if v is not None]
    v = Verdict(resource=resource, verdict=INCONCLUSIVE, reasons=[], n_samples=len(pts), n_bins=0,
                thresholds=th)
    if len(pts) < 2:
        v.reasons.append(f"only {len(pts)} sample(s): cannot judge")
        return v
    v.start_value, v.end_value = pts[0][1], pts[-1][1]
    t_start, t_end = pts[0][0], pts[-1][0]
    cut = t_start + th.warmup_fraction * (t_end - t_start)
    body = [p for p in pts if p[0] >= cut]
    span = body[-1][0] - body[0][0] if len(body) > 1 else 0.0
    n_bins = max(th.min_bins, min(60, int(round(span / bin_seconds)) if bin_seconds > 0 else th.min_bins))
    xs, ys = bin_medians(body, n_bins)
    v.n_bins = len(xs)
    if len(xs) < th.min_bins:
        v.reasons.append(f"only {len(xs)} time bins after warm-up (need {th.min_bins}): monitor longer "
                         "or sample faster")
        return v
    if len(set(ys)) == 1 and len({p[1] for p in body}) == 1:
        v.slope = Slope(0.0, 0.0, 0.0, ys[0])
        v.hwm = high_water_marks(body, th.subwindows)
        v.verdict = STEADY
        v.reasons.append("constant over the window")
        return v
    pre = theil_sen(xs, ys)
    mk = mann_kendall(xs, ys, pre.slope)
    sl = theil_sen(xs, ys, mk.var_s, th.confidence)
    v.mk, v.slope = mk, sl
    hwm = high_water_marks(body, th.subwindows)
    v.hwm = hwm
    rising = len(hwm) == th.subwindows and all(hwm[i] > max(hwm[:i]) + th.hwm_tolerance for i in range(1, len(hwm)))
    v.hwm_rising = rising
    rise = sl.slope * (xs[-1] - xs[0])
    trend = mk.p < th.alpha and mk.s > 0
    slope_ok = sl.low > 0 and sl.slope > th.min_rate
    rise_ok = rise > th.min_rise
    v.reasons.append(f"Mann-Kendall (Hamed-Rao) p={mk.p:.2g} {'<' if trend else '>='} {th.alpha:g}"
                     + (f" (variance x{mk.correction:.2f} for autocorrelation)" if mk.correction > 1.0 else ""))
    unit = "bytes" if resource == "memory" else "count"

    def _fmt(x: float) -> str:
        return units.fmt_value(x, unit) if math.isfinite(x) else ("inf" if x > 0 else "-inf")

    def _rate(x: float) -> str:
        return units.fmt_rate(x, unit)

    v.reasons.append(f"Theil-Sen slope {_rate(sl.slope)} [{_rate(sl.low)}, {_rate(sl.high)}] "
                     f"{'passes' if slope_ok else 'fails'} (>0 and > {_rate(th.min_rate)})")
    v.reasons.append(f"rise over window {_fmt(rise)} {'>' if rise_ok else '<='} {_fmt(th.min_rise)}")
    v.reasons.append("high-water mark rose in every one of the "
                     f"{th.subwindows} sub-windows" if rising else
                     f"high-water mark did not rise in every sub-window ({', '.join(_fmt(h) for h in hwm)})")
    if trend and slope_ok and rise_ok and rising:
        v.verdict = LEAK
    elif trend and slope_ok and rise_ok:
        v.reasons.append("it grew through most of the window but has not made a new high in every "
                         "sub-window (a cache still filling, or a slow or stepwise leak)")
    elif len(hwm) >= 2 and hwm[-1] <= max(hwm[:-1]) + th.hwm_tolerance:
        v.verdict = STEADY
        v.reasons.append("no new high-water mark in the last sub-window")
    elif sl.high < th.min_rate or not trend:
        v.verdict = STEADY if (sl.high < th.min_rate or rise <= th.min_rise) else INCONCLUSIVE
        if v.verdict == STEADY:
            v.reasons.append("growth, if any, is below the minimum rate")
    if v.verdict == INCONCLUSIVE:
        v.reasons.append("some but not all leak tests passed: monitor longer")
    return v


def time_to_limit(current: float | None, slope: float, limit: float | None) -> float | None:
    if current is None or limit is None or slope <= 0:
        return None
    return max(0.0, (limit - current) / slope)
