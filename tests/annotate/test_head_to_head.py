"""Head-to-head trials and anchor generators: which pairs meet, the trials built for them,
their share of what the engine serves, what the annotator is shown, and the anchors'
share for the study's whole life."""

from collections import Counter

import pytest

from annotate import exports, services
from annotate.errors import StudyInvalid
from annotate.models import Annotator, Assignment, Trial
from annotate.selectors import image_source
from annotate.services.head_to_head import neighbour_pairs
from generation.models import Generator, Series
from tests.annotate.builders import annotators, build_study

pytestmark = pytest.mark.django_db


def _ladder(study, values: dict[str, dict]) -> list[Generator]:
    """Set the study's generators' scale facts (by position in id order), return them."""
    generators = list(study.generators.order_by("pk"))
    for generator, facts in zip(generators, values.values()):
        for name, value in facts.items():
            setattr(generator, name, value)
        generator.save()
    return generators


def judge_all(study, annotator: Annotator, *, choice: str = "left", limit: int = 10_000) -> list[Assignment]:
    """The assignments the annotator is served, each judged `choice`, until none is left (or `limit`)."""
    served = []
    while len(served) < min(limit, study.quota_per_annotator) and (
            assignment := services.assignment_next(study=study, annotator=annotator)):
        services.judgment_record(assignment_token=assignment.token, annotator=annotator, choice=choice)
        served.append(assignment)
    return served


# ------------------------------------------------------------------------------
# Which pairs meet
# ------------------------------------------------------------------------------
def test_neighbours_are_next_to_each_other_along_the_axis_within_each_series():
    one, two = Series(pk=1, name="a"), Series(pk=2, name="b")
    made = [
        Generator(pk=10, series=one, params=400), Generator(pk=11, series=one, params=100),
        Generator(pk=12, series=one, params=200), Generator(pk=13, series=two, train_step=9),
        Generator(pk=14, series=two, train_step=3), Generator(pk=15, series=None), Generator(pk=16, series=None),
    ]
    assert neighbour_pairs(made) == [(11, 12), (12, 10), (14, 13), (15, 16)]
    # A named axis: here no generator of series one has a value on it, so they go by id.
    assert neighbour_pairs(made[:3], "train_step") == [(10, 11), (11, 12)]
    steps = [Generator(pk=20 + i, series=one, settings={"steps": s}) for i, s in enumerate((50, 10, 25))]
    assert neighbour_pairs(steps, "settings.steps") == [(21, 22), (22, 20)]


def test_the_build_makes_a_head_to_head_trial_per_neighbour_pair_and_prompt(db):
    study = build_study(generators=3, items=5, practice=1, head_to_head_share=0.5, seeds=(0, 1))
    small, middle, large = _ladder(study, {"S": {"params": 1}, "M": {"params": 2}, "L": {"params": 3}})
    created = services.study_build_trials(study=study, rng_seed=3)
    pairs = [[small.pk, middle.pk], [middle.pk, large.pk]]
    study.refresh_from_db()
    assert study.head_to_head_active == pairs
    h2h = Trial.objects.filter(study=study, kind=Trial.Kind.HEAD_TO_HEAD)
    practice = Trial.objects.get(study=study, kind=Trial.Kind.PRACTICE).item_id
    # 4 prompts after practice, one seed each (seeds_per_item is 1), per pair.
    assert h2h.count() == 2 * 4 and practice not in set(h2h.values_list("item_id", flat=True))
    for trial in h2h.select_related("sample", "opponent_sample"):
        assert [trial.generator_id, trial.opponent_id] in pairs
        assert trial.sample.generator_id == trial.generator_id and trial.opponent_sample.generator_id == trial.opponent_id
        assert trial.sample.item_id == trial.opponent_sample.item_id == trial.item_id
        assert trial.sample.seed == trial.opponent_sample.seed == 0
    assert created == Trial.objects.filter(study=study).count()
    # A second build makes nothing; two seeds per prompt pair seed with seed.
    assert services.study_build_trials(study=study) == 0
    services.study_update(study=study, seeds_per_item=2)
    assert services.study_build_trials(study=study) == 3 * 4 + 2 * 4
    assert set(h2h.values_list("sample__seed", "opponent_sample__seed")) == {(0, 0), (1, 1)}


def test_without_a_share_no_head_to_head_trial_is_built_until_one_is_set_on_the_open_study(db):
    study = build_study(generators=2, items=4)
    services.study_build_trials(study=study)
    services.study_open(study=study)
    assert not Trial.objects.filter(study=study, kind=Trial.Kind.HEAD_TO_HEAD).exists()
    services.study_update(study=study, head_to_head_share=0.4)
    assert Trial.objects.filter(study=study, kind=Trial.Kind.HEAD_TO_HEAD).count() == 4
    study.refresh_from_db()
    assert study.status == "open" and study.head_to_head_share == 0.4


# ------------------------------------------------------------------------------
# What the engine serves
# ------------------------------------------------------------------------------
def test_the_engine_gives_head_to_head_trials_their_share(db):
    study = build_study(generators=2, items=300, k=1, quota=200, head_to_head_share=0.3)
    services.study_build_trials(study=study, rng_seed=1)
    services.study_open(study=study)
    served = judge_all(study, annotators(1)[0])
    kinds = Counter(a.trial.kind for a in served)
    # 200 draws at 0.3 (sd 6.5), every pool far from empty.
    assert len(served) == 200 and 40 <= kinds["head_to_head"] <= 80, kinds


