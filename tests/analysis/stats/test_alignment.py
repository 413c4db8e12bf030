"""Rank correlations between human preference rates and automatic metrics."""

import numpy as np
import pytest
from scipy import stats

from analysis.stats import kendall_rows, metric_alignment, preference_rates, simulate_study, spearman_rows


def test_rank_correlations_match_scipy_with_ties():
    rng = np.random.default_rng(1)
    X = rng.integers(0, 6, size=(40, 12)).astype(float)
    Y = X + rng.integers(-3, 4, size=X.shape)
    spearman, kendall = spearman_rows(X, Y), kendall_rows(X, Y, chunk=7)
    for row in range(len(X)):
        assert spearman[row] == pytest.approx(stats.spearmanr(X[row], Y[row]).statistic, abs=1e-9)
        assert kendall[row] == pytest.approx(stats.kendalltau(X[row], Y[row]).statistic, abs=1e-9)


@pytest.fixture(scope="module")
def rates():
    truth = np.linspace(0.15, 0.48, 8)
    study = simulate_study(truth, n_items=300, n_annotators=60, n_judgments=16000, seed=9)
    return preference_rates(study.judgments, n_boot=500)


def test_alignment_with_a_metric_that_tracks_the_rate(rates):
    fid = 40 - 60 * np.linspace(0.15, 0.48, 8)  # lower is better
    noise = np.random.default_rng(0).normal(size=8)
    result = metric_alignment(rates, {"fid": fid, "noise": noise, "sparse": [1.0, 2.0] + [np.nan] * 6})
    fid_result = result["fid"]
    assert fid_result.n == 8
    assert fid_result.spearman == pytest.approx(stats.spearmanr(rates.rate, fid).statistic, abs=1e-12)
    assert fid_result.kendall == pytest.approx(stats.kendalltau(rates.rate, fid).statistic, abs=1e-12)
    assert fid_result.spearman < -0.9 and fid_result.spearman_high < 0
    assert fid_result.spearman_low <= fid_result.spearman_judgment_low
    assert fid_result.kendall_low <= fid_result.kendall <= fid_result.kendall_high
    assert result["noise"].spearman_low < 0 < result["noise"].spearman_high
    assert result["sparse"].n == 2 and np.isnan(result["sparse"].spearman)


def test_a_metric_equal_for_every_generator_has_no_correlation_and_no_interval(rates):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy warns on a constant input; nothing here may
        result = metric_alignment(rates, {"flat": np.full(8, 3.0)})["flat"]
    assert result.n == 8
    assert all(np.isnan(getattr(result, field)) for field in (
        "spearman", "spearman_p", "spearman_low", "spearman_high", "kendall", "kendall_low", "kendall_high"))
