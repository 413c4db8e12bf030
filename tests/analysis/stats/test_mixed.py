"""The mixed-effects cross-check agrees with the rate once marginalised, not before."""

import numpy as np

from analysis.stats import mixed_model_rates, preference_rates, simulate_study


def test_marginalised_mixed_model_rates_agree_with_the_preference_rates():
    study = simulate_study([0.2, 0.35, 0.5], n_items=200, n_annotators=30, n_judgments=3000,
                           side_bias_sd=0.3, seed=2)
    mixed = mixed_model_rates(study.judgments)
    rates = preference_rates(study.judgments, n_boot=200)
    np.testing.assert_allclose(mixed.rate, rates.rate, atol=0.015)
    # The intercept's own rate is conditional: further from 0.5 than the measured one.
    assert abs(mixed.conditional_rate[0] - rates.rate[0]) > 0.04
    assert mixed.item_sd > mixed.annotator_sd > 0
