"""Head-to-head judgments in the stats package: the opponent column of `Judgments`, the
Bradley-Terry feeder `study_trials`, agreement keys, and `pairs.uncertain_pairs`."""

import numpy as np
import pytest

from analysis.stats import (
    GENERATED,
    HEAD_TO_HEAD,
    KINDS,
    Judgments,
    bradley_terry,
    preference_rates,
    simulate_bradley_terry,
    study_trials,
    vs_real_trials,
)
from analysis.stats.agreement import trial_codes
from analysis.stats.pairs import order_doubt, uncertain_pairs

THETA = np.array([-1.5, -0.8, -0.2, 0.4])


def as_judgments(sim, seed: int = 0) -> Judgments:
    """A simulated Bradley-Terry study as `Judgments`: the probe of a head-to-head
    trial is one of its two generators at random, the other its opponent."""
    a = sim.arrays
    left, right, chose_left = a["left"], a["right"], a["chose_left"]
    vs_real = (left < 0) | (right < 0)
    coin = np.random.default_rng(seed).random(len(left)) < 0.5
    probe_left = np.where(vs_real, left >= 0, coin)
    generator = np.where(probe_left, left, right)
    opponent = np.where(vs_real, -1, np.where(probe_left, right, left))
    return Judgments.build(
        generator=generator, opponent=opponent, item=a["item"], annotator=a["annotator"],
        generated_left=probe_left, chose_left=chose_left,
        kind=np.where(vs_real, "generated", "head_to_head"), generators=list(range(len(a["labels"]))),
    )


def small(**columns):
    base = dict(generator=[10, 10, 20, None], opponent=[None, 20, 10, None], item=[1, 2, 3, 4],
                annotator=[1, 1, 2, 2], generated_left=[1, 0, 1, 0], chose_generated=[1, 1, 0, 0],
                kind=["generated", "head_to_head", "head_to_head", "catch"])
    return Judgments.build(**{**base, **columns})


def test_head_to_head_is_a_kind_with_code_3():
    assert KINDS.index("head_to_head") == HEAD_TO_HEAD == 3


def test_opponent_codes_share_the_generator_labels():
    j = small(generator=[10, 10, 20, None], opponent=[None, 30, 10, None])
    # 30 is only ever an opponent: it still gets a code.
    assert j.generator_labels == (10, 20, 30)
    assert j.generator.tolist() == [0, 0, 1, -1]
    assert j.opponent.tolist() == [-1, 2, 0, -1]
    assert j.kind.tolist() == [GENERATED, HEAD_TO_HEAD, HEAD_TO_HEAD, 1]


def test_opponent_ignored_on_other_rows_and_defaults_to_minus_one():
    j = small(opponent=[99, 20, 10, 77])
    assert j.opponent.tolist() == [-1, 1, 0, -1]
    plain = Judgments.build(generator=[1, 2], item=[1, 2], annotator=[1, 1], generated_left=[1, 0],
                            chose_generated=[0, 1])
    assert plain.opponent.tolist() == [-1, -1]


@pytest.mark.parametrize("opponent, message", [
    ([None, 10, 10, None], "column opponent: row 1 holds 0, not a generator other than the row's own"),
    ([None, None, 10, None], "column opponent: row 1 holds None"),
])
def test_build_refuses_bad_opponents_naming_column_and_row(opponent, message):
    with pytest.raises(ValueError, match=message):
        small(opponent=opponent)


def test_build_refuses_head_to_head_without_opponent_column():
    with pytest.raises(ValueError, match="column opponent: row 1 is a head-to-head trial"):
        small(opponent=None)


def _codes(**changes):
    columns = dict(generator=np.array([0, 0, 1]), opponent=np.array([-1, 1, 0]), item=np.zeros(3, int),
                   annotator=np.zeros(3, int), chose_generated=np.ones(3, bool), generated_left=np.ones(3, bool),
                   chose_left=np.ones(3, bool), kind=np.array([0, 3, 3]), correct=np.zeros(3, bool),
                   rt_ms=np.zeros(3), order=np.arange(3))
    return Judgments(**{**columns, **changes})


@pytest.mark.parametrize("changes, message", [
    ({"opponent": np.array([-1, 1, -1])}, "column opponent: row 2 holds -1, not a generator code"),
    ({"opponent": np.array([-1, 0, 0])}, "column opponent: row 1 holds 0, not a generator other"),
    ({"opponent": np.array([1, 1, 0])}, r"column opponent: row 0 holds 1, not -1 \(the trial is not head-to-head\)"),
    ({"generator": np.array([0, -1, 1])}, "column generator: row 1 holds -1"),
    ({"opponent": np.array([-1, 1, 0.5])}, "column opponent: row 2 holds 0.5, not an integer code"),
])
def test_codes_refused_naming_column_and_row(changes, message):
    with pytest.raises(ValueError, match=message):
        _codes(**changes)


def test_opponent_beyond_the_labels_is_refused():
    with pytest.raises(ValueError, match="column opponent: row 1 holds 5"):
        _codes(opponent=np.array([-1, 5, 0]), generator_labels=("a", "b"))


