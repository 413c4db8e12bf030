"""Annotator quality, exclusions, calibration, side bias, drift and agreement."""

import numpy as np
import pytest
from statsmodels.stats.inter_rater import fleiss_kappa

from analysis.stats import (
    ExclusionRules,
    Judgments,
    agreement,
    analyse_study,
    annotator_quality,
    apply_exclusions,
    calibration_rate,
    krippendorff_alpha_nominal,
    majority_agreement,
    session_drift,
    side_bias,
    simulate_study,
)
from analysis.stats.quality import group_quantile

LEFT_BIASED, CLICKER, DRIFTING = 3, 5, 7


@pytest.fixture(scope="module")
def study():
    return simulate_study(
        [0.25, 0.4], n_items=300, n_annotators=40, n_judgments=8000, catch_share=0.1, calibration_share=0.08,
        left_bias={LEFT_BIASED: 2.5}, clickers=[CLICKER], drift={DRIFTING: 4.0}, seed=2,
    )


@pytest.fixture(scope="module")
def analysis(study):
    return analyse_study(study.judgments, n_boot=300)


def test_left_biased_annotator_is_flagged(study):
    bias = side_bias(study.judgments)
    assert bias.annotator_share[LEFT_BIASED] > 0.75
    assert set(np.flatnonzero(bias.flagged)) <= {LEFT_BIASED, DRIFTING}
    assert bias.flagged[LEFT_BIASED]
    assert bias.low <= bias.share_left <= bias.high


def test_random_clicker_fails_catch_trials_and_is_excluded(study, analysis):
    quality = analysis.quality
    assert quality.catch_accuracy[CLICKER] < 0.8
    assert quality.fast_share[CLICKER] > 0.5
    assert np.nanmedian(quality.catch_accuracy) > 0.9
    assert analysis.exclusions.excluded[CLICKER]
    assert not analysis.exclusions.keep[study.judgments.annotator == CLICKER].any()
    # Nothing is deleted: the judgments are all still there, the mask says what counts.
    assert len(analysis.exclusions.keep) == len(study.judgments)
    assert analysis.rates_all.n.sum() - analysis.rates.n.sum() == (
        (~analysis.exclusions.keep) & (study.judgments.kind == 0)).sum()


def test_each_rule_reports_what_it_removed(study, analysis):
    by_rule = analysis.exclusions.by_rule
    per_annotator = np.bincount(study.judgments.annotator)
    # The clicker fails both rules, so neither removes its judgments alone.
    assert by_rule["too_fast"] == {"annotators": 1, "judgments": int(per_annotator[CLICKER]), "judgments_only": 0}
    catch = by_rule["catch_accuracy"]
    assert catch["judgments"] - catch["judgments_only"] == per_annotator[CLICKER]
    assert analysis.exclusions.n_excluded == int(per_annotator[analysis.exclusions.excluded].sum())
    assert not analysis.exclusions.jump.flagged


def test_rules_are_settings():
    study = simulate_study([0.3], n_judgments=600, n_annotators=12, catch_share=0.2, clickers=[0], seed=4)
    quality = annotator_quality(study.judgments)
    off = apply_exclusions(study.judgments, quality, ExclusionRules(min_catch_accuracy=None, max_fast_share=None))
    assert off.n_excluded == 0 and off.keep.all() and off.by_rule == {}
    strict = apply_exclusions(study.judgments, quality, ExclusionRules(min_catch_accuracy=1.01))
    assert strict.by_rule["catch_accuracy"]["annotators"] == int((quality.catch_n >= 1).sum())
    # Annotators dealt fewer catch trials than min_catch_trials are not judged on them.
    least = int(np.median(quality.catch_n[quality.catch_n > 0])) + 1
    few = apply_exclusions(study.judgments, quality, ExclusionRules(min_catch_accuracy=1.01, min_catch_trials=least))
    assert 0 < few.by_rule["catch_accuracy"]["annotators"] == int((quality.catch_n >= least).sum()) < strict.by_rule[
        "catch_accuracy"]["annotators"]


def test_exclusion_rate_jump_is_flagged():
    # The last fifth of the annotators to arrive are all random clickers.
    study = simulate_study([0.3], n_judgments=5000, n_annotators=50, catch_share=0.15,
                           clickers=range(40, 50), seed=6)
    judgments = study.judgments
    result = apply_exclusions(judgments, annotator_quality(judgments), ExclusionRules())
    assert result.jump.flagged
    assert any("window 5 of 5" in reason for reason in result.jump.reasons)
    # Where times are unknown, arrival falls back to annotator code order.
    untimed = Judgments(**{**judgments.__dict__, "time_s": np.full(len(judgments), np.nan)})
    assert apply_exclusions(untimed, annotator_quality(untimed), ExclusionRules()).jump.flagged