def test_a_head_to_head_trial_shows_both_samples_and_never_the_reference(db):
    study = build_study(generators=2, items=3, head_to_head_share=1.0)
    services.study_build_trials(study=study)
    services.study_open(study=study)
    for generator in study.generators.all():
        # Samples of distinct files, so that the slots can be told apart here.
        for sample in generator.samples.all():
            sample.image.name = f"samples/{generator.pk}-{sample.item_id}.png"
            sample.save()
    served = judge_all(study, annotators(1)[0])
    assert {a.trial.kind for a in served} == {Trial.Kind.HEAD_TO_HEAD}
    for assignment in served:
        trial = Trial.objects.select_related("sample", "opponent_sample").get(pk=assignment.trial_id)
        assignment = Assignment.objects.select_related("item", "trial").get(pk=assignment.pk)
        other = "left" if assignment.reference_side == "right" else "right"
        assert image_source(assignment=assignment, slot=assignment.reference_side)[0] == trial.opponent_sample.image.name
        assert image_source(assignment=assignment, slot=other)[0] == trial.sample.image.name
        assert assignment.item.image.name not in {image_source(assignment=assignment, slot=s)[0] for s in ("left", "right")}


def test_the_export_says_which_generator_won_a_head_to_head_judgment(db):
    study = build_study(generators=2, items=4, head_to_head_share=1.0)
    services.study_build_trials(study=study)
    services.study_open(study=study)
    served = judge_all(study, annotators(1)[0], choice="left")
    rows = [dict(zip(exports.COLUMNS, row)) for row in exports.export_rows(study=study)]
    assert len(rows) == len(served) == 4
    first, second = study.generators.order_by("pk")
    for row in rows:
        assert row["kind"] == "head_to_head"
        assert (row["generator_id"], row["opponent_id"], row["opponent"]) == (first.pk, second.pk, second.name)
        # The opponent stands where the reference would: the generator won where it was not chosen.
        assert row["chose_generated"] == (row["reference_side"] == "right")
    only_second = exports.ExportFilters(generator_ids=(second.pk,))
    assert len(list(exports.export_rows(study=study, filters=only_second))) == 4


def test_a_removed_generator_leaves_its_pairs_and_its_neighbours_meet(db):
    study = build_study(generators=3, items=4, head_to_head_share=1.0, k=1)
    small, middle, large = _ladder(study, {"S": {"params": 1}, "M": {"params": 2}, "L": {"params": 3}})
    services.study_build_trials(study=study)
    services.study_open(study=study)
    services.study_remove_generators(study=study, generators=[middle])
    study.refresh_from_db()
    assert study.head_to_head_active == [[small.pk, large.pk]]
    served = judge_all(study, annotators(1)[0])
    assert served and {(a.trial.generator_id, a.trial.opponent_id) for a in served
                       if a.trial.kind == Trial.Kind.HEAD_TO_HEAD} == {(small.pk, large.pk)}
    assert middle.pk not in {a.trial.generator_id for a in served}


def test_the_analysis_names_the_pairs_to_serve(db):
    study = build_study(generators=3, items=4, head_to_head_share=1.0, k=1)
    services.study_update(study=study, head_to_head_pairs="uncertain")
    services.study_build_trials(study=study)
    services.study_open(study=study)
    first, _, third = study.generators.order_by("pk")
    with pytest.raises(StudyInvalid, match="not two generators"):
        services.study_head_to_head_pairs_write(study=study, pairs=[(first.pk, first.pk)])
    assert services.study_head_to_head_pairs_write(study=study, pairs=[(first.pk, third.pk)]) == 4
    study.refresh_from_db()
    served = judge_all(study, annotators(1)[0])
    assert {(a.trial.generator_id, a.trial.opponent_id) for a in served
            if a.trial.kind == Trial.Kind.HEAD_TO_HEAD} == {(first.pk, third.pk)}


# ------------------------------------------------------------------------------
# Anchors
# ------------------------------------------------------------------------------
def test_anchors_get_their_share_and_are_served_after_they_are_done(db):
    study = build_study(generators=4, items=400, k=1, quota=400, anchors=1, anchor_share=0.05)
    services.study_build_trials(study=study, rng_seed=2)
    anchor = study.anchor_generators[0]
    # The analysis found every generator precise enough, the anchor too: only the anchor is still served.
    study.generators_done = list(study.generators.values_list("pk", flat=True))
    study.save(update_fields=["generators_done"])
    services.study_open(study=study)
    assert {a.trial.generator_id for a in judge_all(study, annotators(1)[0], limit=20)} == {anchor}
    study.generators_done = []
    study.save(update_fields=["generators_done"])
    served = judge_all(study, annotators(1)[0], limit=300)
    share = sum(a.trial.generator_id == anchor for a in served) / len(served)
    # 0.05 of 300 draws (sd 0.013), where without anchors it would get a quarter.
    assert 0.01 <= share <= 0.10, share


def test_anchors_must_be_generators_of_the_study(db):
    study = build_study(generators=2, items=2)
    stranger = Generator.objects.create(workspace=study.workspace, name="stranger")
    with pytest.raises(StudyInvalid, match="not generators of the study") as error:
        services.study_update(study=study, anchor_generators=[stranger.pk])
    assert error.value.field == "anchor_generators"
    with pytest.raises(StudyInvalid, match="no scale axis"):
        services.study_update(study=study, head_to_head_axis="size")
