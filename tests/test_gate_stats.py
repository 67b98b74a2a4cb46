"""Gate statistics: exact rank distributions, intervals and decisions (pure, fast)."""

from __future__ import annotations

import math
import random

import pytest

from perfkit import stats


def test_signed_rank_cdf_exact_small_n():
    cdf = stats._signed_rank_cdf(5)
    assert cdf[0] == pytest.approx(1 / 32)
    assert cdf[1] == pytest.approx(2 / 32)
    assert cdf[-1] == pytest.approx(1.0)
    # symmetric: P(T <= k) = 1 - P(T <= N-k-1)
    n_max = 15
    for k in range(n_max):
        assert cdf[k] == pytest.approx(1 - cdf[n_max - k - 1])


def test_signed_rank_cdf_matches_scipy():
    from scipy.stats import wilcoxon

    d = [0.5, -0.2, 0.9, 1.1, 0.3, -0.4, 0.8, 0.7]
    ours = stats._signed_rank_cdf(len(d))
    ranks = sorted(range(len(d)), key=lambda i: abs(d[i]))
    t_minus = sum(r + 1 for r, i in enumerate(ranks) if d[i] < 0)
    p_scipy = wilcoxon(d, alternative="greater", method="exact").pvalue
    assert ours[t_minus] == pytest.approx(p_scipy)


def test_identical_runs_are_no_change_with_t():
    iv = stats.ratio_interval([100.0] * 3, [100.0] * 3, paired=True, method="t", alpha_per_test=0.001)
    assert iv.ratio == iv.lo == iv.hi == pytest.approx(1.0)
    assert stats.decide(iv, 0.01) == stats.NO_CHANGE


def test_deterministic_increase_is_a_regression_with_three_runs():
    iv = stats.ratio_interval([1000, 1001, 1000], [1020, 1021, 1020], paired=True, method="t",
                              alpha_per_test=0.001)
    assert iv.ratio == pytest.approx(1.02, abs=1e-3)
    assert stats.decide(iv, 0.01) == stats.REGRESSION


def test_rank_with_too_few_pairs_is_inconclusive_not_a_guess():
    iv = stats.ratio_interval([1, 1, 1], [2, 2, 2], paired=True, method="rank", alpha_per_test=0.005)
    assert math.isinf(iv.hi)
    assert stats.decide(iv, 0.03) == stats.INCONCLUSIVE


def test_decide_rules():
    mk = lambda r, lo, hi: stats.Interval(r, lo, hi, "x", 0.99)  # noqa: E731
    assert stats.decide(mk(1.10, 1.02, 1.18), 0.03) == stats.REGRESSION
    assert stats.decide(mk(1.02, 1.01, 1.03), 0.03) == stats.NO_CHANGE  # real but smaller than the minimum
    assert stats.decide(mk(1.02, 1.005, 1.06), 0.03) == stats.INCONCLUSIVE
    assert stats.decide(mk(0.90, 0.85, 0.95), 0.03) == stats.IMPROVEMENT
    assert stats.decide(mk(1.0, 0.8, 1.2), 0.03) == stats.INCONCLUSIVE


def _lognormal(rng, n, mu, cv):
    return [math.exp(rng.gauss(math.log(mu), cv)) for _ in range(n)]


@pytest.mark.parametrize("paired,method", [(True, "rank"), (False, "rank"), (True, "t"), (False, "t")])
def test_false_alarm_rate_under_null_is_within_budget(paired, method):
    rng = random.Random(1234)
    alarms = 0
    trials = 300
    for _ in range(trials):
        base, head = _lognormal(rng, 20, 1.0, 0.10), _lognormal(rng, 20, 1.0, 0.10)
        iv = stats.ratio_interval(base, head, paired=paired, method=method, alpha_per_test=0.05)
        alarms += stats.decide(iv, 0.0) == stats.REGRESSION
    assert alarms / trials <= 0.05 + 0.03  # alpha 5 % one-sided, plus sampling slack


