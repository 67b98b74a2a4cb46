"""perfkit.stats against scipy (a test-only dependency): distributions and summaries."""

from __future__ import annotations

import math

import pytest

from perfkit import stats

scipy_stats = pytest.importorskip("scipy.stats")


@pytest.mark.parametrize("df", [1, 1.5, 2, 3, 4.7, 5, 8, 10, 19, 30, 57.3, 120, 1000])
@pytest.mark.parametrize("q", [0.5, 0.6, 0.9, 0.95, 0.975, 0.99, 0.995, 0.9995, 0.025, 0.001])
def test_t_quantile_matches_scipy(df, q):
    want = float(scipy_stats.t.ppf(q, df))
    assert stats.t_ppf(q, df) == pytest.approx(want, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("df", [1, 2.5, 7, 30, 300])
@pytest.mark.parametrize("t", [-6.0, -2.1, -0.3, 0.0, 0.7, 1.96, 3.3, 12.0])
def test_t_tails_match_scipy(df, t):
    assert stats.t_sf(t, df) == pytest.approx(float(scipy_stats.t.sf(t, df)), rel=1e-9, abs=1e-15)
    assert stats.t_cdf(t, df) == pytest.approx(float(scipy_stats.t.cdf(t, df)), rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("p", [1e-9, 0.001, 0.025, 0.3, 0.5, 0.8, 0.975, 0.999999])
def test_normal_matches_scipy(p):
    assert stats.norm_ppf(p) == pytest.approx(float(scipy_stats.norm.ppf(p)), rel=1e-9)
    z = stats.norm_ppf(p)
    assert stats.norm_sf(z) == pytest.approx(float(scipy_stats.norm.sf(z)), rel=1e-9)


def test_welch_matches_scipy():
    a = [10.1, 9.8, 10.4, 10.0, 9.9, 10.3]
    b = [10.9, 11.2, 10.7, 11.0, 11.4]
    ma, sa = stats.mean_sd(a)
    mb, sb = stats.mean_sd(b)
    diff, se, df, p = stats.welch(ma, sa, len(a), mb, sb, len(b))
    ref = scipy_stats.ttest_ind(a, b, equal_var=False)
    assert diff / se == pytest.approx(float(ref.statistic), rel=1e-9)
    assert p == pytest.approx(float(ref.pvalue), rel=1e-7)


def test_summaries_on_empty_and_small_inputs():
    assert math.isnan(stats.median([]))
    assert stats.median([3]) == 3 and stats.median([1, 5]) == 3
    m, sd = stats.mean_sd([])
    assert math.isnan(m) and math.isnan(sd)
    assert stats.mean_sd([4.0]) == (4.0, 0.0)
    assert stats.cv([1.0]) == 0.0
    diff, se, df, p = stats.welch(1.0, 0.0, 1, 2.0, 0.0, 1)
    assert math.isinf(se) and p == 1.0
