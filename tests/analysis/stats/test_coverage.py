"""Intervals against a known truth: simulated studies with prompt and annotator effects.

The truth of each simulated generator is its marginal rate, the mean over the
random-effects distribution of the probability of choosing the generated image
(`analysis.stats.simulate`, computed by Gauss-Hermite quadrature), not the logistic
of the intercept.
"""

import numpy as np
import pytest
from scipy import integrate, stats
from scipy.special import expit

from analysis.stats import intercept_for_rate, marginal_rate, preference_rates, simulate_study

STUDIES = 240
RATES = (0.15, 0.3, 0.45)


def test_marginal_rate_is_the_integral_over_the_random_effects():
    sd = np.hypot(1.0, 0.5)
    for mu in (-2.0, -0.4, 0.0, 1.3):
        by_quad, _ = integrate.quad(lambda z, mu=mu: expit(mu + sd * z) * stats.norm.pdf(z), -12, 12, epsabs=1e-13)
        assert marginal_rate(mu, sd) == pytest.approx(by_quad, abs=1e-11)
    mu = intercept_for_rate(0.15, sd)
    assert marginal_rate(mu, sd) == pytest.approx(0.15, abs=1e-12)
    # The intercept describes a typical prompt and annotator, further from 0.5.
    assert expit(mu) < 0.13


@pytest.mark.slow
def test_two_way_interval_covers_the_marginal_truth_and_wilson_does_not():
    two_way = wilson = cgm = 0
    for seed in range(STUDIES):
        rate = RATES[seed % len(RATES)]
        study = simulate_study(
            [rate], n_items=200, n_annotators=30, n_judgments=2000, item_sd=1.0, annotator_sd=0.5, seed=seed
        )
        table = preference_rates(study.judgments, n_boot=400, seed=seed)
        truth = study.truth[0]
        assert truth == rate
        two_way += table.low[0] <= truth <= table.high[0]
        wilson += table.wilson_low[0] <= truth <= table.wilson_high[0]
        cgm += table.cgm_low[0] <= truth <= table.cgm_high[0]
    assert 0.93 <= two_way / STUDIES <= 0.995
    assert wilson / STUDIES < 0.80
    assert cgm / STUDIES >= 0.90
