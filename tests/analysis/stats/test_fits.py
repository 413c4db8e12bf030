"""Scaling fits recover known curves from simulated judgments and losses."""

from itertools import product

import numpy as np
import pytest
from scipy import optimize, stats

from analysis.stats import (
    CurveFit,
    cluster_variance,
    compare_forms,
    fit_loss_curve,
    fit_parity_curve,
    lbfgs,
    preference_rates,
    series_counts,
    simulate_study,
    two_way_sums,
    x_at_gap,
)
from analysis.stats.fits import NotFitted, _Binomial
from analysis.stats.forms import FORMS
from analysis.stats.series import series_cells
from analysis.stats.series import two_way_rates as _two_way_rates

SCALES = np.array([1e7, 3e7, 1e8, 3e8, 1e9, 3e9])
A, ALPHA = 44.0, 0.3


def simulated_series(rates, seed, n_items=400):
    study = simulate_study(rates, n_items=n_items, n_annotators=60, n_judgments=2000 * len(rates), seed=seed)
    return series_counts(study.judgments, np.arange(len(rates)))


@pytest.fixture(scope="module")
def saturating_series():
    return simulated_series(0.5 - A * SCALES**-ALPHA, seed=3)


def test_saturating_fit_recovers_the_known_curve_within_its_intervals(saturating_series):
    wins, totals = saturating_series
    fit = fit_parity_curve(SCALES, wins, totals, form="saturating", n_boot=400, targets=(0.05, 0.01))
    for name, truth in (("A", A), ("alpha", ALPHA)):
        low, high = fit.intervals[name]
        assert low <= truth <= high, name
    assert fit.params["alpha"] == pytest.approx(ALPHA, abs=0.05)
    for target in (0.05, 0.01):
        x, low, high = fit.x_at_gap[target]
        truth = (A / target) ** (1 / ALPHA)
        assert low <= truth <= high and low < x < high
    assert fit.boot_converged > 0.95
    assert fit.replicates["A"].shape == (400,)
    np.testing.assert_allclose(fit.predict(SCALES), 0.5 - fit.params["A"] * SCALES ** -fit.params["alpha"])


def test_free_asymptote_includes_parity_and_the_forms_compare(saturating_series):
    wins, totals = saturating_series
    free = fit_parity_curve(SCALES, wins, totals, form="free", n_boot=300)
    low, high = free.intervals["p_inf"]
    assert low <= 0.5 <= high
    saturating = fit_parity_curve(SCALES, wins, totals, n_boot=0)
    comparison = compare_forms(saturating, free)
    assert comparison["df"] == 1 and comparison["p_value"] > 0.01
    assert comparison["delta_qaic"] == pytest.approx(saturating.qaic() - free.qaic())
    assert compare_forms(saturating, free, dispersion=2.0)["lr"] == pytest.approx(comparison["lr"] / 2)


def test_the_quasi_aic_divides_the_likelihood_by_the_lr_tests_dispersion(saturating_series):
    wins, totals = saturating_series
    saturating = fit_parity_curve(SCALES, wins, totals, n_boot=0)
    free = fit_parity_curve(SCALES, wins, totals, form="free", n_boot=0)
    delta_aic = compare_forms(saturating, free)["delta_qaic"]  # dispersion 1: the AIC difference
    assert delta_aic == pytest.approx(2 * (saturating.objective - free.objective) - 2)
    for dispersion in (1.5, 3.0):
        comparison = compare_forms(saturating, free, dispersion=dispersion)
        # Only the likelihood part is divided; the penalty of the extra parameter stays 2.
        assert comparison["delta_qaic"] == pytest.approx((delta_aic + 2) / dispersion - 2)
        assert saturating.qaic(dispersion) == pytest.approx(2 * saturating.objective / dispersion + 4)