def test_study_trials_put_the_opponent_in_the_real_images_place():
    j = small(generator=[10, 10, 20, None], opponent=[None, 20, 10, None])
    arrays = study_trials(j)
    # Row 0: vs-real, probe on the left. Row 1: probe 10 (code 0) on the right against 20.
    # Row 2: probe 20 (code 1) on the left against 10. The catch row is left out.
    assert arrays["left"].tolist() == [0, 1, 1]
    assert arrays["right"].tolist() == [-1, 0, 0]
    assert arrays["chose_left"].tolist() == [True, False, False]
    assert arrays["labels"] == (10, 20)
    assert vs_real_trials(j)["left"].tolist() == [0]
    kept = study_trials(j, keep=np.array([True, False, True, True]))
    assert kept["left"].tolist() == [0, 1]


def test_rates_ignore_head_to_head_judgments():
    sim = simulate_bradley_terry(THETA, n_judgments=3000, vs_real_share=0.5, seed=2)
    j = as_judgments(sim)
    vs_real = j.kind == GENERATED
    rates = preference_rates(j, n_boot=0)
    assert rates.n.tolist() == np.bincount(j.generator[vs_real], minlength=4).tolist()


def test_agreement_tells_head_to_head_trials_apart():
    # The same generator and prompt: a vs-real trial and head-to-head trials against two
    # opponents, and one against the first opponent on another sample.
    j = Judgments.build(generator=[1, 1, 1, 1], opponent=[None, 2, 3, 2], item=[5, 5, 5, 5],
                        annotator=[1, 2, 3, 4], generated_left=[1, 1, 1, 1], chose_generated=[1, 1, 1, 1],
                        kind=["generated", "head_to_head", "head_to_head", "head_to_head"], sample=[7, 8, 9, 10])
    codes, n = trial_codes(j)
    assert n == 4 and len(set(codes.tolist())) == 4


def test_pooled_fit_through_judgments_recovers_theta_and_is_narrower():
    # Eight generators, as in the bench: with few generators, head-to-head judgments
    # add little, as the scale's level rests on the vs-real half of the judgments.
    theta = np.linspace(-2.0, 0.5, 8)
    widths = {"pooled": [], "vs-real": []}
    for seed in range(4):
        for share, name in ((0.5, "pooled"), (1.0, "vs-real")):
            sim = simulate_bradley_terry(theta, n_judgments=8000, vs_real_share=share, gamma=0.2, n_items=300,
                                         n_annotators=40, item_sd=0.5, annotator_sd=0.3, seed=seed)
            fit = bradley_terry(**study_trials(as_judgments(sim, seed)), n_boot=0)
            assert np.all(np.abs(fit.theta - sim.truth_theta) < 4 * fit.se)
            assert np.all((fit.rate_low <= fit.rate) & (fit.rate <= fit.rate_high))
            widths[name].append(fit.rate_high - fit.rate_low)
    # Equal total judgments: the pooled intervals are narrower on average.
    pooled, alone = np.mean(widths["pooled"], axis=0), np.mean(widths["vs-real"], axis=0)
    assert pooled.mean() < 0.95 * alone.mean()


def _fit(theta, n=6000, seed=0, share=0.4):
    sim = simulate_bradley_terry(np.asarray(theta), n_judgments=n, vs_real_share=share, n_items=200,
                                 n_annotators=30, seed=seed)
    return bradley_terry(**sim.arrays, n_boot=0)


def test_uncertain_pairs_rank_close_generators_first():
    fit = _fit([-2.0, -0.3, -0.25, 1.5])
    doubt = order_doubt(fit)
    assert np.isnan(doubt[0, 0]) and doubt[1, 2] == doubt[2, 1]
    assert doubt[1, 2] > 0.2 and doubt[0, 3] < 1e-6
    pairs = uncertain_pairs(fit, 3)
    assert pairs[0] == (1, 2)
    assert len(pairs) == 3 and len(set(pairs)) == 3
    assert all(a < b for a, b in pairs)
    assert uncertain_pairs(fit, 0) == []
    assert len(uncertain_pairs(fit, 100)) == 6


def test_unidentified_generators_come_first_with_their_nearest_neighbour():
    sim = simulate_bradley_terry(np.array([-1.0, -0.9, 0.5]), n_judgments=3000, vs_real_share=1.0, seed=1)
    a = sim.arrays
    # A fourth generator judged only vs real, always losing: no finite strength, direct rate 0.
    n = 40
    arrays = {k: np.r_[a[k], v] for k, v in (("left", np.full(n, 3)), ("right", np.full(n, -1)),
                                              ("chose_left", np.zeros(n, bool)),
                                              ("item", np.arange(n) % 200), ("annotator", np.arange(n) % 30))}
    fit = bradley_terry(**arrays, labels=(0, 1, 2, 3), n_boot=0)
    assert not np.isfinite(fit.theta[3]) and fit.direct_rate[3] == 0
    pairs = uncertain_pairs(fit, 2)
    # Its nearest neighbour by direct rate is the weakest identified generator.
    assert pairs[0] == (0, 3)
    assert pairs[1] == (0, 1)