def test_exclusion_share_above_the_limit_is_flagged():
    study = simulate_study([0.3], n_judgments=1000, n_annotators=10, catch_share=0.2, clickers=range(5), seed=8)
    result = apply_exclusions(study.judgments, annotator_quality(study.judgments), ExclusionRules(max_share=0.3))
    assert result.share_excluded >= 0.5
    assert result.jump.flagged and "judgments excluded" in result.jump.reasons[0]


def test_calibration_rate_covers_one_half(study, analysis):
    assert analysis.calibration.covers_half
    assert analysis.calibration.table.n[0] == (study.judgments.kind == 2).sum() - (
        (~analysis.exclusions.keep) & (study.judgments.kind == 2)).sum()
    assert calibration_rate(study.judgments, n_boot=100).table.labels == ("calibration",)


def test_drifting_annotator_is_flagged(study):
    drift = session_drift(study.judgments)
    assert drift.flagged[DRIFTING]
    assert drift.left_late[DRIFTING] - drift.left_early[DRIFTING] > 0.2
    assert drift.flagged.sum() <= 2
    assert np.isfinite(drift.slope_left_se) and drift.slope_left > 0


def test_group_quantile_matches_numpy():
    rng = np.random.default_rng(0)
    values = rng.normal(size=500)
    values[::17] = np.nan
    group = rng.integers(0, 7, 500)
    for q in (0.1, 0.5, 0.9):
        expected = [np.nanquantile(values[group == g], q) for g in range(7)]
        np.testing.assert_allclose(group_quantile(values, group, 7, q), expected, rtol=1e-12)


def shared_trials() -> Judgments:
    # Six trials (items 0-5 of one generator), three annotators each, plus one trial
    # judged by two annotators only.
    choices = [[1, 1, 1], [0, 0, 1], [1, 0, 1], [0, 0, 0], [1, 1, 0], [0, 1, 1], [1, 1]]
    item, annotator, chose = [], [], []
    for index, values in enumerate(choices):
        for who, value in enumerate(values):
            item.append(index)
            annotator.append((index + who) % 4)
            chose.append(bool(value))
    return Judgments.build(generator=["g"] * len(item), item=item, annotator=annotator,
                           generated_left=[True] * len(item), chose_generated=chose)


def test_fleiss_kappa_is_statsmodels_on_trials_with_the_modal_number_of_judgments():
    result = agreement(shared_trials())
    table = np.array([[0, 3], [2, 1], [1, 2], [3, 0], [1, 2], [1, 2]])
    assert result.fleiss_raters == 3 and result.fleiss_trials == 6
    assert result.fleiss_kappa == pytest.approx(fleiss_kappa(table), abs=1e-12)
    assert result.alpha_trials == 7


def test_krippendorff_alpha_of_a_hand_computed_case():
    # Units (values by coder): [1, 1, 1], [0, 0], [1, 0, 1], [0, 1], and [1] (not
    # pairable). Coincidences: o00 = 2 (unit 2), o11 = 3 + 1 = 4 (units 1, 3),
    # o01 = o10 = 1 + 1 = 2 (units 3, 4); n0 = 4, n1 = 6, n = 10.
    # alpha = 1 - (n - 1) (o01 + o10) / (2 n0 n1) = 1 - 9 * 4 / 48 = 0.25.
    counts = np.array([[0, 3], [2, 0], [1, 2], [1, 1], [0, 1]])
    assert krippendorff_alpha_nominal(counts) == pytest.approx(0.25, abs=1e-12)


def test_krippendorff_alpha_and_fleiss_kappa_differ_by_the_small_sample_factor():
    # With m values in every one of N units, alpha = 1 - (1 - kappa) (mN - 1) / (mN).
    rng = np.random.default_rng(3)
    table = rng.multinomial(4, [0.6, 0.3, 0.1], size=50)
    kappa = fleiss_kappa(table)
    n = table.sum()
    assert krippendorff_alpha_nominal(table) == pytest.approx(1 - (1 - kappa) * (n - 1) / n, abs=1e-12)


def test_majority_agreement_leaves_the_annotator_out():
    judgments = shared_trials()
    n, share = majority_agreement(judgments)
    # Per judgment: agrees with the other two when they agree with each other.
    expected_n, expected_agree = np.zeros(4), np.zeros(4)
    for index, values in enumerate([[1, 1, 1], [0, 0, 1], [1, 0, 1], [0, 0, 0], [1, 1, 0], [0, 1, 1]]):
        for who, value in enumerate(values):
            others = values[:who] + values[who + 1:]
            if others[0] == others[1]:
                code = judgments.annotator_labels.index((index + who) % 4)
                expected_n[code] += 1
                expected_agree[code] += value == others[0]
    np.testing.assert_array_equal(n, expected_n)
    np.testing.assert_allclose(share, expected_agree / expected_n)
