"""Binomial intervals that ignore clustering: Wilson and Clopper-Pearson, against
statsmodels and scipy, and inside [0, 1] where rounding would leave them outside."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from analysis.stats import clopper_pearson_interval, wilson_interval


@st.composite
def counts(draw):
    n = draw(st.integers(1, 10**6))
    # The ends are where rounding strays outside [0, 1]: drawn as often as the middle.
    k = draw(st.one_of(st.sampled_from([0, n]), st.integers(0, n)))
    level = draw(st.floats(0.5, 0.9999))
    return k, n, level


@settings(max_examples=300, deadline=None)
@given(counts())
def test_wilson_stays_in_the_unit_interval_and_equals_statsmodels(case):
    k, n, level = case
    low, high = (float(v) for v in wilson_interval(k, n, level))
    assert 0.0 <= low <= k / n <= high <= 1.0
    if k == 0:
        assert low == 0.0
    if k == n:
        assert high == 1.0
    ref_low, ref_high = proportion_confint(k, n, alpha=1 - level, method="wilson")
    assert low == pytest.approx(ref_low, abs=1e-12)
    assert high == pytest.approx(ref_high, abs=1e-12)


@settings(max_examples=300, deadline=None)
@given(counts())
def test_clopper_pearson_stays_in_the_unit_interval_and_equals_statsmodels(case):
    k, n, level = case
    low, high = (float(v) for v in clopper_pearson_interval(k, n, level))
    assert 0.0 <= low <= k / n <= high <= 1.0
    assert (low == 0.0) == (k == 0) and (high == 1.0) == (k == n)
    ref_low, ref_high = proportion_confint(k, n, alpha=1 - level, method="beta")
    assert low == pytest.approx(ref_low, abs=1e-12)
    assert high == pytest.approx(ref_high, abs=1e-12)


def test_wilson_ends_are_exact_where_the_formula_rounds_past_them():
    # k = 0 and k = n over many n: the unclamped formula gives bounds like -3e-18 for some.
    n = np.arange(1, 4001)
    for k in (np.zeros_like(n), n):
        low, high = wilson_interval(k, n)
        assert ((low >= 0) & (high <= 1)).all()
    assert (wilson_interval(np.zeros_like(n), n)[0] == 0).all()
    assert (wilson_interval(n, n)[1] == 1).all()


def test_clopper_pearson_golden_values():
    low, high = clopper_pearson_interval(400, 1000, 0.95)
    assert (round(float(low), 6), round(float(high), 6)) == (0.369469, 0.431122)
    exact = stats.binomtest(400, 1000).proportion_ci(confidence_level=0.95, method="exact")
    assert float(low) == pytest.approx(exact.low, abs=1e-12)
    assert float(high) == pytest.approx(exact.high, abs=1e-12)


def test_clopper_pearson_is_elementwise_with_exact_ends_and_nan_without_trials():
    k = np.array([0, 10, 3, 0, 5])
    n = np.array([10, 10, 7, 0, 0])
    low, high = clopper_pearson_interval(k, n, 0.9)
    ref_low, ref_high = proportion_confint(k[:3], n[:3], alpha=0.1, method="beta")
    np.testing.assert_allclose(low[:3], ref_low, rtol=0, atol=1e-12)
    np.testing.assert_allclose(high[:3], ref_high, rtol=0, atol=1e-12)
    assert low[0] == 0.0 and high[1] == 1.0
    assert np.isnan(low[3:]).all() and np.isnan(high[3:]).all()
    wilson_low, wilson_high = wilson_interval(k, n, 0.9)
    assert np.isnan(wilson_low[3:]).all() and np.isnan(wilson_high[3:]).all()


def test_clopper_pearson_is_wider_than_wilson_in_the_middle():
    # The exact interval is conservative: it contains the Wilson interval away from the ends.
    low, high = clopper_pearson_interval(400, 1000)
    wilson_low, wilson_high = wilson_interval(400, 1000)
    assert low < wilson_low and wilson_high < high