def test_with_clustered_judgments_the_quasi_aic_favours_a_wrong_free_form_no_more_than_chance():
    """The saturating form is true and prompts and annotators make judgments correlated.
    Under it, lr / dispersion is about chi-square(1), so ΔQAIC > 0 (lr / dispersion > 2)
    has probability P(chi2_1 > 2) = 0.157; the binomial AIC ignores the clustering."""
    scales = np.array([1e6, 1e7, 1e8, 1e9, 1e10])
    rates = 0.5 - 0.3 * (scales / 1e6) ** -0.25
    free_by_qaic = free_by_aic = 0
    reps = 40
    for seed in range(reps):
        study = simulate_study(rates, n_items=60, n_annotators=30, n_judgments=3000, item_sd=1.0,
                               annotator_sd=0.5, seed=100 + seed)
        wins, totals = series_counts(study.judgments, np.arange(len(rates)))
        saturating = fit_parity_curve(scales, wins, totals, n_boot=0)
        free = fit_parity_curve(scales, wins, totals, form="free", n_boot=0)
        dispersion = max(1.0, float(np.nanmean(preference_rates(study.judgments, n_boot=0).design_effect)))
        free_by_qaic += compare_forms(saturating, free, dispersion=dispersion)["delta_qaic"] > 0
        free_by_aic += compare_forms(saturating, free)["delta_qaic"] > 0
    expected = stats.chi2.sf(2, 1)
    assert free_by_qaic / reps <= expected + 2.5 * np.sqrt(expected * (1 - expected) / reps)
    assert free_by_aic / reps > expected  # the clustering is strong enough to mislead the plain AIC
    assert free_by_qaic <= free_by_aic


@pytest.mark.parametrize("points", [2, 3])
def test_the_free_form_is_not_fitted_below_four_distinct_scale_values(points):
    scales = SCALES[:points]
    wins, totals = simulated_series(0.5 - A * scales**-ALPHA, seed=7, n_items=200)
    result = fit_parity_curve(scales, wins, totals, form="free", n_boot=50)
    assert isinstance(result, NotFitted)
    assert (result.reason, result.n_distinct, result.needed) == ("not_identified", points, 4)
    assert result.message == (
        f"the free-asymptote form needs at least 4 distinct scale values; this series has {points}")
    # Repeated scale values do not count twice.
    doubled = fit_parity_curve(np.repeat(scales, 2), np.repeat(wins, 2, axis=0), np.repeat(totals, 2, axis=0),
                               form="free", n_boot=0)
    assert isinstance(doubled, NotFitted) and doubled.n_distinct == points
    assert isinstance(fit_parity_curve(scales, wins, totals, n_boot=0), CurveFit)


def test_the_free_form_is_fitted_from_four_distinct_scale_values():
    scales = SCALES[:4]
    wins, totals = simulated_series(0.5 - A * scales**-ALPHA, seed=7, n_items=200)
    fit = fit_parity_curve(scales, wins, totals, form="free", n_boot=50)
    assert isinstance(fit, CurveFit) and set(fit.params) == {"A", "alpha", "p_inf"}


def test_free_asymptote_below_parity_is_found():
    scales = np.array([1e7, 1e8, 1e9, 1e10, 1e11])
    wins, totals = simulated_series(0.45 - A * scales**-ALPHA, seed=4, n_items=1000)
    free = fit_parity_curve(scales, wins, totals, form="free", n_boot=300)
    low, high = free.intervals["p_inf"]
    assert low <= 0.45 <= high < 0.5
    assert free.x_at_gap[0.01][0] == np.inf
    saturating = fit_parity_curve(scales, wins, totals, n_boot=0)
    assert compare_forms(saturating, free)["p_value"] < 0.01


def test_a_far_off_asymptote_stays_a_rate_and_is_flagged_not_identified():
    """Rates that climb steadily and far from any asymptote: unbounded, p_inf ran off to
    about 26 with a vanishing exponent; on the logit scale it runs off to 1 instead, where
    the information about it vanishes: flagged, and no interval."""
    scales = np.array([1e6, 1e7, 1e8, 1e9])
    wins, totals = simulated_series(np.array([0.15, 0.25, 0.35, 0.45]), seed=5, n_items=300)
    free = fit_parity_curve(scales, wins, totals, form="free", n_boot=50)
    assert 0 < free.params["p_inf"] <= 1
    assert "not_identified" in free.flags
    assert all(np.isnan(v) for bounds in free.intervals.values() for v in bounds)
    assert all(np.isnan(low) and np.isnan(high) for _, low, high in free.x_at_gap.values())
    # The saturating form on the same data is identified and keeps its intervals.
    saturating = fit_parity_curve(scales, wins, totals, n_boot=50)
    assert saturating.flags == ()
    low, high = saturating.intervals["alpha"]
    assert low < saturating.params["alpha"] < high


