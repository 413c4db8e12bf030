"""Planning: judgments and prompts for a target half-width, and which generators are done."""

import numpy as np
import pytest

from analysis.stats import generators_done, plan_judgments, preference_rates, simulate_study


@pytest.fixture(scope="module")
def rates():
    study = simulate_study([0.3, 0.5], identical=[False, True], n_items=200, n_annotators=30,
                           n_judgments=3000, seed=12)
    return preference_rates(study.judgments, n_boot=400)


def test_plan_scales_with_the_squared_half_width_ratio(rates):
    plan = plan_judgments(rates, 0.02)
    factor = (rates.half_width / 0.02) ** 2
    np.testing.assert_array_equal(plan.judgments_needed, np.ceil(rates.n * factor))
    np.testing.assert_array_equal(plan.judgments_more, np.maximum(plan.judgments_needed - rates.n, 0))
    np.testing.assert_array_equal(plan.prompts_needed, np.ceil(rates.n_items * factor))
    # Prompt effects do not exist for identical images: hardly any prompts are needed
    # beyond the judgments; the real generator needs many.
    assert plan.prompts_min[1] < plan.prompts_min[0] <= plan.prompts_needed[0]


def test_a_generator_with_a_narrow_interval_is_done(rates):
    between = float(np.mean(rates.half_width))
    assert rates.half_width[1] < between < rates.half_width[0]
    assert generators_done(rates, between) == {0: False, 1: True}
    assert generators_done(rates, 1.0) == {0: True, 1: True}
    assert generators_done(rates, 1.0, min_judgments=10**6) == {0: False, 1: False}
    assert plan_judgments(rates, between).judgments_more[1] == 0
