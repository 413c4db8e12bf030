"""Scaling fits recover known curves from simulated judgments and losses."""

from itertools import product

import numpy as np
import pytest
from scipy import optimize

from analysis.stats import (
    compare_forms,
    fit_loss_curve,
    fit_parity_curve,
    lbfgs,
    series_counts,
    simulate_study,
    x_at_gap,
)
from analysis.stats.fits import _Binomial
from analysis.stats.forms import FORMS

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
    assert comparison["delta_aic"] == pytest.approx(saturating.aic - free.aic)
    assert compare_forms(saturating, free, dispersion=2.0)["lr"] == pytest.approx(comparison["lr"] / 2)


def test_free_asymptote_below_parity_is_found():
    scales = np.array([1e7, 1e8, 1e9, 1e10, 1e11])
    wins, totals = simulated_series(0.45 - A * scales**-ALPHA, seed=4, n_items=1000)
    free = fit_parity_curve(scales, wins, totals, form="free", n_boot=300)
    low, high = free.intervals["p_inf"]
    assert low <= 0.45 <= high < 0.5
    assert free.x_at_gap[0.01][0] == np.inf
    saturating = fit_parity_curve(scales, wins, totals, n_boot=0)
    assert compare_forms(saturating, free)["p_value"] < 0.01


def test_a_far_off_asymptote_stays_a_rate():
    """Rates that climb steadily and far from any asymptote: unbounded, p_inf ran off to
    about 26 with a vanishing exponent; on the logit scale it stays inside (0, 1)."""
    scales = np.array([1e6, 1e7, 1e8, 1e9])
    wins, totals = simulated_series(np.array([0.15, 0.25, 0.35, 0.45]), seed=5, n_items=300)
    free = fit_parity_curve(scales, wins, totals, form="free", n_boot=50)
    assert 0 < free.params["p_inf"] < 1
    low, high = free.intervals["p_inf"]
    assert 0 <= low <= high <= 1


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
