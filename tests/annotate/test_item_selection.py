"""A study's items through its filters and seeded, stratified sample (`services.items`):
trials only on the selected items, the selection recorded, bad filters refused before
anything is built."""

from collections import Counter

import pytest

from annotate import services
from annotate.errors import StudyInvalid
from annotate.models import Trial
from annotate.services.items import study_items
from generation.selection import FilterRun, SelectionError, facts_of, parse_filters
from generation.models import Item
from tests.annotate.builders import build_study

pytestmark = pytest.mark.django_db


def labelled(study, n: int):
    """Give the study's items sizes and metadata: every 4th small, category by thirds."""
    items = list(Item.objects.filter(corpus=study.corpus).order_by("id"))
    for i, item in enumerate(items[:n]):
        item.width = item.height = 128 if i % 4 == 0 else 512
        item.meta = {"category": "abc"[i % 3], "pwatermark": 0.9 if i % 5 == 0 else 0.1}
    Item.objects.bulk_update(items[:n], ["width", "height", "meta"])
    return items


def test_trials_are_built_only_on_the_filtered_sample_and_the_selection_is_recorded(db):
    study = build_study(generators=2, items=60, practice=2, catch_rate=0.2, calibration_rate=0.1,
                        head_to_head_share=0.5)
    items = labelled(study, 60)
    services.study_update(study=study, item_filters=["width>=512", "meta.pwatermark<0.5"], sample_size=24,
                          sample_seed=3, stratify_by="meta.category", allocation="equal")
    services.study_build_trials(study=study, rng_seed=1)
    study.refresh_from_db()
    passing = {item.pk for i, item in enumerate(items) if i % 4 and i % 5}
    used = set(Trial.objects.filter(study=study).values_list("item_id", flat=True))
    assert used <= passing and len(used) == 24
    selection = study.item_selection
    assert selection["items"] == 60 and selection["sampled"] == 24 and selection["after_filters"] == len(passing)
    assert selection["filters"] == [{"where": "width>=512", "removed": 15},
                                    {"where": "meta.pwatermark<0.5", "removed": 60 - 15 - len(passing)}]
    assert selection["per_stratum"] == {"a": 8, "b": 8, "c": 8}
    by_kind = Counter(Trial.objects.filter(study=study).values_list("kind", flat=True))
    assert by_kind["practice"] == 2 and by_kind["generated"] == 2 * 22 and by_kind["head_to_head"] == 22
    # The same settings on another study give the same items.
    twin = build_study(generators=1, items=60, slug="twin")
    twin_items = labelled(twin, 60)
    services.study_update(study=twin, item_filters=["width>=512", "meta.pwatermark<0.5"], sample_size=24,
                          sample_seed=3, stratify_by="category", allocation="equal", practice_trials=0)
    services.study_build_trials(study=twin)
    same = {items.index(Item.objects.get(pk=pk)) for pk in used}
    assert {twin_items.index(Item.objects.get(pk=pk)) for pk in
            Trial.objects.filter(study=twin).values_list("item_id", flat=True)} == same


@pytest.mark.parametrize("filters, says", [
    (["meta.nsfw<0.5"], "no item has the field meta.nsfw"),
    (["meta.category>=2"], "compares meta.category with a number"),
    (["width>=4096"], "leave no item"),
])
def test_a_filter_that_cannot_apply_builds_nothing(db, filters, says):
    study = build_study(generators=1, items=10, practice=1)
    labelled(study, 10)
    services.study_update(study=study, item_filters=filters)
    with pytest.raises(StudyInvalid, match=says) as error:
        services.study_build_trials(study=study)
    assert error.value.field == "item_filters"
    assert not Trial.objects.filter(study=study).exists()


def test_a_filter_badly_written_is_refused_when_the_study_is_saved(db):
    study = build_study(generators=1, items=3)
    with pytest.raises(StudyInvalid, match="is no field") as error:
        services.study_update(study=study, item_filters=["resolution>=512"])
    assert error.value.field == "item_filters"
    study.refresh_from_db()
    with pytest.raises(StudyInvalid, match="must be one of"):
        services.study_update(study=study, allocation="optimal")


def test_the_database_filters_agree_with_the_import_filters(db):
    """`services.items` filters in SQL, an import in Python (`generation.selection`): same answers."""
    import random


    study = build_study(generators=1, items=120)
    rng = random.Random(5)
    items = list(Item.objects.filter(corpus=study.corpus).order_by("id"))
    for item in items:
        item.width, item.height = rng.choice([(100, 100), (512, 256), (256, 512), (1024, 1024)])
        item.format = rng.choice(["PNG", "JPEG"])
        item.meta = {k: v for k, v in (("aesthetic", round(rng.uniform(3, 7), 1)), ("tag", rng.choice("xyz")),
                                       ("pwatermark", rng.choice([0.1, 0.5, 0.9, None])))
                     if rng.random() < 0.85}
    Item.objects.bulk_update(items, ["width", "height", "format", "meta"])
    pool = ["width>=512", "height<512", "aspect>1", "aspect<=1", "format==JPEG", "format!=PNG", "meta.aesthetic>=5",
            "meta.aesthetic<4.5", "meta.tag==x", "meta.tag!=y", "meta.pwatermark<0.5", "meta.pwatermark!=0.9"]
    rows = [(facts_of(i.width, i.height, format=i.format), i.meta) for i in items]
    for trial in range(25):
        filters = rng.sample(pool, rng.randint(1, 3))
        study.item_filters, study.sample_size = filters, None
        try:
            expected = filtered(rows, parse_filters(filters))
        except SelectionError as exc:
            with pytest.raises(StudyInvalid) as refused:
                study_items(study)
            assert str(refused.value) == str(exc)
            continue
        ids, record = study_items(study)
        assert ids == [items[i].pk for i in expected.kept], filters
        assert [(f["where"], f["removed"]) for f in record["filters"]] == expected.removed, filters


def test_the_study_page_shows_what_the_selection_did(db):
    from tests.annotate.test_research_pages import member

    study = build_study(generators=1, items=30)
    labelled(study, 30)
    services.study_update(study=study, item_filters=["width>=512"], sample_size=10, stratify_by="category")
    services.study_build_trials(study=study, rng_seed=1)
    html = member(study).get(f"/studies/{study.slug}/").content.decode()
    assert "<code>width&gt;=512</code> removed 8" in html and "a sample of 10 (seed 0, proportional by category" in html


def test_configure_study_sets_the_filters_and_the_sample(db):
    from django.core.management import call_command

    study = build_study(generators=1, items=10)
    call_command("configure_study", study.slug, "item_filters=width>=512; meta.aesthetic>=5", "sample_size=50",
                 "stratify_by=category", "allocation=equal")
    study.refresh_from_db()
    assert (study.item_filters, study.sample_size, study.stratify_by, study.allocation) == (
        ["width>=512", "meta.aesthetic>=5"], 50, "category", "equal")


def filtered(rows, wheres):
    """The filters over all rows at once (what an import does record by record)."""
    run = FilterRun(wheres)
    for facts, meta in rows:
        run.passes(facts, meta)
    return run.result()
