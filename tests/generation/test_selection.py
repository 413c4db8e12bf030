"""Filters and seeded samples of a corpus' items (`generation.selection`)."""

import random
from collections import Counter

import pytest

from generation.selection import (
    SelectionError,
    allocate,
    FilterRun,
    facts_of,
    parse_where,
    sample_keys,
)


def rows(n: int, seed: int = 0):
    rng = random.Random(seed)
    made = []
    for i in range(n):
        width, height = rng.choice([(256, 256), (512, 512), (1024, 768), (300, 900)])
        meta = {"pwatermark": rng.random(), "aesthetic": rng.uniform(3, 7), "category": rng.choice("abc")}
        if i % 10 == 0:
            del meta["aesthetic"]
        made.append((facts_of(width, height, format="JPEG"), meta))
    return made


def test_filters_apply_in_order_and_count_what_each_removed():
    data = rows(1000)
    wheres = [parse_where("width>=512"), parse_where("meta.pwatermark < 0.5"), parse_where("meta.aesthetic>=5")]
    result = filtered(data, wheres)
    expected = [i for i, (facts, meta) in enumerate(data)
                if facts["width"] >= 512 and meta["pwatermark"] < 0.5 and meta.get("aesthetic", 0) >= 5]
    assert result.kept == expected
    small = sum(facts["width"] < 512 for facts, _ in data)
    assert result.removed[0] == ("width>=512", small)
    assert sum(n for _, n in result.removed) == 1000 - len(expected) and result.total == 1000
    # Text and the aspect: equality on text, width / height.
    assert filtered(data, [parse_where("meta.category==a"), parse_where("aspect<1")]).kept == [
        i for i, (facts, meta) in enumerate(data) if meta["category"] == "a" and facts["aspect"] < 1]


@pytest.mark.parametrize("text, says", [
    ("size>=5", "is no field"), ("width>>5", "needs a number"), ("meta.category>=big", "needs a number"),
    ("width>=", "no value"), ("", "write FIELD OP VALUE"),
])
def test_a_bad_filter_is_refused_by_name(text, says):
    with pytest.raises(SelectionError, match=says):
        parse_where(text)


def test_a_filter_on_a_missing_field_text_against_a_number_or_that_keeps_nothing_is_an_error():
    data = rows(50)
    with pytest.raises(SelectionError, match="no item has the field meta.nsfw"):
        filtered(data, [parse_where("meta.nsfw<0.5")])
    with pytest.raises(SelectionError, match="compares meta.category with a number"):
        filtered(data, [parse_where("meta.category<5")])
    with pytest.raises(SelectionError, match="leave no item of 50"):
        filtered(data, [parse_where("width>5000")])


def test_the_same_seed_gives_the_same_sample_in_any_order_and_a_larger_one_adds_items():
    keys = [f"{i:06d}" for i in range(5000)]
    first = sample_keys(keys, 300, seed=7)
    shuffled = keys[:]
    random.Random(1).shuffle(shuffled)
    assert set(sample_keys(shuffled, 300, seed=7)) == set(first) and len(first) == 300
    assert set(first) <= set(sample_keys(keys, 400, seed=7))
    assert set(sample_keys(keys, 300, seed=8)) != set(first)
    # Close to uniform: the first and second halves of the keys each give about half.
    assert 110 <= sum(key < "002500" for key in first) <= 190


def test_stratified_samples_share_proportionally_or_equally():
    keys = [f"k{i}" for i in range(1000)]
    strata = ["big"] * 700 + ["mid"] * 250 + ["tiny"] * 50
    of = dict(zip(keys, strata))
    proportional = Counter(of[k] for k in sample_keys(keys, 100, seed=1, strata=strata))
    assert proportional == {"big": 70, "mid": 25, "tiny": 5}
    equal = Counter(of[k] for k in sample_keys(keys, 120, seed=1, strata=strata, allocation="equal"))
    assert equal == {"big": 40, "mid": 40, "tiny": 40}
    # A stratum smaller than its equal share gives the rest to the others.
    assert allocate({"a": 10, "b": 1000, "c": 1000}, 300, "equal") == {"a": 10, "b": 145, "c": 145}
    assert sum(allocate({"a": 3, "b": 3, "c": 3}, 7, "proportional").values()) == 7
    with pytest.raises(SelectionError, match="allocation"):
        sample_keys(keys, 10, seed=1, strata=strata, allocation="optimal")


def filtered(rows, wheres):
    """The filters over all rows at once (what an import does record by record)."""
    run = FilterRun(wheres)
    for facts, meta in rows:
        run.passes(facts, meta)
    return run.result()
