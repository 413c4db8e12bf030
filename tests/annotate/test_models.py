"""The invariants of judging hold in the database itself, not only in Python."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotate.models import Annotator, AppendOnlyError, Assignment, Judgment, Study, Trial
from generation.models import Corpus, Generator, Item, Sample
from generation.presentation import PresentationPolicy


def _stored(**extra):
    return {"image": "originals/x.png", "sha256": "0" * 64, "width": 8, "height": 8,
            "format": "PNG", "mode": "RGB", "byte_size": 10, **extra}


@pytest.fixture
def study(workspace):
    corpus = Corpus.objects.create(workspace=workspace, name="c")
    items = [Item.objects.create(corpus=corpus, key=f"k{i}", caption=f"caption {i}", **_stored()) for i in range(2)]
    generator = Generator.objects.create(workspace=workspace, name="g")
    study = Study.objects.create(workspace=workspace, name="s", slug="s", corpus=corpus)
    study.generators.add(generator)
    for item in items:
        sample = Sample.objects.create(generator=generator, item=item, seed=0, **_stored())
        Trial.objects.create(study=study, item=item, sample=sample)
    Trial.objects.create(study=study, item=items[0], kind=Trial.Kind.CALIBRATION)
    return study


def _assign(trial, annotator, **extra):
    return Assignment.objects.create(
        trial=trial, annotator=annotator, study=trial.study, item=trial.item,
        reference_side="left", expires_at=timezone.now() + timedelta(minutes=10), **extra,
    )


def _refused(create):
    with pytest.raises(IntegrityError), transaction.atomic():
        create()


def test_at_most_one_judgment_per_assignment(study):
    annotator = Annotator.objects.create(source="invite")
    assignment = _assign(study.trials.first(), annotator)
    Judgment.objects.create(assignment=assignment, choice="left", server_response_ms=900)
    _refused(lambda: Judgment.objects.create(assignment=assignment, choice="right", server_response_ms=5))
    assert Judgment.objects.filter(assignment=assignment).count() == 1


def test_at_most_one_assignment_per_trial_and_annotator(study):
    annotator = Annotator.objects.create(source="invite")
    trial = study.trials.first()
    _assign(trial, annotator)
    _refused(lambda: _assign(trial, annotator))


def test_no_annotator_sees_one_reference_twice_in_a_study(study):
    annotator = Annotator.objects.create(source="invite")
    generated, calibration = study.trials.get(kind="generated", item__key="k0"), study.trials.get(kind="calibration")
    assert generated.item_id == calibration.item_id
    _assign(generated, annotator)
    _refused(lambda: _assign(calibration, annotator))
    # Another annotator may see it.
    _assign(calibration, Annotator.objects.create(source="invite"))


def test_side_and_choice_are_left_or_right(study):
    assignment = _assign(study.trials.first(), Annotator.objects.create(source="invite"))
    _refused(lambda: Assignment.objects.filter(pk=assignment.pk).update(reference_side="top"))
    _refused(lambda: Judgment.objects.create(assignment=assignment, choice="mid", server_response_ms=1))


def test_generated_trials_need_a_sample_and_controls_have_none(study):
    item = study.trials.first().item
    _refused(lambda: Trial.objects.create(study=study, item=item, kind=Trial.Kind.GENERATED))
    sample = Sample.objects.first()
    _refused(lambda: Trial.objects.create(study=study, item=item, kind=Trial.Kind.CATCH, sample=sample))


def test_judgments_are_append_only(study):
    annotator = Annotator.objects.create(source="invite")
    judgment = Judgment.objects.create(
        assignment=_assign(study.trials.first(), annotator), choice="left", server_response_ms=700
    )
    judgment.choice = "right"
    with pytest.raises(AppendOnlyError):
        judgment.save()
    with pytest.raises(AppendOnlyError):
        judgment.delete()
    assert Judgment.objects.get(pk=judgment.pk).choice == "left"


def test_crowd_ids_are_unique_per_platform(db):
    Annotator.objects.create(source="prolific", external_id="5f00")
    _refused(lambda: Annotator.objects.create(source="prolific", external_id="5f00"))
    # Anonymous invitees have no external id, and there may be many of them.
    Annotator.objects.create(source="invite")
    Annotator.objects.create(source="invite")


def test_study_rates_and_k_are_checked(workspace, study):
    _refused(lambda: Study.objects.filter(pk=study.pk).update(judgments_per_trial=0))
    _refused(lambda: Study.objects.filter(pk=study.pk).update(catch_rate=1.5))


def test_a_study_stores_a_valid_presentation_policy(study):
    assert PresentationPolicy.from_dict(study.presentation_policy) == PresentationPolicy()
    assert study.policy == PresentationPolicy()
    study.presentation_policy = {"size": 0}
    with pytest.raises(ValidationError, match="size"):
        study.full_clean()
