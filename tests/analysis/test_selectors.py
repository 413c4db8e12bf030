"""analysis.selectors.study_data: a study's judgments as numeric columns, checked judgment by
judgment against a small study written by hand."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from analysis.selectors import report_input, study_data, study_fingerprint, study_rules
from analysis.stats import CALIBRATION, CATCH, GENERATED
from annotate.models import Annotator, Assignment, Judgment, Side, Study, Trial
from generation.models import Generator, Item, Sample
from tests.annotate.builders import build_study

T0 = datetime(2025, 5, 1, 9, 0, tzinfo=UTC)


def judge(trial, annotator, *, reference, choice, at, client_ms=900):
    assignment = Assignment.objects.create(
        trial=trial, annotator=annotator, study=trial.study, item=trial.item, reference_side=reference,
        issued_at=at - timedelta(seconds=5), expires_at=at + timedelta(minutes=10),
    )
    judgment = Judgment.objects.create(assignment=assignment, choice=choice, client_response_ms=client_ms,
                                       server_response_ms=1000)
    Judgment.objects.filter(pk=judgment.pk).update(created_at=at)


@pytest.fixture
def study(db):
    """Judgments, in this order (annotators alternate, the second is simulated):
      0 g1 real left,  chose right -> generated chosen (probe on the right)
      1 g0 real right, chose right -> real chosen (probe on the left)
      2 catch real left, chose left -> passed
      3 calibration real right, chose left -> probe chosen
      4 practice (never analysed)
      5 g1 real right, chose left -> generated chosen, no client time
    """
    study = build_study(generators=2, items=6, slug="sel")
    g0, g1 = Generator.objects.filter(workspace=study.workspace).order_by("name")
    items = list(Item.objects.filter(corpus=study.corpus).order_by("key"))

    def trial(kind, item, generator=None):
        sample = Sample.objects.get(generator=generator, item=item) if generator else None
        return Trial.objects.create(study=study, kind=kind, item=item, sample=sample, generator=generator)

    who = [Annotator.objects.create(source=Annotator.Source.PROLIFIC, external_id="PID-0"),
           Annotator.objects.create(source=Annotator.Source.SIMULATED)]
    plan = [
        (trial(Trial.Kind.GENERATED, items[0], g1), Side.LEFT, Side.RIGHT, 900),
        (trial(Trial.Kind.GENERATED, items[1], g0), Side.RIGHT, Side.RIGHT, 1200),
        (trial(Trial.Kind.CATCH, items[2]), Side.LEFT, Side.LEFT, 300),
        (trial(Trial.Kind.CALIBRATION, items[3]), Side.RIGHT, Side.LEFT, 800),
        (trial(Trial.Kind.PRACTICE, items[4]), Side.LEFT, Side.LEFT, 900),
        (trial(Trial.Kind.GENERATED, items[5], g1), Side.RIGHT, Side.LEFT, None),
    ]
    for n, (t, reference, choice, ms) in enumerate(plan):
        judge(t, who[n % 2], reference=reference, choice=choice, at=T0 + timedelta(minutes=n), client_ms=ms)
    study.g0, study.g1, study.who, study.items = g0, g1, who, items
    return study


def test_columns_match_the_judgments(study):
    data = study_data(study=study)
    j = data.judgments
    assert len(j) == 5  # practice left out
    assert j.generator_labels == (study.g0.pk, study.g1.pk)
    labels = [j.generator_labels[g] if g >= 0 else None for g in j.generator]
    assert labels == [study.g1.pk, study.g0.pk, None, None, study.g1.pk]
    assert j.kind.tolist() == [GENERATED, GENERATED, CATCH, CALIBRATION, GENERATED]
    assert [j.item_labels[i] for i in j.item] == [study.items[k].pk for k in (0, 1, 2, 3, 5)]
    assert [j.annotator_labels[a] for a in j.annotator] == [study.who[n % 2].pk for n in (0, 1, 2, 3, 5)]
    assert j.generated_left.tolist() == [False, True, False, True, True]
    assert j.chose_generated.tolist() == [True, False, False, True, True]
    assert j.chose_left.tolist() == [False, False, True, True, True]
    assert j.correct.tolist() == [False, False, True, False, False]  # only the catch trial can be correct
    assert j.rt_ms[:4].tolist() == [900, 1200, 300, 800] and np.isnan(j.rt_ms[4])
    assert j.time_s.tolist() == [(T0 + timedelta(minutes=n)).timestamp() for n in (0, 1, 2, 3, 5)]
    assert j.order.tolist() == [0, 0, 1, 1, 2]
    assert data.pseudonyms == {a.pk: str(a.pseudonym) for a in study.who}
    assert data.sources == {study.who[0].pk: "prolific", study.who[1].pk: "simulated"}
    assert set(data.generators) == {study.g0.pk, study.g1.pk}
    assert data.generator(0) == study.g0


def test_report_input_names_codes_without_ids(study):
    data = report_input(study=study)
    assert [g.name for g in data.generators] == [study.g0.name, study.g1.name]
    assert [a.pseudonym for a in data.annotators] == [str(a.pseudonym) for a in study.who]
    assert [a.simulated for a in data.annotators] == [False, True]
    assert data.configuration["slug"] == "sel" and data.configuration["presentation_policy"]["size"] == 512


def test_an_empty_study_loads_with_its_generators(db):
    study = build_study(generators=1, items=2, slug="none")
    data = study_data(study=study)
    assert len(data.judgments) == 0 and data.judgments.generator_labels == (study.generators.get().pk,)


def test_rules_from_the_study_settings(study):
    rules = study_rules(study=study)
    assert (rules.min_catch_accuracy, rules.min_catch_trials, rules.max_fast_share, rules.fast_ms) == (0.8, 1, 0.2, 400.0)
    assert rules.side_bias_alpha is None and rules.min_agreement is None
    Study.objects.filter(pk=study.pk).update(
        exclude_catch_accuracy_below=None, min_catch_trials=4, fast_response_ms=250, exclude_side_bias=True,
        exclude_agreement_below=0.6)
    study.refresh_from_db()
    rules = study_rules(study=study)
    assert rules.min_catch_accuracy is None and rules.min_catch_trials == 4 and rules.fast_ms == 250.0
    assert rules.side_bias_alpha == 0.05 and rules.min_agreement == 0.6


def test_the_fingerprint_follows_data_settings_and_generators_but_not_generators_done(study):
    first, count = study_fingerprint(study=study)
    assert count == 5
    Study.objects.filter(pk=study.pk).update(generators_done=[study.g0.pk])
    study.refresh_from_db()
    assert study_fingerprint(study=study)[0] == first
    Generator.objects.filter(pk=study.g0.pk).update(metrics={"fid": 12.0})
    second = study_fingerprint(study=study)[0]
    assert second != first
    Study.objects.filter(pk=study.pk).update(exclude_fast_share_above=0.3)
    study.refresh_from_db()
    third = study_fingerprint(study=study)[0]
    assert third != second
    judge(Trial.objects.filter(study=study, kind="generated").first(), Annotator.objects.create(source="invite"),
          reference=Side.LEFT, choice=Side.LEFT, at=T0 + timedelta(hours=1))
    assert study_fingerprint(study=study) != (third, 5)
    assert study_fingerprint(study=study, extra={"n_boot": 1})[0] != study_fingerprint(study=study)[0]


def test_times_keep_their_microseconds(study):
    # The second a fraction of .9996 s would round up to, at millisecond precision.
    times = [T0 + timedelta(hours=2, microseconds=123_457), T0 + timedelta(hours=3, seconds=41, microseconds=999_600)]
    for at in times:
        judge(Trial.objects.filter(study=study, kind="generated").first(), Annotator.objects.create(source="invite"),
              reference=Side.LEFT, choice=Side.RIGHT, at=at)
    assert study_data(study=study).judgments.time_s[-2:].tolist() == [at.timestamp() for at in times]