def test_joint_gap_recovers_both_axes():
    N, D = np.array(list(product([1e6, 1e7, 1e8, 1e9], [1e6, 1e7, 1e8, 1e9]))).T
    truth = {"A": 5.0, "alpha": 0.3, "B": 10.0, "beta": 0.35}
    rates = 0.5 - truth["A"] * N ** -truth["alpha"] - truth["B"] * D ** -truth["beta"]
    wins, totals = simulated_series(rates, seed=6, n_items=1000)
    fit = fit_parity_curve(np.stack([N, D], axis=1), wins, totals, form="joint_gap", n_boot=300)
    for name, value in truth.items():
        low, high = fit.intervals[name]
        assert low <= value <= high, name
    assert fit.x_at_gap == {}


def test_binomial_optimum_matches_scipy(saturating_series):
    wins, totals = saturating_series
    fit = fit_parity_curve(SCALES, wins, totals, n_boot=0)
    logx = (np.log(SCALES) - np.log(SCALES).mean())[:, None]
    objective = _Binomial(FORMS["saturating"], logx, wins.sum(axis=1), totals.sum(axis=1), np.zeros(1, np.int64))

    def scalar(theta):
        value, gradient = objective(theta[None], np.zeros(1, np.int64))
        return value[0], gradient[0]

    reference = optimize.minimize(scalar, x0=[np.log(0.1), 0.5], jac=True, method="L-BFGS-B",
                                  options={"ftol": 1e-15, "gtol": 1e-12})
    np.testing.assert_allclose(fit.theta, reference.x, rtol=1e-5, atol=1e-6)
    assert fit.objective == pytest.approx(reference.fun, rel=1e-9)


def test_batched_lbfgs_solves_independent_problems():
    # Rosenbrock functions with a different minimum per row: (a, a^2).
    a = np.array([1.0, -0.5, 2.0, 0.3])

    def rosenbrock(x, rows):
        x0, x1 = x[:, 0], x[:, 1]
        ai = a[rows]
        value = (ai - x0) ** 2 + 100 * (x1 - x0**2) ** 2
        gradient = np.stack([-2 * (ai - x0) - 400 * x0 * (x1 - x0**2), 200 * (x1 - x0**2)], axis=1)
        return value, gradient

    result = lbfgs(rosenbrock, np.tile([-1.2, 1.0], (4, 1)), gtol=1e-10)
    assert result.converged.all()
    np.testing.assert_allclose(result.x, np.stack([a, a**2], axis=1), atol=1e-6)


def test_loss_fit_recovers_a_chinchilla_style_law():
    rng = np.random.default_rng(0)
    N = np.exp(rng.uniform(np.log(7e7), np.log(1.6e10), 120))
    D = np.exp(rng.uniform(np.log(5e9), np.log(5e11), 120))
    truth = {"E": 1.82, "A": 482.0, "alpha": 0.35, "B": 2085.0, "beta": 0.37}
    loss = truth["E"] + truth["A"] / N ** truth["alpha"] + truth["B"] / D ** truth["beta"]
    loss = loss * np.exp(rng.normal(0, 1e-4, len(loss)))
    starts = np.array(list(product([-1, 0, 1], [0, 5, 10], [0, 0.5, 1], [0, 5, 10], [0, 0.5, 1])), float)
    fit = fit_loss_curve(N, D, loss, starts=starts, n_boot=50)
    for name, value in truth.items():
        assert fit.params[name] == pytest.approx(value, rel=0.05), name
        low, high = fit.intervals[name]
        assert low <= fit.params[name] <= high
    np.testing.assert_allclose(fit.predict(np.stack([N, D], axis=1)), loss, rtol=1e-3)


