"""Rates over time: blocks, a drift test, and rates adjusted for when they were judged."""

import numpy as np
import pytest
from scipy.special import expit

from analysis.stats import Judgments
from analysis.stats.timeline import rate_timeline

WEEK = 7 * 86_400
START = 1_700_006_400.0  # a Thursday; weeks are counted from the epoch's, so four weeks span five


def study(seed: int, *, strict_later: float, drift: bool = True, n: int = 6000):
    """Three generators, four weeks; the annotators get stricter by `strict_later` (logit)
    from the third week; generator 2, as good as generator 1, is judged only then."""
    rng = np.random.default_rng(seed)
    week = rng.integers(0, 4, n)
    generator = rng.integers(0, 3, n)
    week[generator == 2] = rng.integers(2, 4, (generator == 2).sum())
    mu = np.array([-1.0, -0.5, -0.5])
    eta = mu[generator] - np.where((week >= 2) & drift, strict_later, 0.0)
    return Judgments.build(
        generator=generator, item=rng.integers(0, 300, n), annotator=rng.integers(0, 40, n),
        generated_left=rng.random(n) < 0.5, chose_generated=rng.random(n) < expit(eta),
        time_s=START + week * WEEK + rng.random(n) * WEEK,
    )


def test_a_generator_judged_only_in_a_stricter_period_is_put_on_the_same_footing():
    raw_gaps, adjusted_gaps = [], []
    for seed in range(8):
        timeline = rate_timeline(study(seed, strict_later=0.6))
        assert timeline.unit == "week"
        raw_gaps.append(timeline.raw[1] - timeline.raw[2])
        adjusted_gaps.append(timeline.adjusted[1] - timeline.adjusted[2])
    # Truth: generators 1 and 2 are equal. Raw, the late one looks worse by about 0.05.
    assert np.mean(raw_gaps) > 0.035
    assert abs(np.mean(adjusted_gaps)) < 0.015 and np.mean(np.abs(adjusted_gaps)) < np.mean(np.abs(raw_gaps))


def test_drift_is_found_where_there_is_some_and_rarely_where_there_is_none():
    found = [rate_timeline(study(seed, strict_later=0.6)).slope_p[0] < 0.05 for seed in range(10)]
    false = [rate_timeline(study(100 + seed, strict_later=0.6, drift=False)).slope_p[0] < 0.05
             for seed in range(40)]
    assert np.mean(found) >= 0.8 and np.mean(false) <= 0.15, (np.mean(found), np.mean(false))


def test_without_times_there_is_one_block_and_no_drift_and_the_adjusted_rate_is_the_raw_one():
    judgments = study(1, strict_later=0.0)
    untimed = Judgments.build(generator=judgments.generator, item=judgments.item, annotator=judgments.annotator,
                              generated_left=judgments.generated_left, chose_generated=judgments.chose_generated)
    timeline = rate_timeline(untimed)
    assert timeline.n.shape[1] == 1 and np.isnan(timeline.slope).all()
    np.testing.assert_allclose(timeline.adjusted, timeline.raw, atol=1e-8)


def test_a_study_within_one_week_is_cut_into_blocks_of_equal_size():
    judgments = study(2, strict_later=0.0)
    compressed = Judgments.build(
        generator=judgments.generator, item=judgments.item, annotator=judgments.annotator,
        generated_left=judgments.generated_left, chose_generated=judgments.chose_generated,
        time_s=START + (judgments.time_s - START) / 100)
    timeline = rate_timeline(compressed, n_blocks=5)
    assert timeline.unit == "block" and timeline.n.shape[1] == 5
    assert timeline.n.sum(axis=0) == pytest.approx(np.full(5, len(judgments) / 5), abs=1)
    judged = timeline.n > 0
    assert (timeline.low[judged] <= timeline.share[judged]).all()
    assert (timeline.share[judged] <= timeline.high[judged]).all()
    assert np.isnan(timeline.share[~judged]).all()  # generator 2, never judged early: no share, not 0
