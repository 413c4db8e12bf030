"""Degenerate data get a named flag and an interval that is valid or none: never one
of zero width, never one outside [0, 1], never a standard error of exactly zero."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.stats import Judgments, plan_judgments, preference_rates
from analysis.stats.bootstrap import percentile_interval
from analysis.stats.fits import NotFitted, fit_parity_curve
from analysis.stats.rates import MIN_JUDGMENTS
from analysis.stats.series import SeriesCells

CLUSTERED = ("low", "high", "boot_se", "cgm_se", "cgm_low", "cgm_high", "design_effect", "effective_n")


def judgments(rows) -> Judgments:
    generator, item, annotator, left, chose = zip(*rows)
    return Judgments.build(generator=generator, item=item, annotator=annotator, generated_left=left,
                           chose_generated=chose)


def rate_row(rows, **kwargs) -> dict:
    return preference_rates(judgments(rows), n_boot=300, **kwargs).rows()[0]


def assert_withheld(row):
    for column in CLUSTERED:
        assert np.isnan(row[column]), (column, row[column])


def test_one_judgment_has_no_interval_of_zero_width():
    row = rate_row([(0, 0, 0, True, False)])
    assert {"too_few_judgments", "single_cluster", "no_variation"} <= set(row["flags"])
    assert_withheld(row)
    # The unclustered intervals are valid for one judgment and stay.
    assert row["wilson_low"] == 0.0 and 0.7 < row["wilson_high"] < 0.8
    assert row["cp_low"] == 0.0 and row["cp_high"] == pytest.approx(0.975)


def test_a_generator_that_wins_every_judgment_is_flagged_not_shown_as_one_exactly():
    rows = [(0, i % 20, i % 7, i % 2 == 0, True) for i in range(100)]
    row = rate_row(rows)
    assert row["flags"] == ["no_variation"]
    assert_withheld(row)
    assert row["wilson_low"] < row["wilson_high"] == 1.0 and row["cp_low"] < 1.0


@pytest.mark.parametrize("factor", ["item", "annotator"])
def test_one_prompt_or_one_annotator_has_no_standard_error_rather_than_zero(factor):
    rows = [(0, i, 0, i % 2 == 0, i % 3 == 0) for i in range(40)]
    if factor == "item":
        rows = [(g, a, i, left, chose) for g, i, a, left, chose in rows]
    row = rate_row(rows)
    assert row["flags"] == ["single_cluster"]
    assert_withheld(row)  # was: cgm_se 0.0 and an effective n of 2e32


def test_five_judgments_of_one_annotator_keep_no_interval_that_excludes_the_raw_share():
    # Two wins in five, the sides unbalanced: the balanced rate is 0.625, the raw 0.4.
    rows = [(0, 0, 0, True, True), (0, 1, 0, False, True), (0, 2, 0, False, False), (0, 3, 0, False, False),
            (0, 4, 0, False, False)]
    row = rate_row(rows)
    assert row["rate"] == pytest.approx(0.625) and row["raw_rate"] == pytest.approx(0.4)
    assert {"too_few_judgments", "single_cluster"} <= set(row["flags"])
    assert_withheld(row)
    assert row["wilson_low"] < row["raw_rate"] < row["wilson_high"]


def test_a_rate_seen_on_one_side_only_is_flagged_but_keeps_its_interval():
    rows = [(0, i % 30, i % 9, True, i % 3 == 0) for i in range(120)]
    row = rate_row(rows)
    assert row["flags"] == ["one_side_only"]
    assert 0 <= row["low"] < row["high"] <= 1


def test_the_planner_never_says_nothing_more_is_needed_for_one_judgment():
    rates = preference_rates(judgments([(0, 0, 0, True, False)]), n_boot=100)
    plan = plan_judgments(rates, 0.05)
    assert plan.basis == ("wilson",) and not plan.done[0]
    assert plan.judgments_more[0] >= 99  # at least the minimum of 100 judgments, and more for a target of 0.05
    # Every judgment the same way: no clustered half-width, so never done, however many.
    rows = [(0, i % 50, i % 11, i % 2 == 0, True) for i in range(2000)]
    plan = plan_judgments(preference_rates(judgments(rows), n_boot=100), 0.05)
    assert not plan.done[0] and plan.judgments_more[0] >= 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 4), st.integers(0, 3), st.booleans(), st.booleans()),
                min_size=1, max_size=60))
def test_every_rate_interval_is_valid_or_none(rows):
    table = preference_rates(judgments(rows), n_boot=60)
    for row in table.rows():
        for low, high in ((row["low"], row["high"]), (row["cgm_low"], row["cgm_high"])):
            assert np.isnan(low) == np.isnan(high)
            if not np.isnan(low):
                assert 0 <= low < high <= 1, row
        assert np.isnan(row["cgm_se"]) or row["cgm_se"] > 0 or "no_variation" in row["flags"]
        assert not row["effective_n"] > row["n"] * 1e6
        if row["n"] < MIN_JUDGMENTS:
            assert "too_few_judgments" in row["flags"] and np.isnan(row["low"])
        for low, high in ((row["wilson_low"], row["wilson_high"]), (row["cp_low"], row["cp_high"])):
            assert 0 <= low < high <= 1


def test_percentile_bounds_among_infinities_are_infinite_not_the_clip_value():
    # A target never reached in most resamples: the lower bound was shown as 4.49e307.
    draws = np.r_[np.full(990, np.inf), np.linspace(1e10, 1e11, 10)]
    low, high = percentile_interval(draws)
    assert low == np.inf and high == np.inf
    low, high = percentile_interval(np.r_[np.full(100, -np.inf), np.full(100, 1.0)])
    assert low == -np.inf and high == 1.0


def _cells(rates, *, annotators=10, items=30, n=300, seed=0) -> SeriesCells:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(len(rates)), n)
    item, annotator = rng.integers(0, items, len(g)), rng.integers(0, annotators, len(g))
    won = rng.random(len(g)) < np.repeat(rates, n)
    key = (g * items + item) * annotators + annotator
    _, first, code = np.unique(key, return_index=True, return_inverse=True)
    return SeriesCells(g[first], item[first], annotator[first], np.bincount(code, weights=won),
                       np.bincount(code).astype(float), len(rates))


SIZES = np.array([1e6, 1e7, 1e8, 1e9])


@pytest.mark.parametrize("form", ["saturating", "free"])
def test_a_series_judged_by_one_annotator_has_no_zero_width_fit_intervals(form):
    # Was: every refit the same, intervals of zero width "converged 100 %".
    fit = fit_parity_curve(SIZES, cells=_cells(np.array([0.2, 0.3, 0.35, 0.4]), annotators=1), form=form,
                           n_boot=50)
    assert "single_cluster" in fit.flags
    assert all(np.isnan(low) and np.isnan(high) for low, high in fit.intervals.values())
    assert fit.resampled == ""


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_a_series_where_every_judgment_went_one_way_is_not_fitted(value):
    fit = fit_parity_curve(SIZES, cells=_cells(np.full(4, value)), form="saturating", n_boot=20)
    assert isinstance(fit, NotFitted) and fit.reason == "no_variation"


def test_an_asymptote_run_off_to_one_is_not_identified_and_not_bootstrapped():
    # A jump at the largest size: the free form's asymptote runs off to 1.
    fit = fit_parity_curve(SIZES, cells=_cells(np.array([0.1, 0.1, 0.1, 0.45])), form="free", n_boot=50)
    assert "not_identified" in fit.flags and fit.resampled == ""
    assert all(np.isnan(v) for bounds in fit.intervals.values() for v in bounds)


def test_side_bias_has_no_interval_of_zero_width_or_outside_0_1():
    from analysis.stats import side_bias

    # Every judgment chose the left image: the share is 1 with no spread.
    rows = [(0, i % 10, i % 5, i % 2 == 0, i % 2 == 0) for i in range(50)]
    bias = side_bias(judgments(rows))
    assert bias.share_left == 1.0 and np.isnan(bias.low) and np.isnan(bias.high)
    assert bias.wilson_low < 1.0 == bias.wilson_high
    rows = [(0, i % 10, i % 5, i % 2 == 0, (i % 2 == 0) != (i % 17 == 0)) for i in range(50)]
    bias = side_bias(judgments(rows))
    assert 0 <= bias.low < bias.share_left < bias.high <= 1