def test_x_at_gap_formulas():
    params = {"A": np.array([10.0]), "alpha": np.array([0.5]), "p_inf": np.array([0.48])}
    assert x_at_gap("saturating", params, 0.1)[0] == pytest.approx((10 / 0.1) ** 2)
    assert x_at_gap("free", params, 0.05)[0] == pytest.approx((10 / 0.03) ** 2)
    assert x_at_gap("free", params, 0.02)[0] == np.inf


def test_two_way_fit_intervals_cover_a_curve_with_prompt_and_annotator_effects():
    """A small version of bench/fit_coverage.py: a saturating ladder judged by few
    annotators who differ, prompts that differ, few judgments per size."""
    sizes = np.geomspace(1e6, 1e9, 6)
    rates = 0.5 - 0.3 * (sizes / 1e6) ** -0.25
    truth = {"A": 0.3 * 1e6**0.25, "alpha": 0.25}
    gaps = {0.05: 1e6 * (0.3 / 0.05) ** 4, 0.01: 1e6 * (0.3 / 0.01) ** 4}
    reps = 30
    covered = dict.fromkeys([*truth, *gaps], 0)
    for seed in range(reps):
        study = simulate_study(rates, n_items=200, n_annotators=30, n_judgments=1800, item_sd=1.0,
                               annotator_sd=0.5, seed=1000 + seed)
        cells = series_cells(study.judgments, np.arange(len(sizes)))
        fit = fit_parity_curve(sizes, cells=cells, n_boot=200, seed=seed)
        assert fit.resampled == "prompts x annotators"
        for name, value in truth.items():
            low, high = fit.intervals[name]
            covered[name] += low <= value <= high
        for gap, value in gaps.items():
            covered[gap] += fit.x_at_gap[gap][1] <= value <= fit.x_at_gap[gap][2]
    for name, hits in covered.items():
        assert hits / reps >= 0.8, (name, hits)


def test_two_way_fit_resamples_have_the_cluster_robust_covariance():
    study = simulate_study([0.2, 0.35, 0.45], n_items=200, n_annotators=30, n_judgments=1800, seed=9)
    j = study.judgments
    cells = series_cells(j, [0, 1, 2])
    wins, totals = cells.per_generator()
    sums = two_way_sums(np.stack([cells.wins, cells.totals - cells.wins]), cells.generator, cells.item,
                        cells.annotator, n_groups=3, n_boot=4000, seed=1)
    raw = sums[:, :, 0] / sums.sum(axis=2)
    recentred = _two_way_rates(cells, wins, totals, sums[:, :, 0], sums.sum(axis=2))
    rate = wins / totals
    psi = (j.chose_generated - rate[j.generator]) / totals[j.generator]
    robust = cluster_variance(psi, j.item, j.annotator, j.generator, 3).two_way
    np.testing.assert_allclose(recentred.var(axis=0), robust, rtol=0.1)
    # The product weights count each judgment's own noise three times.
    assert (raw.var(axis=0) > 1.5 * robust).all()


def test_series_cells_hold_the_counts_of_series_counts():
    study = simulate_study([0.3, 0.4, 0.45], n_items=50, n_annotators=10, n_judgments=900, seed=8)
    cells = series_cells(study.judgments, [2, 0])
    wins, totals = series_counts(study.judgments, [2, 0])
    np.testing.assert_array_equal(np.stack(cells.per_generator()), np.stack([wins.sum(axis=1), totals.sum(axis=1)]))
    assert set(cells.generator) == {0, 1}
    # Without resampling, the fit is the same from either input.
    by_cells = fit_parity_curve([1e7, 1e6], cells=cells, n_boot=0)
    by_prompt = fit_parity_curve([1e7, 1e6], wins, totals, n_boot=0)
    np.testing.assert_allclose(by_cells.theta, by_prompt.theta)
