"""Bradley-Terry fit of vs-real and head-to-head judgments (analysis.stats.bradley_terry)."""

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats
from scipy.special import expit
from statsmodels.stats.sandwich_covariance import cov_cluster_2groups

from analysis.stats import (
    bradley_terry,
    percentile_interval,
    preference_rates,
    simulate_bradley_terry,
    simulate_study,
    vs_real_trials,
)

THETA = np.array([-1.5, -0.8, -0.2, 0.4])


def design(arrays, n_generators):
    """x_left - x_right over the generators (real dropped) and a constant for gamma."""
    rows = np.arange(len(arrays["left"]))
    X = np.zeros((len(rows), n_generators + 1))
    for name, sign in (("left", 1.0), ("right", -1.0)):
        on = arrays[name] >= 0
        X[rows[on], arrays[name][on]] += sign
    X[:, -1] = 1.0
    return X


def test_recovers_known_thetas():
    sim = simulate_bradley_terry(THETA, n_judgments=40_000, vs_real_share=0.5, gamma=0.3, seed=3)
    fit = bradley_terry(**sim.arrays, n_boot=200)
    assert np.all(np.abs(fit.theta - THETA) < 4 * fit.se)
    assert np.abs(fit.theta - THETA).max() < 0.1
    assert abs(fit.gamma - 0.3) < 0.06
    assert np.all((fit.theta_low < fit.theta) & (fit.theta < fit.theta_high))
    boot = bradley_terry(**sim.arrays, n_boot=200, method="bootstrap")
    assert np.allclose(boot.theta, fit.theta)
    assert np.allclose(boot.theta_high - boot.theta_low, fit.theta_high - fit.theta_low, rtol=0.2)
    assert np.allclose(fit.rate, expit(fit.theta))
    assert fit.flags == ((),) * 4 and fit.fit_flags == ()
    assert fit.replicates.shape == (200, 4) and fit.gamma_replicates.shape == (200,)


def test_matches_statsmodels_glm_and_cgm_covariance():
    sim = simulate_bradley_terry(THETA, n_judgments=6000, vs_real_share=0.6, gamma=-0.25, n_items=80,
                                 n_annotators=25, item_sd=1.0, annotator_sd=0.5, seed=11)
    fit = bradley_terry(**sim.arrays, n_boot=0, method="sandwich")
    a = sim.arrays
    result = sm.GLM(a["chose_left"].astype(float), design(a, 4), family=sm.families.Binomial()).fit(tol=1e-12)
    assert np.allclose(fit.theta, result.params[:-1], atol=1e-6)
    assert fit.gamma == pytest.approx(result.params[-1], abs=1e-6)
    # CGM: c_I V_item + c_A V_annotator - V_cell, from statsmodels' uncorrected parts.
    both, v_item, v_annotator = cov_cluster_2groups(result, a["item"], a["annotator"], use_correction=False)
    v_cell = v_item + v_annotator - both
    n_items, n_annotators = len(np.unique(a["item"])), len(np.unique(a["annotator"]))
    expected = n_items / (n_items - 1) * v_item + n_annotators / (n_annotators - 1) * v_annotator - v_cell
    assert np.allclose(fit.covariance, expected, rtol=1e-6, atol=1e-12)
    q = stats.t.ppf(0.975, min(n_items, n_annotators) - 1)
    assert np.allclose(fit.theta_high, fit.theta + q * np.sqrt(np.diag(expected))[:-1])


def test_counts_and_direct_rate_match_preference_rates():
    study = simulate_study([0.2, 0.35, 0.5], n_judgments=3000, catch_share=0.1, seed=5)
    arrays = vs_real_trials(study.judgments)
    fit = bradley_terry(**arrays, n_boot=50)
    rates = preference_rates(study.judgments, n_boot=10)
    assert np.allclose(fit.direct_rate, rates.rate)
    assert np.array_equal(fit.n, rates.n) and np.array_equal(fit.n_vs_real, rates.n)
    assert np.array_equal(fit.wins + fit.wins.T, fit.totals)
    assert fit.totals.sum() == 2 * len(arrays["left"])
    assert np.array_equal(fit.wins[1:, 0], rates.wins)
    # vs-real only: the fit is the logit of the position-adjusted vs-real rate.
    assert np.allclose(fit.rate, fit.direct_rate, atol=0.02)


def test_coverage_small_simulation():
    hits = []
    for rep in range(30):
        sim = simulate_bradley_terry(THETA, n_judgments=2000, vs_real_share=0.5, gamma=0.2, n_items=100,
                                     n_annotators=30, item_sd=1.0, annotator_sd=0.5, seed=100 + rep)
        fit = bradley_terry(**sim.arrays, n_boot=200, seed=rep)
        low, high = expit(np.stack(percentile_interval(fit.replicates)))
        hits.append([(fit.rate_low <= sim.truth_rate) & (sim.truth_rate <= fit.rate_high),
                     (low <= sim.truth_rate) & (sim.truth_rate <= high)])
    sandwich, bootstrap = np.mean(hits, axis=(0, 2))
    assert 0.87 <= sandwich <= 1.0 and 0.87 <= bootstrap <= 1.0


