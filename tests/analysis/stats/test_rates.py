"""Preference rates: the container, the bootstrap engine, and agreement with statsmodels."""

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.proportion import proportion_confint
from statsmodels.stats.sandwich_covariance import cov_cluster_2groups

from analysis.stats import (
    Judgments,
    binomial_test_half,
    bootstrap,
    cluster_variance,
    cluster_weights,
    percentile_interval,
    preference_rates,
    simulate_study,
    two_proportion_test,
    two_way_sums,
    wilson_interval,
)
from analysis.stats.judgments import compact


@pytest.fixture(scope="module")
def study():
    return simulate_study([0.2, 0.35, 0.5], n_items=120, n_annotators=25, n_judgments=3000, seed=11)


def test_build_factorises_labels_and_derives_columns():
    judgments = Judgments.build(
        generator=["big", "small", "big", None],
        item=["p7", "p3", "p3", "p9"],
        annotator=[42, 42, 7, 7],
        generated_left=[True, False, True, False],
        chose_left=[True, True, False, True],
        kind=["generated", "generated", "generated", "catch"],
    )
    assert judgments.generator_labels == ("big", "small")
    assert judgments.generator.tolist() == [0, 1, 0, -1]
    assert judgments.item_labels == ("p3", "p7", "p9")
    assert judgments.chose_generated.tolist() == [True, False, False, False]
    assert judgments.correct.tolist() == [False, False, False, True]
    assert judgments.order.tolist() == [0, 1, 0, 1]


def test_unknown_kinds_are_refused():
    with pytest.raises(ValueError, match="unknown kinds"):
        Judgments.build(generator=["g"], item=[0], annotator=[0], generated_left=[True], chose_left=[True],
                        kind=["practice"])


def test_inconsistent_sides_are_refused():
    with pytest.raises(ValueError, match="chose_left"):
        Judgments(generator=[0], item=[0], annotator=[0], chose_generated=[True], generated_left=[True],
                  chose_left=[False], kind=[0], correct=[False], rt_ms=[1.0], order=[0])


COLUMNS = dict(generator=[0, 0, 1], item=[0, 1, 2], annotator=[0, 0, 1], chose_generated=[True, False, True],
               generated_left=[True, True, False], chose_left=[True, False, False], kind=[0, 0, 0],
               correct=[False, False, False], rt_ms=[900.0, np.nan, 1200.0], order=[0, 1, 0])


@pytest.mark.parametrize("column", ["chose_generated", "generated_left", "chose_left", "correct"])
@pytest.mark.parametrize("bad", [np.nan, 0.5, None, "yes"])
def test_a_flag_that_is_not_a_boolean_is_refused_with_its_column_and_row(column, bad):
    values = list(COLUMNS[column])
    values[1] = bad
    with pytest.raises(ValueError, match=rf"column {column}: row 1 holds {bad!r}"):
        Judgments(**{**COLUMNS, column: values})


@pytest.mark.parametrize("column", ["chose_generated", "generated_left", "chose_left"])
def test_build_refuses_a_nan_choice_before_it_becomes_a_win(column):
    columns = dict(generator=["g"] * 3, item=[0, 1, 2], annotator=[0, 0, 1], generated_left=[True, True, False])
    columns.setdefault(column, [True, False, True])
    if column == "generated_left":
        columns["chose_generated"] = [True, False, True]
    columns[column] = [1.0, np.nan, 0.0]
    with pytest.raises(ValueError, match=rf"column {column}: row 1 holds nan"):
        Judgments.build(**columns)


def test_flags_as_zero_one_numbers_are_read_as_booleans():
    numeric = {name: np.asarray(COLUMNS[name], dtype=float) for name in ("chose_generated", "generated_left",
                                                                         "chose_left", "correct")}
    judgments = Judgments(**{**COLUMNS, **numeric, "chose_left": [1, 0, 0], "correct": np.array([0, 0, 0], object)})
    assert judgments.chose_generated.dtype == bool
    assert judgments.chose_generated.tolist() == COLUMNS["chose_generated"]
    assert judgments.chose_left.tolist() == COLUMNS["chose_left"]


@pytest.mark.parametrize(("column", "bad"), [("rt_ms", -5.0), ("rt_ms", np.inf), ("time_s", -np.inf),
                                             ("item", np.nan), ("annotator", 0.5)])
def test_impossible_times_and_codes_are_refused(column, bad):
    values = np.asarray(COLUMNS.get(column, [0.0, 0.0, 0.0]), dtype=float)
    values[2] = bad
    with pytest.raises(ValueError, match=rf"column {column}: row 2 holds"):
        Judgments(**{**COLUMNS, column: values})