@pytest.mark.parametrize("paired,method", [(True, "rank"), (False, "rank")])
def test_large_slowdown_detected_in_noise(paired, method):
    rng = random.Random(99)
    hits = 0
    for _ in range(50):
        base, head = _lognormal(rng, 30, 1.0, 0.10), _lognormal(rng, 30, 1.3, 0.10)
        iv = stats.ratio_interval(base, head, paired=paired, method=method, alpha_per_test=0.05 / 18)
        hits += stats.decide(iv, 0.03) == stats.REGRESSION
    assert hits >= 48


def test_hodges_lehmann_is_robust_to_one_wild_outlier():
    base = [1.0] * 12
    head = [1.1] * 11 + [50.0]
    iv = stats.ratio_interval(base, head, paired=True, method="rank", alpha_per_test=0.005)
    assert iv.ratio == pytest.approx(1.1, rel=1e-6)


def test_futility_stops_hopeless_metrics_but_not_real_effects():
    a = 0.05 / 18
    # centred on no change but +-20..50 % from run to run: neither a change nor its absence
    # can be shown with 30 pairs
    wild = [math.exp(x) for x in (0.4, -0.4, 0.3, -0.3, 0.5, -0.5, 0.2, -0.2, 0.45, -0.45)]
    assert stats.hopeless([1.0] * 10, wild, paired=True, cap=30, min_effect=0.05, alpha_per_test=a)
    assert not stats.hopeless([1.0] * 10, wild, paired=True, cap=3000, min_effect=0.05, alpha_per_test=a)
    rng = random.Random(7)
    slowed = sum(stats.hopeless(_lognormal(rng, 10, 1.0, 0.07), _lognormal(rng, 10, 1.1, 0.07), paired=True,
                                cap=30, min_effect=0.03, alpha_per_test=a) for _ in range(50))
    assert slowed <= 3  # a +10 % effect in 7 % noise is worth more runs


def test_profiled_files_are_named_relative_to_the_run_directory(tmp_path):
    """Base and head run in different checkouts: bench.py:hot must compare as itself."""
    from perfkit.gate.bench import relative_files
    from perfkit.model import SAMPLES, Frame, Profile, Sample

    root = tmp_path / "base"
    frames = [Frame("hot", str(root / "bench.py"), 4), Frame("dumps", "/usr/lib/python3.11/json/__init__.py", 231),
              Frame("x", str(tmp_path / "base2" / "y.py"), 1)]
    prof = Profile(frames=frames, sample_types=[SAMPLES], samples=[Sample(stack=(0, 1, 2), values=(3,))])
    out = relative_files(prof, str(root))
    assert [f.file for f in out.frames] == ["bench.py", "/usr/lib/python3.11/json/__init__.py",
                                            str(tmp_path / "base2" / "y.py")]
    assert out.samples == prof.samples and prof.frames[0].file == str(root / "bench.py")  # input untouched


def test_share_of_each_run_py_spy_saw_and_the_note_when_it_is_low():
    from perfkit.gate import explain
    from perfkit.model import Profile, Recording

    def run(seen_s: float | None, wall_s: float | None) -> Profile:
        return Profile([], [], [], recording=Recording(duration_s=seen_s,
                                                     program=None if wall_s is None else {"wall_s": wall_s}))

    # py-spy sampled 0.06 of 0.09 s, 0.08 of 0.10 s and 0.9 of 1.0 s: median 0.8
    runs = [run(0.06, 0.09), run(0.08, 0.10), run(0.9, 1.0)]
    assert explain.seen_share(runs) == pytest.approx(0.8)
    assert explain.seen_share([run(None, None), run(0.5, None)]) is None  # stored profiles: not known
    assert explain.seen_share([run(1.2, 1.0)]) == 1.0  # rounding never makes it more than all
    note = explain.coverage_note(0.8, 0.95)
    assert note and note.startswith("py-spy saw 80% of each base run and 95% of each head run (median)")
    assert explain.coverage_note(None, 0.6).startswith("py-spy saw 60% of each head run")
    assert explain.coverage_note(0.9, 0.86) is None and explain.coverage_note(None, None) is None