def test_pooled_narrower_than_vs_real_at_equal_judgments():
    # With 8 generators, half the judgments head-to-head: the information on each
    # strength grows by about a quarter (the mean strength rests on the vs-real half).
    theta = np.linspace(-2.0, 0.5, 8)
    widths = {}
    for share in (1.0, 0.5):
        widths[share] = np.mean([
            bradley_terry(**simulate_bradley_terry(theta, n_judgments=4000, vs_real_share=share, seed=rep).arrays,
                          n_boot=100, seed=rep).half_width.mean() for rep in range(4)])
    assert widths[0.5] < 0.95 * widths[1.0]


def test_flags_for_missing_and_separated_generators():
    sim = simulate_bradley_terry(THETA[:3], n_judgments=3000, vs_real_share=0.7, seed=2)
    a = {k: np.asarray(v) for k, v in sim.arrays.items() if k != "labels"}
    # Generator 3 always wins against the real image; 4 and 5 play only each other;
    # 6 plays only generator 0, head-to-head; 7 has no judgments.
    extra = [(3, -1, True), (-1, 3, False)] * 30 + [(4, 5, True), (5, 4, True)] * 20 + \
        [(6, 0, True), (0, 6, True)] * 20
    left, right, chose = map(np.array, zip(*extra))
    arrays = {"left": np.r_[a["left"], left], "right": np.r_[a["right"], right],
              "chose_left": np.r_[a["chose_left"], chose],
              "item": np.r_[a["item"], np.arange(len(extra)) % 50],
              "annotator": np.r_[a["annotator"], np.arange(len(extra)) % 7], "labels": tuple(range(8))}
    fit = bradley_terry(**arrays, n_boot=100)
    assert fit.flags[:3] == ((),) * 3
    assert fit.flags[3] == ("no_variation",)
    assert fit.flags[4] == fit.flags[5] == ("not_identified", "no_vs_real")
    assert fit.flags[6] == ("no_vs_real",)
    assert fit.flags[7] == ("no_judgments",)
    for g in (3, 4, 5, 7):
        assert np.isnan([fit.theta[g], fit.theta_low[g], fit.rate_high[g], fit.se[g]]).all()
        assert np.isnan(fit.replicates[:, g]).all()
    assert np.isfinite([fit.theta[6], fit.theta_low[6], fit.theta_high[6]]).all()
    assert fit.direct_rate[3] == 1.0 and np.isnan(fit.direct_rate[6])
    assert np.isfinite(fit.theta[:3]).all() and np.isfinite(fit.gamma)


def test_single_prompt_gives_no_interval():
    sim = simulate_bradley_terry(THETA, n_judgments=800, n_items=1, seed=4)
    fit = bradley_terry(**sim.arrays, n_boot=50)
    assert all("single_cluster" in f for f in fit.flags)
    assert np.isfinite(fit.theta).all() and np.isnan(fit.theta_low).all() and np.isnan(fit.rate_high).all()


def test_goodness_of_fit_detects_intransitivity():
    sim = simulate_bradley_terry(THETA, n_judgments=8000, vs_real_share=0.5, seed=8)
    assert bradley_terry(**sim.arrays, n_boot=0, method="sandwich").p_value > 1e-3
    # Generator 0 beats 1, 1 beats 2, 2 beats 0, mostly: no line orders them.
    rng = np.random.default_rng(0)
    pairs = np.array([(0, 1), (1, 2), (2, 0)] * 400)
    swap = rng.random(len(pairs)) < 0.5
    first_wins = rng.random(len(pairs)) < 0.85
    left = np.where(swap, pairs[:, 1], pairs[:, 0])
    right = np.where(swap, pairs[:, 0], pairs[:, 1])
    vs_real = rng.integers(0, 3, 600)
    real_left = rng.random(600) < 0.5
    arrays = {"left": np.r_[left, np.where(real_left, -1, vs_real)],
              "right": np.r_[right, np.where(real_left, vs_real, -1)],
              "chose_left": np.r_[first_wins != swap, rng.random(600) < 0.5],
              "item": rng.integers(0, 60, 1800), "annotator": rng.integers(0, 20, 1800), "labels": ("a", "b", "c")}
    fit = bradley_terry(**arrays, n_boot=0, method="sandwich")
    assert fit.p_value < 1e-10 and fit.dispersion > 5 and fit.df == len(np.flatnonzero(fit.left_totals)) - 4


def test_same_seed_same_replicates():
    sim = simulate_bradley_terry(THETA, n_judgments=1500, vs_real_share=0.5, seed=1)
    one, two = (bradley_terry(**sim.arrays, n_boot=60, seed=9) for _ in range(2))
    assert np.array_equal(one.replicates, two.replicates)


@pytest.mark.parametrize(("change", "message"), [
    (lambda a: a.update(right=a["right"][:-1]), "column right has"),
    (lambda a: a["left"].__setitem__(7, 4), "column left: row 7"),
    (lambda a: a["right"].__setitem__(3, -2), "column right: row 3"),
    (lambda a: a["item"].__setitem__(5, -1), "column item: row 5"),
    (lambda a: a.update(chose_left=np.where(np.arange(len(a["left"])) == 2, 0.5, 1.0)), "column chose_left: row 2"),
    (lambda a: a.update(right=np.where(np.arange(len(a["left"])) == 9, a["left"], a["right"])), "row 9"),
])
def test_invalid_input_names_column_and_row(change, message):
    sim = simulate_bradley_terry(THETA, n_judgments=100, vs_real_share=0.5, seed=0)
    arrays = {k: (np.array(v) if k != "labels" else v) for k, v in sim.arrays.items()}
    change(arrays)
    with pytest.raises(ValueError, match=message):
        bradley_terry(**arrays, n_boot=0)
