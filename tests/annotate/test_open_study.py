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
