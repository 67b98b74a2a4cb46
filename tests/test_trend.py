"""The leak verdict on synthetic series: known trends, known look-alikes, and the
statistics checked against scipy."""

from __future__ import annotations

import math
import random

import pytest

from perfkit.leaks import trend
from perfkit.leaks.trend import INCONCLUSIVE, LEAK, STEADY, assess

MIB = 1024 * 1024


def series(fn, seconds=15.0, interval=0.2):
    n = int(seconds / interval) + 1
    return [(i * interval, fn(i * interval)) for i in range(n)]


def test_linear_count_growth_is_a_leak_with_the_right_slope():
    v = assess("fds", series(lambda t: 10 + int(5 * t)))
    assert v.verdict == LEAK
    assert v.slope.slope == pytest.approx(5.0, rel=0.05)
    assert v.slope.low <= 5.0 <= v.slope.high + 0.2
    assert v.hwm_rising


def test_memory_growth_with_noise_is_a_leak():
    rnd = random.Random(3)
    v = assess("memory", series(lambda t: 50 * MIB + 1 * MIB * t + rnd.gauss(0, 300_000)))
    assert v.verdict == LEAK
    assert v.slope.slope == pytest.approx(MIB, rel=0.1)


def test_constant_is_steady():
    assert assess("threads", series(lambda t: 8)).verdict == STEADY


def test_bounded_cache_filling_then_plateau_is_not_a_leak():
    v = assess("memory", series(lambda t: 20 * MIB + min(t, 5.0) * 4 * MIB))
    assert v.verdict != LEAK
    assert not v.hwm_rising


def test_sawtooth_is_not_a_leak():
    v = assess("memory", series(lambda t: 20 * MIB + (t % 2.0) * 12 * MIB))
    assert v.verdict == STEADY


def test_one_off_step_mid_window_is_not_a_leak():
    v = assess("threads", series(lambda t: 4 if t < 7 else 8))
    assert v.verdict != LEAK


def test_step_late_in_the_window_is_not_a_leak():
    v = assess("fds", series(lambda t: 10 if t < 13 else 30))
    assert v.verdict != LEAK


@pytest.mark.parametrize("seed", range(20))
def test_bursts_are_never_a_leak(seed):
    rnd = random.Random(seed)
    bursts = sorted(rnd.uniform(0, 15) for _ in range(6))

    def f(t):
        return 4 + sum(rnd.randint(4, 10) for b in bursts if b <= t < b + 0.3)

    assert assess("threads", series(f)).verdict != LEAK


@pytest.mark.parametrize("seed", range(20))
def test_random_walk_free_noise_is_never_a_leak(seed):
    rnd = random.Random(seed)
    assert assess("memory", series(lambda t: 40 * MIB + rnd.gauss(0, 2 * MIB))).verdict != LEAK


def test_too_few_samples_is_inconclusive():
    v = assess("fds", [(0, 1), (1, 2), (2, 3)])
    assert v.verdict == INCONCLUSIVE
    assert "time bins" in v.reasons[0]
    assert assess("fds", [(0, 1)]).verdict == INCONCLUSIVE


def test_growth_below_the_minimum_rate_is_steady():
    # 1 fd per minute over 15 s: real but below 0.02/s... it is 0.0167/s
    v = assess("fds", series(lambda t: 10 + int(t / 60.0 * 4) if t > 0 else 10))
    assert v.verdict != LEAK


def test_theil_sen_matches_scipy():
    from scipy.stats import theilslopes

    rnd = random.Random(7)
    xs = [float(i) for i in range(40)]
    ys = [2.5 * x + rnd.gauss(0, 4) for x in xs]
    ours = trend.theil_sen(xs, ys, confidence=0.95)
    ref = theilslopes(ys, xs, alpha=0.95)
    assert ours.slope == pytest.approx(ref.slope)
    # Sen's interval without correction agrees with scipy's to within one ranked slope
    assert ours.low == pytest.approx(ref.low_slope, rel=0.05)
    assert ours.high == pytest.approx(ref.high_slope, rel=0.05)


def test_mann_kendall_matches_the_textbook_for_independent_data():
    from scipy.stats import kendalltau

    rnd = random.Random(11)
    xs = [float(i) for i in range(30)]
    ys = [0.3 * x + rnd.gauss(0, 3) for x in xs]
    mk = trend.mann_kendall(xs, ys, 0.0)
    tau = kendalltau(xs, ys)
    assert mk.tau == pytest.approx(tau.statistic, abs=1e-9)
    assert mk.var_s_raw == pytest.approx(30 * 29 * 65 / 18)


def test_hamed_rao_inflates_variance_for_autocorrelated_noise():
    rnd = random.Random(5)
    y, prev = [], 0.0
    for _ in range(60):
        prev = 0.9 * prev + rnd.gauss(0, 1)
        y.append(prev)
    xs = [float(i) for i in range(60)]
    assert trend.hamed_rao_correction(xs, y, 0.0) > 1.5
    white = [rnd.gauss(0, 1) for _ in range(60)]
    assert trend.hamed_rao_correction(xs, white, 0.0) < 1.5


def test_time_to_limit():
    assert trend.time_to_limit(100, 10, 1100) == pytest.approx(100)
    assert trend.time_to_limit(100, 0, 1100) is None
    assert trend.time_to_limit(100, 10, None) is None


def test_verdict_json_is_finite():
    import json

    v = assess("fds", series(lambda t: 10 + int(5 * t)))
    doc = v.to_json()
    json.dumps(doc, allow_nan=False)
    assert doc["thresholds"]["alpha"] == 0.01
    assert all(not (isinstance(x, float) and math.isnan(x)) for x in doc["high_water_marks"])


def test_cache_still_filling_for_most_of_the_window_is_inconclusive():
    v = assess("memory", series(lambda t: 20 * MIB + min(t, 11.0) * 2 * MIB))
    assert v.verdict == INCONCLUSIVE
    assert any("still filling" in r for r in v.reasons)