def test_unknown_times_stay_allowed():
    judgments = Judgments(**{**COLUMNS, "time_s": [np.nan, -3.0, 10.0]})
    assert np.isnan(judgments.rt_ms[1]) and judgments.time_s[1] == -3.0


@pytest.mark.parametrize("layout", ["dense", "sparse"])
def test_two_way_sums_equal_the_weighted_sums_they_stand_for(study, layout, monkeypatch):
    if layout == "sparse":  # rows only for the (group, level) pairs present
        monkeypatch.setattr(bootstrap, "DENSE_SHARE", 1.01)
    j = study.judgments
    values = np.stack([j.chose_generated, ~j.chose_generated]).astype(float)
    group = np.maximum(j.generator, 0) * 2 + j.generated_left
    sums = two_way_sums(values, group, j.item, j.annotator, n_groups=6, n_boot=50, seed=5)

    item, n_items = compact(j.item)
    annotator, n_annotators = compact(j.annotator)
    item_seq, annotator_seq = np.random.SeedSequence(5).spawn(2)
    u = cluster_weights(np.random.Generator(np.random.PCG64(item_seq)), n_items, 50)
    v = cluster_weights(np.random.Generator(np.random.PCG64(annotator_seq)), n_annotators, 50)
    for b in range(50):
        weight = u[item, b].astype(float) * v[annotator, b]
        for k in range(2):
            expected = np.bincount(group, weights=weight * values[k], minlength=6)
            np.testing.assert_allclose(sums[b, :, k], expected, rtol=1e-12)


def test_two_way_sums_do_not_depend_on_the_chunk_size(study, monkeypatch):
    j = study.judgments
    args = (j.chose_generated[None].astype(float), np.maximum(j.generator, 0), j.item, j.annotator)
    whole = two_way_sums(*args, n_groups=3, n_boot=64, seed=1)
    monkeypatch.setattr(bootstrap, "CHUNK_BYTES", 1)
    np.testing.assert_array_equal(two_way_sums(*args, n_groups=3, n_boot=64, seed=1), whole)


def test_multinomial_weights_resample_every_cluster_count():
    weights = cluster_weights(np.random.default_rng(0), 37, 400)
    assert weights.shape == (37, 400)
    assert (weights.sum(axis=0) == 37).all()
    poisson = cluster_weights(np.random.default_rng(0), 2000, 50, "poisson")
    assert poisson.mean() == pytest.approx(1.0, abs=0.02)


def test_wilson_matches_statsmodels():
    k = np.array([0, 1, 17, 250, 999, 1000, 3])
    n = np.array([10, 10, 40, 1000, 1000, 1000, 7])
    for level in (0.9, 0.95, 0.99):
        low, high = wilson_interval(k, n, level)
        ref_low, ref_high = proportion_confint(k, n, alpha=1 - level, method="wilson")
        np.testing.assert_allclose(low, ref_low, rtol=0, atol=1e-9)
        np.testing.assert_allclose(high, ref_high, rtol=0, atol=1e-9)


def test_binomial_test_matches_scipy():
    for k, n in [(0, 5), (3, 7), (10, 20), (31, 50), (50, 50), (120, 300)]:
        assert binomial_test_half(k, n) == pytest.approx(stats.binomtest(k, n, 0.5).pvalue, abs=1e-12)


def test_two_proportion_test_matches_the_pooled_z():
    z, p = two_proportion_test(30, 100, 45, 100)
    pooled = 75 / 200
    assert z == pytest.approx(0.15 / np.sqrt(pooled * (1 - pooled) * 0.02))
    assert p == pytest.approx(2 * stats.norm.sf(abs(z)))


def test_cgm_two_way_se_equals_statsmodels_without_correction(study):
    j = study.judgments
    table = preference_rates(j, n_boot=0)
    for g in range(3):
        mine = j.generator == g
        y = j.chose_generated[mine].astype(float)
        ols = sm.OLS(y, np.ones((len(y), 1))).fit()
        cov, _, _ = cov_cluster_2groups(ols, j.item[mine], j.annotator[mine], use_correction=False)
        assert table.cgm_se_raw[g] == pytest.approx(np.sqrt(cov[0, 0]), rel=1e-9, abs=1e-12)


