"""The calibration interval: CGM with small-sample factors, against the two-way bootstrap.

With real images on both sides there is no prompt or annotator effect, only judgment
noise, which the pigeonhole bootstrap counts three times (Owen 2007); the calibration
interval must be about as wide as a binomial one there, and still cover where prompt
and annotator effects exist. The full table is `bench/calibration_coverage.py`.
"""

from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from analysis.stats import CALIBRATION, calibration_rate, simulate_study
from analysis.stats.sandwich import two_way_interval

STUDIES = 400


def _calibration_study(seed, n_judgments=2000):
    return simulate_study([0.5], identical=[True], n_items=200, n_annotators=30, n_judgments=n_judgments,
                          calibration_share=1.0, seed=seed).judgments


def _as_calibration(judgments):
    # Generated trials relabelled as calibration ones: a calibration set that has
    # prompt and annotator effects, with a known marginal truth.
    return replace(judgments, kind=np.full(len(judgments), CALIBRATION), generator=np.full(len(judgments), -1))


def test_the_interval_is_cgm_with_small_sample_factors_and_a_t_quantile():
    interval = two_way_interval([0.5, 0.4], [2e-4, 1e-4], [1e-4, 1e-4], [1e-4, 5e-5], [11, 100], [5, 20])
    variance = np.array([11 / 10 * 2e-4 + 5 / 4 * 1e-4 - 1e-4, 100 / 99 * 1e-4 + 20 / 19 * 1e-4 - 5e-5])
    np.testing.assert_allclose(interval.variance, variance)
    np.testing.assert_array_equal(interval.df, [4, 19])
    q = stats.t.ppf(0.975, [4, 19])
    np.testing.assert_allclose(interval.high - interval.low, 2 * q * np.sqrt(variance))
    assert not interval.fallback.any()


def test_a_negative_two_way_variance_falls_back_to_the_larger_one_way_one():
    interval = two_way_interval(0.5, 1e-4, 3e-4, 9e-4, 50, 10)
    assert interval.fallback[0]
    assert interval.variance[0] == pytest.approx(10 / 9 * 3e-4)
    # Too few prompts or annotators: no variance at all, rather than a made-up one.
    assert np.isnan(two_way_interval(0.5, 1e-4, 1e-4, 1e-5, 1, 10).se[0])


def test_calibration_uses_the_fallback_and_says_so(monkeypatch):
    judgments = _calibration_study(3, n_judgments=400)
    assert calibration_rate(judgments, n_boot=100).method == "cgm-t"

    import analysis.stats.calibration as module

    real = module.two_way_interval

    def swamped(estimate, var_item, var_annotator, var_cell, *rest):
        return real(estimate, var_item, var_annotator, var_cell * 10, *rest)

    monkeypatch.setattr(module, "two_way_interval", swamped)
    fallback = calibration_rate(judgments, n_boot=100)
    table = fallback.table
    assert fallback.method == "cgm-t one-way"
    one_way = max(table.n_items[0] / (table.n_items[0] - 1) * table.var_item[0],
                  table.n_annotators[0] / (table.n_annotators[0] - 1) * table.var_annotator[0])
    q = stats.t.ppf(0.975, min(table.n_items[0], table.n_annotators[0]) - 1)
    assert fallback.df == min(table.n_items[0], table.n_annotators[0]) - 1
    assert table.high[0] - table.rate[0] == pytest.approx(q * np.sqrt(one_way))
    assert fallback.covers_half == (table.low[0] <= 0.5 <= table.high[0])


def test_the_calibration_interval_is_about_binomial_without_effects_and_covers():
    covered, width, wilson, boot = [], [], [], []
    for seed in range(STUDIES):
        calibration = calibration_rate(_calibration_study(seed), n_boot=200, seed=seed)
        table = calibration.table
        covered.append(calibration.covers_half)
        width.append(table.high[0] - table.low[0])
        wilson.append(table.wilson_high[0] - table.wilson_low[0])
        boot.append(calibration.boot_high - calibration.boot_low)
    assert 0.92 <= np.mean(covered) <= 0.99
    assert np.mean(width) <= 1.3 * np.mean(wilson)
    # The cause: the bootstrap's variance is about three times the binomial one.
    assert np.mean(boot) >= 1.5 * np.mean(wilson)


def test_the_calibration_interval_covers_with_prompt_and_annotator_effects():
    covered = []
    for seed in range(STUDIES // 2):
        study = simulate_study([0.5], n_items=200, n_annotators=30, n_judgments=2000, item_sd=1.0,
                               annotator_sd=0.5, seed=seed)
        calibration = calibration_rate(_as_calibration(study.judgments), n_boot=100, seed=seed)
        covered.append(calibration.covers_half)
    assert np.mean(covered) >= 0.92


def test_a_miscalibrated_instrument_is_flagged_far_more_often_than_the_bootstrap_would():
    studies = 40
    flagged = boot_flagged = 0
    for seed in range(studies):
        judgments = _calibration_study(seed)
        chose = np.random.default_rng(seed).random(len(judgments)) < 0.465
        judgments = replace(judgments, chose_generated=chose, chose_left=chose == judgments.generated_left)
        calibration = calibration_rate(judgments, n_boot=200, seed=seed)
        flagged += not calibration.covers_half
        boot_flagged += not calibration.boot_low <= 0.5 <= calibration.boot_high
    assert flagged >= 0.7 * studies
    assert flagged >= boot_flagged + 0.25 * studies


def test_one_prompt_gives_no_interval_rather_than_one_that_ignores_prompts():
    """With one prompt the CGM variance is exactly zero and the bootstrap resamples
    annotators only: no interval, a flag, and no verdict on 0.5 either way."""
    judgments = _calibration_study(2, n_judgments=200)
    judgments = replace(judgments, item=np.zeros(len(judgments), dtype=np.int64))
    calibration = calibration_rate(judgments, n_boot=100)
    assert calibration.method == "none" and np.isnan(calibration.df)
    assert np.isnan(calibration.table.low[0]) and np.isnan(calibration.table.high[0])
    assert "single_cluster" in calibration.table.flags[0]
    assert calibration.covers_half is None


def test_a_calibration_where_every_judgment_chose_the_probe_has_no_zero_width_interval():
    judgments = _calibration_study(3, n_judgments=200)
    chose = np.ones(len(judgments), bool)
    judgments = replace(judgments, chose_generated=chose, chose_left=chose == judgments.generated_left)
    calibration = calibration_rate(judgments, n_boot=100)
    assert "no_variation" in calibration.table.flags[0]
    assert calibration.method == "none" and calibration.covers_half is None
    # The exact test of the raw share still says what the data say.
    assert calibration.p_value < 1e-10
