import pytest
from django.core.management import CommandError, call_command

from annotate.models import Study
from tests.annotate.builders import build_study


def test_open_study_builds_trials_and_opens(db, capsys):
    study = build_study(generators=2, items=5, slug="cmd")
    call_command("open_study", "cmd", "--seed", "3")
    study.refresh_from_db()
    assert study.status == Study.Status.OPEN
    assert study.trials.filter(kind="generated").count() == 10
    out = capsys.readouterr().out
    assert "10 new trials" in out
    assert "/s/cmd/?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}" in out


def test_open_study_names_an_unknown_slug(db):
    with pytest.raises(CommandError, match="no study with slug 'nope'"):
        call_command("open_study", "nope")


def test_a_study_without_samples_is_not_opened(db):
    build_study(generators=0, items=3, slug="empty")
    with pytest.raises(CommandError, match="no trials"):
        call_command("open_study", "empty")
    assert Study.objects.get(slug="empty").status == Study.Status.DRAFT


@pytest.mark.parametrize("per_item", [1, 2, 3])
def test_seeds_per_item_builds_a_trial_for_each_of_the_lowest_seeds(db, per_item):
    from annotate import services
    from annotate.models import Annotator, Trial

    study = build_study(generators=2, items=4, seeds=(5, 1, 3), slug=f"seeds{per_item}")
    Study.objects.filter(pk=study.pk).update(seeds_per_item=per_item)
    study.refresh_from_db()
    created = services.study_build_trials(study=study)
    trials = Trial.objects.filter(study=study, kind=Trial.Kind.GENERATED)
    assert created == trials.count() == 2 * 4 * per_item
    seeds = {tuple(sorted(trials.filter(generator=g, item=i).values_list("sample__seed", flat=True)))
             for g, i in trials.values_list("generator", "item")}
    assert seeds == {(1, 3, 5)[:per_item]}
    # A second build adds nothing; an annotator still sees each prompt once.
    assert services.study_build_trials(study=study) == 0
    services.study_open(study=study)
    annotator = Annotator.objects.create(source=Annotator.Source.SIMULATED)
    items = []
    while (assignment := services.assignment_next(study=study, annotator=annotator)) is not None:
        items.append(assignment.trial.item_id)
        services.judgment_record(assignment_token=assignment.token, annotator=annotator, choice="left")
    assert sorted(items) == sorted(set(items)) and len(items) == 4
