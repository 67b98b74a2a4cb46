"""perfkit's one statistics module: distributions, summaries, and the ratio intervals
with the per-metric decision the gate makes.  Standard library only (no scipy or
numpy at run time: importing scipy.stats alone costs a second of CPU); the tests check
every number here against scipy.

Distributions: :func:`norm_cdf`, :func:`norm_sf`, :func:`norm_ppf` (``statistics.NormalDist``),
:func:`t_cdf`, :func:`t_sf`, :func:`t_ppf` (Student t from the regularized incomplete
beta function).  Summaries: :func:`median` (NaN when empty), :func:`mean_sd`,
:func:`cv`, :func:`robust_sd`, :func:`welch`.

Ratio confidence intervals and the per-metric decision.

Everything works on log values, so an interval on the log difference is an interval
on the ratio head/base.  Two methods:

* ``rank`` (noisy metrics: CPU, wall) — paired: Wilcoxon signed-rank on the per-pair
  log ratios, the Hodges-Lehmann estimate (median of Walsh averages) and its exact
  distribution-free interval; unpaired: Mann-Whitney with the Hodges-Lehmann shift and
  its interval.  Robust to the outliers a shared runner produces.  With too few runs
  for the requested confidence the interval is infinite (honestly undecidable).
* ``t`` (near-deterministic metrics: instructions, allocations, peak heap/RSS,
  threads) — paired t / Welch t interval on log values.  Three runs per side suffice
  when the spread is tiny; identical values give a zero-width interval.

The decision for a metric with minimum effect ``e`` (a fraction) and interval
[lo, hi] around the estimate r (all ratios):

  regression   lo > 1 and r >= 1 + e      (significant and big enough)
  improvement  hi < 1 and r <= 1/(1 + e)
  no change    1/(1 + e) <= lo and hi <= 1 + e   (the interval rules out a change >= e)
  inconclusive otherwise — too noisy to tell; more runs may decide it

``alpha_per_test`` splits the false-alarm budget over every test the gate makes
(metrics x benchmarks x looks): each interval is two-sided at 1 - 2*alpha_per_test, so
the chance of a false "regression" anywhere is at most alpha (Bonferroni).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

REGRESSION = "regression"
IMPROVEMENT = "improvement"
NO_CHANGE = "no change"
INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Interval:
    ratio: float  # point estimate of head / base
    lo: float
    hi: float
    method: str  # e.g. "wilcoxon-hl", "mann-whitney-hl", "paired-t", "welch-t"
    confidence: float

    def to_json(self) -> dict:
        return {"ratio": _num(self.ratio), "lo": _num(self.lo), "hi": _num(self.hi), "method": self.method,
                "confidence": round(self.confidence, 6)}


def _num(x: float):
    return None if math.isinf(x) or math.isnan(x) else round(x, 6)


def _log(values) -> list[float]:
    # counts can be 0 (no allocations); a floor keeps the log finite and the ratio sane
    return [math.log(max(float(v), 1e-9)) for v in values]


def decide(iv: Interval, min_effect: float) -> str:
    up = 1.0 + min_effect
    down = 1.0 / up
    if iv.lo > 1.0 and iv.ratio >= up:
        return REGRESSION
    if iv.hi < 1.0 and iv.ratio <= down:
        return IMPROVEMENT
    if iv.lo >= down * (1 - 1e-12) and iv.hi <= up * (1 + 1e-12):
        return NO_CHANGE
    return INCONCLUSIVE


def ratio_interval(base, head, *, paired: bool, method: str, alpha_per_test: float) -> Interval:
    """Interval for head/base at two-sided confidence 1 - 2*alpha_per_test."""
    a = 2.0 * alpha_per_test
    lb, lh = _log(base), _log(head)
    if paired:
        if len(lb) != len(lh):
            raise ValueError("paired samples need equal lengths")
        d = [h - b for b, h in zip(lb, lh)]
        est, lo, hi, name = ((_hl_paired(d, a) + ("wilcoxon-hl",)) if method == "rank"
                             else (_t_paired(d, a) + ("paired-t",)))
    else:
        est, lo, hi, name = (_hl_unpaired(lb, lh, a) + ("mann-whitney-hl",)) if method == "rank" else \
            (_welch(lb, lh, a) + ("welch-t",))
    return Interval(_exp(est), _exp(lo), _exp(hi), name, 1.0 - a)


def _exp(x: float) -> float:
    if x == math.inf:
        return math.inf
    if x == -math.inf:
        return 0.0
    return math.exp(x)


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    if n == 0:
        return math.nan
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


# ----------------------------------------------------------------------------- rank

@lru_cache(maxsize=256)
def _signed_rank_cdf(n: int) -> tuple[float, ...]:
    """P(T+ <= k) for k = 0..n(n+1)/2 under H0 (exact, by counting subsets)."""
    total = n * (n + 1) // 2
    counts = [0] * (total + 1)
    counts[0] = 1
    for r in range(1, n + 1):
        for s in range(total, r - 1, -1):
            counts[s] += counts[s - r]
    denom = 2.0 ** n
    acc, out = 0, []
    for c in counts:
        acc += c
        out.append(acc / denom)
    return tuple(out)


def _z(p: float) -> float:
    return norm_ppf(p)


def _tq(p: float, df: float) -> float:
    return t_ppf(p, df)


def _signed_rank_k(n: int, a: float) -> int:
    """Largest k with P(T+ <= k-1) <= a/2 (0 = no finite interval at this confidence)."""
    if n <= 60:
        cdf = _signed_rank_cdf(n)
        k = 0
        while k < len(cdf) and cdf[k] <= a / 2:
            k += 1
        return k
    m = n * (n + 1) / 4
    sd = math.sqrt(n * (n + 1) * (2 * n + 1) / 24)
    return max(0, int(math.floor(m - _z(1 - a / 2) * sd)))


def _hl_paired(d: list[float], a: float) -> tuple[float, float, float]:
    n = len(d)
    if n == 0:
        return 0.0, -math.inf, math.inf
    walsh = sorted((d[i] + d[j]) / 2 for i in range(n) for j in range(i, n))
    est = _median(walsh)
    k = _signed_rank_k(n, a)
    if k < 1:
        return est, -math.inf, math.inf
    return est, walsh[k - 1], walsh[len(walsh) - k]


def _hl_unpaired(lb: list[float], lh: list[float], a: float) -> tuple[float, float, float]:
    n, m = len(lb), len(lh)
    if n == 0 or m == 0:
        return 0.0, -math.inf, math.inf
    diffs = sorted(h - b for b in lb for h in lh)
    est = _median(diffs)
    nm = n * m
    sd = math.sqrt(nm * (n + m + 1) / 12)
    k = int(math.floor(nm / 2 - _z(1 - a / 2) * sd))
    if k < 1:
        return est, -math.inf, math.inf
    return est, diffs[k - 1], diffs[nm - k]


# -------------------------------------------------------------------------------- t

def _mean_sd(x: list[float]) -> tuple[float, float]:
    n = len(x)
    if n == 0:
        return math.nan, math.nan
    mu = sum(x) / n
    var = sum((v - mu) ** 2 for v in x) / (n - 1) if n > 1 else 0.0
    return mu, math.sqrt(var)


def _t_paired(d: list[float], a: float) -> tuple[float, float, float]:
    n = len(d)
    if n == 0:
        return 0.0, -math.inf, math.inf
    mu, sd = _mean_sd(d)
    if sd < 1e-12:  # identical differences: the change is exactly known
        return mu, mu, mu
    if n < 2:
        return mu, -math.inf, math.inf
    half = _tq(1 - a / 2, n - 1) * sd / math.sqrt(n)
    return mu, mu - half, mu + half


def _welch(lb: list[float], lh: list[float], a: float) -> tuple[float, float, float]:
    if not lb or not lh:
        return 0.0, -math.inf, math.inf
    mb, sb = _mean_sd(lb)
    mh, sh = _mean_sd(lh)
    est = mh - mb
    vb, vh = sb * sb / len(lb), sh * sh / len(lh)
    se = math.sqrt(vb + vh)
    if se < 1e-12:
        return est, est, est
    if len(lb) < 2 or len(lh) < 2:
        return est, -math.inf, math.inf
    df = (vb + vh) ** 2 / ((vb * vb / (len(lb) - 1) if vb else 0.0) + (vh * vh / (len(lh) - 1) if vh else 0.0))
    half = _tq(1 - a / 2, df) * se
    return est, est - half, est + half


def with_between_noise(iv: Interval, sd: float, base_groups: int, alpha_per_test: float) -> Interval:
    """``iv`` widened for noise its runs could not see: a shift shared by all runs of one group.

    Runs inside one process (the pytest plugin's rounds) share that process's luck —
    memory layout, hash seed, allocator state, the machine's speed that minute — so
    their spread says nothing about how far the next process will land.  With ``sd``
    the standard deviation of that shift (log scale, e.g. 0.04 = 4 %) and the base
    side averaged over ``base_groups`` groups, the change's variance gains
    sd² (1 + 1 / base_groups); each half-width becomes sqrt(h² + (z·sd·sqrt(1 + 1/g))²)
    at the interval's own confidence.  sd = 0 leaves ``iv`` as it is.
    """
    if sd <= 0 or math.isinf(iv.hi) or iv.lo <= 0:
        return iv
    z = norm_ppf(1.0 - alpha_per_test)
    extra = z * sd * math.sqrt(1.0 + 1.0 / max(1, base_groups))
    c = math.log(iv.ratio)
    lo = c - math.hypot(c - math.log(iv.lo), extra)
    hi = c + math.hypot(math.log(iv.hi) - c, extra)
    return Interval(iv.ratio, math.exp(lo), math.exp(hi), iv.method + "+between", iv.confidence)


def pooled_group_sd(groups: list[list[float]]) -> tuple[float, int]:
    """(sd, degrees of freedom) of log values around their own group's mean, pooled over groups.

    Each inner list holds one unit's per-group summaries (say, one test's median per
    recorded session); units with a single group add nothing.
    """
    ss, df = 0.0, 0
    for g in groups:
        xs = _log(g)
        if len(xs) < 2:
            continue
        mu = sum(xs) / len(xs)
        ss += sum((x - mu) ** 2 for x in xs)
        df += len(xs) - 1
    return (math.sqrt(ss / df) if df else 0.0), df


# ---------------------------------------------------------------------- futility

def _robust_sd(x: list[float]) -> float:
    """1.4826 x MAD: the sd of normal data, unmoved by a few wild runs."""
    if len(x) < 2:
        return 0.0
    m = _median(x)
    return 1.4826 * _median([abs(v - m) for v in x])


def hopeless(base, head, *, paired: bool, cap: int, min_effect: float, alpha_per_test: float) -> bool:
    """True when even ``cap`` runs per side would very likely leave the metric undecided.

    From a robust spread of the runs so far it predicts the interval's half-width h at
    the cap and the current estimate's standard error s.  A regression/improvement
    stays within reach while |estimate| + s > h; "no change" while
    max(0, |estimate| - s) + h <= log(1 + e).  Neither → hopeless: stop adding runs,
    report "inconclusive (too noisy)".  Stopping early only removes looks, so the
    false-alarm budget still holds.
    """
    lb, lh = _log(base), _log(head)
    if len(lh) < 5 or len(lb) < 5:
        return False
    if paired:
        d = [h - b for b, h in zip(lb, lh)]
        sd = _robust_sd(d)
        est, se_now, se_cap = _median(d), sd / math.sqrt(len(d)), sd / math.sqrt(cap)
    else:
        sb, sh = _robust_sd(lb), _robust_sd(lh)
        est = _median(lh) - _median(lb)
        se_now = math.sqrt(sb * sb / len(lb) + sh * sh / len(lh))
        se_cap = math.sqrt(sb * sb / max(len(lb), cap) + sh * sh / cap)
    half = _z(1 - alpha_per_test) * se_cap * 1.05  # rank tests: ~95 % efficiency
    e = math.log1p(min_effect)
    can_find_change = abs(est) + 1.5 * se_now > half
    can_rule_out = max(0.0, abs(est) - 1.5 * se_now) + half <= e
    return not (can_find_change or can_rule_out)


# ---------------------------------------------------------------------- summaries

def median(values) -> float:
    """The median; NaN for no values."""
    return _median([float(v) for v in values])


def mean_sd(values) -> tuple[float, float]:
    """(mean, sample standard deviation); (NaN, NaN) for no values, sd 0 for one."""
    return _mean_sd([float(v) for v in values])


def robust_sd(values) -> float:
    return _robust_sd([float(v) for v in values])


def welch(mean_a: float, sd_a: float, n_a: int, mean_b: float, sd_b: float, n_b: int
          ) -> tuple[float, float, float, float]:
    """Welch's t-test of a − b: (difference, standard error, degrees of freedom, two-sided p).

    Fewer than two values on a side: se and df are infinite and p is 1 (nothing can be
    told); identical values on both sides: se 0 and p 0 (the difference is exact) or 1.
    """
    diff = mean_a - mean_b
    if n_a < 2 or n_b < 2:
        return diff, math.inf, math.inf, 1.0
    va, vb = sd_a * sd_a / n_a, sd_b * sd_b / n_b
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, 0.0, math.inf, (0.0 if diff != 0 else 1.0)
    df = (va + vb) ** 2 / ((va * va) / (n_a - 1) + (vb * vb) / (n_b - 1))
    return diff, se, df, 2.0 * t_sf(abs(diff) / se, df)


def cv(values) -> float:
    """Coefficient of variation (sd / mean), 0 for fewer than two values."""
    xs = [float(v) for v in values]
    if len(xs) < 2:
        return 0.0
    mu, sd = _mean_sd(xs)
    return sd / mu if mu else 0.0


# ------------------------------------------------------------------ distributions

def norm_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def norm_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def norm_ppf(p: float) -> float:
    from statistics import NormalDist

    if p <= 0.0:
        return -math.inf
    if p >= 1.0:
        return math.inf
    return NormalDist().inv_cdf(p)


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    ln_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(ln_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(ln_front) * _betacf(b, a, 1.0 - x) / b


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with ``df`` degrees of freedom (df may be fractional)."""
    if math.isinf(df):
        return norm_sf(t)
    if t == 0:
        return 0.5
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return tail if t > 0 else 1.0 - tail


def t_cdf(t: float, df: float) -> float:
    return 1.0 - t_sf(t, df)


def t_ppf(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t (Newton's method from the normal quantile, then bisection)."""
    if not 0.0 < p < 1.0:
        return -math.inf if p <= 0.0 else math.inf
    if math.isinf(df) or df > 1e7:
        return norm_ppf(p)
    if df <= 0 or math.isnan(df):
        raise ValueError(f"t quantile needs df > 0, got {df}")
    if p < 0.5:
        return -t_ppf(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:  # bracket
        lo, hi = hi, hi * 2.0
        if hi > 1e300:
            return math.inf
    x = min(max(norm_ppf(p), lo), hi)
    for _ in range(100):
        f = t_cdf(x, df) - p
        if abs(f) < 1e-15:
            break
        if f > 0:
            hi = x
        else:
            lo = x
        dens = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
                        - (df + 1) / 2 * math.log1p(x * x / df))
        step = x - f / dens if dens > 0 else (lo + hi) / 2
        x = step if lo < step < hi else (lo + hi) / 2
        if hi - lo < 1e-14 * max(1.0, abs(x)):
            break
    return x