def test_cgm_parts_are_one_way_cluster_variances():
    psi = np.array([0.3, -0.1, 0.2, -0.4, 0.0])
    item = np.array([0, 0, 1, 1, 2])
    annotator = np.array([0, 1, 0, 1, 1])
    parts = cluster_variance(psi, item, annotator)
    assert parts.item[0] == pytest.approx(0.2**2 + 0.2**2 + 0.0)
    assert parts.annotator[0] == pytest.approx(0.5**2 + 0.5**2)
    assert parts.cell[0] == pytest.approx((psi**2).sum())
    assert parts.two_way[0] == pytest.approx(parts.item[0] + parts.annotator[0] - parts.cell[0])


def test_rate_is_the_mean_of_the_two_sides():
    # Left: 3 of 4 chose the generated image; right: 1 of 2.
    judgments = Judgments.build(
        generator=["g"] * 6, item=range(6), annotator=[0, 1, 2, 0, 1, 2],
        generated_left=[True, True, True, True, False, False],
        chose_generated=[True, True, True, False, True, False],
    )
    table = preference_rates(judgments, n_boot=100)
    assert table.rate[0] == pytest.approx((3 / 4 + 1 / 2) / 2)
    assert table.raw_rate[0] == pytest.approx(4 / 6)
    assert (table.n_left[0], table.wins_left[0], table.n_right[0], table.wins_right[0]) == (4, 3, 2, 1)


def test_reference_samples_score_one_half_within_the_interval():
    # The second generator's samples are the references themselves; annotators have
    # strong side preferences, which position balancing cancels.
    study = simulate_study([0.3, 0.5], identical=[False, True], n_items=200, n_annotators=30,
                           n_judgments=4000, side_bias_sd=1.0, seed=3)
    table = preference_rates(study.judgments, n_boot=1000)
    assert study.truth[1] == 0.5
    assert table.low[1] <= 0.5 <= table.high[1]
    assert table.half_width[1] < 0.05
    assert table.low[0] <= 0.3 <= table.high[0]


def test_rate_table_reports_design_effect_and_rows(study):
    table = preference_rates(study.judgments, n_boot=200)
    assert table.replicates.shape == (200, 3)
    assert ((table.design_effect > 1) & (table.effective_n < table.n)).all()
    assert (table.low < table.rate).all() and (table.rate < table.high).all()
    rows = table.rows()
    assert [row["label"] for row in rows] == [0, 1, 2]
    assert rows[0]["n"] == table.n[0] and "half_width" in rows[0]


def test_exclusions_are_a_mask_not_a_deletion(study):
    j = study.judgments
    keep = j.annotator != 0
    table = preference_rates(j, keep=keep, n_boot=50)
    assert table.n.sum() == keep.sum()
    assert len(j) == 3000


def test_percentile_interval_keeps_infinite_replicates():
    low, high = percentile_interval(np.r_[np.arange(90.0), np.full(10, np.inf)], 0.9)
    assert np.isfinite(low) and high == np.inf


def test_no_generated_judgments_give_an_empty_table_and_ids_stay_numbers():
    controls = Judgments.build(generator=[0, 0], item=[1, 2], annotator=[1, 1], generated_left=[True, False],
                               chose_generated=[True, False], kind=["catch", "calibration"])
    table = preference_rates(controls, n_boot=20)
    assert table.labels == () and table.rows() == []
    judged = Judgments.build(generator=[12, 7, 12], item=[1, 2, 3], annotator=[1, 1, 2],
                             generated_left=[True, False, True], chose_generated=[True, False, False])
    assert judged.generator_labels == (7, 12)


def test_a_generator_without_judgments_gets_a_row_with_n_zero_and_leaves_the_others_alone(study):
    j = study.judgments
    columns = dict(generator=np.where(j.generator >= 0, j.generator, -1), item=j.item, annotator=j.annotator,
                   generated_left=j.generated_left, chose_generated=j.chose_generated, kind=j.kind)
    alone = preference_rates(Judgments.build(**columns), n_boot=200, seed=1)
    judgments = Judgments.build(**columns, generators=[1, 9])
    assert judgments.generator_labels == (0, 1, 2, 9)
    table = preference_rates(judgments, n_boot=200, seed=1)
    (idle,) = [row for row in table.rows() if row["label"] == 9]
    assert (idle["n"], idle["n_items"], idle["n_annotators"]) == (0, 0, 0)
    assert np.isnan([idle["rate"], idle["low"], idle["high"], idle["cgm_se"]]).all()
    np.testing.assert_array_equal(table.rate[:3], alone.rate)
    np.testing.assert_allclose(np.c_[table.low[:3], table.high[:3]], np.c_[alone.low, alone.high], rtol=1e-6)
