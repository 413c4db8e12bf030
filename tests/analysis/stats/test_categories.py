"""Rates per category (`stats.categories`): a simulated study whose generators are near
parity on one kind of prompt and far from it on another."""

import numpy as np
import pytest

from analysis.stats.categories import NO_VALUE, category_codes, category_rates, category_value
from tests.analysis.stats.simulated_categories import ITEMS, TRUTH, two_category_study


def test_the_category_near_parity_comes_first_and_every_interval_covers_its_truth():
    judgments, codes, values = two_category_study()
    rates = category_rates(judgments, codes, values, n_boot=400, seed=1)
    assert values == ("landscape", "people")
    assert [values[v] for v in rates.ranking()] == ["landscape", "people"]
    assert rates.best.tolist() == [0, 0]
    assert rates.gap[0] == pytest.approx(0.5 - 0.48, abs=0.06) and rates.gap[1] > 0.2
    low, high, adjusted_low, adjusted_high = (rates.grid(name) for name in
                                              ("low", "high", "adjusted_low", "adjusted_high"))
    for v, value in enumerate(values):
        for g, truth in enumerate(TRUTH[value]):
            assert low[v, g] <= truth <= high[v, g]
            # The Bonferroni interval holds the plain one.
            assert adjusted_low[v, g] <= low[v, g] and high[v, g] <= adjusted_high[v, g]
    assert rates.family == 4 and rates.adjusted_level == pytest.approx(1 - 0.05 / 4)
    assert rates.n_items.tolist() == [ITEMS, ITEMS]
    assert rates.n_judgments.sum() == len(judgments)
    # Every judgment is in exactly one (value, generator) group, as in the main table.
    assert rates.grid("n").sum(axis=0).tolist() == np.bincount(judgments.generator, minlength=2).tolist()


def test_a_small_stratum_is_flagged_shows_no_interval_and_is_never_the_best():
    judgments, codes, values = two_category_study(small=8)
    rates = category_rates(judgments, codes, values, n_boot=200)
    rare = values.index("rare")
    flags = rates.table.flags[rates.group(rare, 0)]
    assert "too_few_judgments" in flags
    assert np.isnan(rates.grid("low")[rare, 0]) and np.isnan(rates.grid("adjusted_low")[rare, 0])
    # Generator 1 has no judgment of it at all.
    assert rates.table.flags[rates.group(rare, 1)] == ("no_judgments",)
    assert rates.best[rare] == -1 and rates.ranking()[-1] == rare
    assert rates.family == 4  # the rare stratum's rates show no interval, so they are not in the family


def test_kept_judgments_only():
    judgments, codes, values = two_category_study()
    # Half the landscape prompts, no people prompt.
    keep = np.isin(judgments.item, np.flatnonzero(np.asarray(judgments.item_labels) < ITEMS // 2))
    rates = category_rates(judgments, codes, values, keep=keep, n_boot=50)
    assert rates.n_judgments.tolist() == [int(keep.sum()), 0]
    assert rates.best[1] == -1


@pytest.mark.parametrize(("value", "text"), [
    ("people", "people"), ("  people ", "people"), ("", None), ("   ", None), (None, None), (3, "3"),
    (3.0, "3"), (0.25, "0.25"), (True, "true"), (False, "false"), (float("nan"), None), (["a", "b"], None),
    ({"a": 1}, None),
])
def test_which_metadata_values_name_a_category(value, text):
    assert category_value(value) == text


def test_codes_put_missing_values_apart():
    codes, values = category_codes(["b", None, "a", 1, 1.0, [], "b"])
    assert values == ("1", "a", "b")
    assert codes.tolist() == [2, NO_VALUE, 1, 0, 0, NO_VALUE, 2]


def test_a_category_array_of_the_wrong_length_is_refused():
    judgments, codes, values = two_category_study()
    with pytest.raises(ValueError, match="item_category has 3 entries"):
        category_rates(judgments, codes[:3], values, n_boot=10)
