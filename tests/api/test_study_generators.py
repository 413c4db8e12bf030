"""Generators join and leave a running study: through the API, the command and the study
page; new trials are built and served first, old ones untouched, removed ones unserved."""

import pytest
from django.core.management import CommandError, call_command

from analysis.selectors import study_configuration
from annotate import services
from annotate.models import Annotator, Judgment, Study, Trial
from tests.api.conftest import session_client, token_client
from tests.api.test_studies import config, error, make_corpus

pytestmark = pytest.mark.django_db


@pytest.fixture
def studio(lab, other):
    return {workspace.slug: make_corpus(workspace, generators=3) for workspace in (lab, other)}


@pytest.fixture
def api(studio, researcher):
    return token_client(researcher)


@pytest.fixture
def running(api, studio):
    """An open study of the lab's first two generators; the third waits outside it."""
    body = config(studio, generators=[g.pk for g in studio["lab"]["generators"][:2]], catch_rate=0.0,
                  calibration_rate=0.0, practice_trials=0, judgments_per_trial=2)
    assert api.post("/api/v1/studies/", body, format="json").status_code == 201
    assert api.post("/api/v1/studies/ladder/open/", {}, format="json").status_code == 200
    return studio["lab"]["generators"]


def judge_everything_once(study_slug: str, annotators: int = 1) -> None:
    """Annotators who take and judge every trial they are given (one judgment per trial each)."""
    from annotate.models import Study

    study = Study.objects.get(slug=study_slug)
    for _ in range(annotators):
        annotator = Annotator.objects.create(source=Annotator.Source.SIMULATED)
        while (assignment := services.assignment_next(study=study, annotator=annotator)) is not None:
            services.judgment_record(assignment_token=assignment.token, annotator=annotator, choice="left")


def test_a_generator_joins_an_open_study_and_is_served_first(api, running):
    joining = running[2]
    # One annotator sees each prompt once: two cover the two generators' 12 trials.
    judge_everything_once("ladder", annotators=2)
    assert not Trial.objects.filter(study__slug="ladder", active_count=0).exists()
    before = list(Trial.objects.filter(study__slug="ladder").order_by("pk").values_list("pk", "active_count"))
    judged = Judgment.objects.count()

    response = api.post("/api/v1/studies/ladder/generators/", {"generators": [joining.name]}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["trials_created"] == 6 and joining.pk in body["generators"]
    assert body["generator_history"][-1] | {"at": None} == {"generator": joining.pk, "name": joining.name,
                                                           "event": "added", "at": None}
    # Nothing that existed changed.
    assert list(Trial.objects.filter(pk__in=[pk for pk, _ in before]).order_by("pk")
                .values_list("pk", "active_count")) == before
    assert Judgment.objects.count() == judged
    # The newcomer's trials have no judgments yet: a fresh annotator gets them first.
    from annotate.models import Study

    study = Study.objects.get(slug="ladder")
    annotator = Annotator.objects.create(source=Annotator.Source.SIMULATED)
    served = []
    for _ in range(6):
        assignment = services.assignment_next(study=study, annotator=annotator)
        served.append(assignment.trial.generator_id)
        services.judgment_record(assignment_token=assignment.token, annotator=annotator, choice="right")
    assert served == [joining.pk] * 6
    # The report's configuration records when it joined; the originals joined at the start.
    configuration = study_configuration(study=study)
    assert set(configuration["generators_joined"]) == {str(joining.pk)}


def test_ids_and_names_both_work_and_adding_twice_changes_nothing(api, running):
    joining = running[2]
    first = api.post("/api/v1/studies/ladder/generators/", {"generators": [str(joining.pk)]}, format="json")
    again = api.post("/api/v1/studies/ladder/generators/", {"generators": [joining.name, running[0].name]},
                     format="json")
    assert first.json()["trials_created"] == 6 and again.json()["trials_created"] == 0
    assert len(again.json()["generator_history"]) == 1


@pytest.mark.parametrize("value", ["nope", "999999", "9" * 30, "other-g0"])
def test_a_generator_of_no_or_another_workspace_is_400_naming_it(api, running, value):
    response = api.post("/api/v1/studies/ladder/generators/", {"generators": [value]}, format="json")
    assert response.status_code == 400
    assert error(response)["field"] == "generators" and repr(value) in error(response)["message"]
    assert Trial.objects.filter(study__slug="ladder").count() == 12


def test_a_closed_study_takes_no_generator_and_viewers_add_none(api, running, viewer):
    assert token_client(viewer).post("/api/v1/studies/ladder/generators/", {"generators": [running[2].name]},
                                     format="json").status_code == 403
    api.post("/api/v1/studies/ladder/close/")
    response = api.post("/api/v1/studies/ladder/generators/", {"generators": [running[2].name]}, format="json")
    assert response.status_code == 409 and error(response)["code"] == "study_closed"


def test_a_removed_generator_is_not_served_and_keeps_its_judgments(api, running):
    from annotate.models import Study

    kept, removed = running[0], running[1]
    judge_everything_once("ladder")
    judged_before = Judgment.objects.filter(assignment__trial__generator=removed).count()
    response = api.delete(f"/api/v1/studies/ladder/generators/{removed.name}/")
    assert response.status_code == 200 and removed.pk not in response.json()["generators"]
    study = Study.objects.get(slug="ladder")
    annotator = Annotator.objects.create(source=Annotator.Source.SIMULATED)
    served = set()
    while (assignment := services.assignment_next(study=study, annotator=annotator)) is not None:
        served.add(assignment.trial.generator_id)
        services.judgment_record(assignment_token=assignment.token, annotator=annotator, choice="left")
    assert served == {kept.pk}
    assert Judgment.objects.filter(assignment__trial__generator=removed).count() == judged_before > 0
    assert Trial.objects.filter(study=study, generator=removed).count() == 6
    # Back again: served again.
    api.post("/api/v1/studies/ladder/generators/", {"generators": [removed.name]}, format="json")
    study.refresh_from_db()
    assert study.removed_generator_ids() == set()
    other = Annotator.objects.create(source=Annotator.Source.SIMULATED)
    assert services.assignment_next(study=study, annotator=other).trial.generator_id == removed.pk
    assert api.delete("/api/v1/studies/ladder/generators/nope/").status_code == 404


def test_the_command_adds_and_removes_by_name(api, running, capsys):
    call_command("add_generators", "ladder", running[2].name, "--seed", "1")
    assert "6 new trials" in capsys.readouterr().out
    call_command("add_generators", "ladder", running[2].name, "--remove")
    assert Trial.objects.filter(study__slug="ladder", generator=running[2]).count() == 6
    with pytest.raises(CommandError, match="no generator 'nope'"):
        call_command("add_generators", "ladder", "nope")


def test_the_study_page_adds_and_removes_generators(running, researcher, viewer):
    page = session_client(researcher)
    html = page.get("/studies/ladder/").content.decode()
    assert 'id="generators-form"' in html and f'data-generator="{running[0].name}"' in html
    response = page.post("/studies/ladder/generators/", {"generators": [running[2].pk]})
    assert response.status_code == 302
    assert Trial.objects.filter(study__slug="ladder", generator=running[2]).count() == 6
    html = page.get("/studies/ladder/").content.decode()
    assert "Added " in html and 'id="generator-history"' in html
    assert page.post("/studies/ladder/generators/remove/", {"generator": running[2].pk}).status_code == 302
    assert 'id="generators-form"' in page.get("/studies/ladder/").content.decode()
    # A viewer sees the list, not the forms, and cannot post them.
    watcher = session_client(viewer)
    assert 'id="generators-form"' not in watcher.get("/studies/ladder/").content.decode()
    assert watcher.post("/studies/ladder/generators/", {"generators": [running[2].pk]}).status_code == 403


def test_a_generator_added_to_a_draft_gets_its_trials_at_open(api, studio):
    body = config(studio, generators=[studio["lab"]["generators"][0].pk], practice_trials=0)
    api.post("/api/v1/studies/", body, format="json")
    response = api.post("/api/v1/studies/ladder/generators/", {"generators": [studio["lab"]["generators"][1].pk]},
                        format="json")
    assert response.json()["trials_created"] == 0 and Trial.objects.count() == 0
    opened = api.post("/api/v1/studies/ladder/open/", {}, format="json").json()
    assert opened["trials"]["generated"] == 12


def test_head_to_head_and_anchors_from_the_api_the_page_and_the_command(api, running, researcher, viewer):
    first, second, outside = running
    response = api.patch("/api/v1/studies/ladder/", {"head_to_head_share": 0.5, "anchor_generators": [first.pk],
                                                     "anchor_share": 0.1}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["trials"]["head_to_head"] == 6
    assert response.json()["head_to_head_active"] == [[first.pk, second.pk]]
    progress = api.get("/api/v1/studies/ladder/progress/").json()
    assert [(p["generator_id"], p["opponent_id"], p["trials"], p["served"]) for p in progress["pairs"]] == [
        (first.pk, second.pk, 6, True)]
    assert [g["anchor"] for g in progress["generators"]] == [True, False]
    # Which pairs are served is the build's and the analysis' to say, not a client's.
    written = api.patch("/api/v1/studies/ladder/", {"head_to_head_active": [[second.pk, first.pk]]}, format="json")
    assert written.status_code in (400, 409)
    assert Study.objects.get(slug="ladder").head_to_head_active == [[first.pk, second.pk]]
    # The one neighbour pair, a trial per prompt, served; the anchor marked on the page.
    html = session_client(researcher).get("/studies/ladder/").content.decode()
    assert f'data-pair="{first.name} vs {second.name}"' in html and 'class="anchor"' in html
    assert 'id="head-to-head-form"' in html
    refused = api.patch("/api/v1/studies/ladder/", {"anchor_generators": [outside.pk]}, format="json")
    assert refused.status_code == 400 and "anchor_generators" in refused.content.decode()
    assert api.patch("/api/v1/studies/ladder/", {"head_to_head_pairs": "best"}, format="json").status_code == 400

    page = session_client(researcher)
    saved = page.post("/studies/ladder/head-to-head/", {
        "head_to_head_share": "0.2", "head_to_head_pairs": "uncertain", "head_to_head_axis": "",
        "anchor_generators": [second.pk], "anchor_share": "0.05"})
    assert saved.status_code == 302
    study = Study.objects.get(slug="ladder")
    assert (study.head_to_head_share, study.head_to_head_pairs, study.anchor_generators) == (0.2, "uncertain",
                                                                                             [second.pk])
    bad = page.post("/studies/ladder/head-to-head/", {"head_to_head_share": "0.2", "head_to_head_pairs": "neighbours",
                                                      "head_to_head_axis": "size", "anchor_share": "0"})
    assert bad.status_code == 400 and "no scale axis" in bad.content.decode()
    assert session_client(viewer).post("/studies/ladder/head-to-head/", {"head_to_head_share": "0"}).status_code == 403

    call_command("configure_study", "ladder", "head_to_head_pairs=neighbours", f"anchor_generators={first.name}",
                 "anchor_share=0.3")
    study.refresh_from_db()
    assert (study.head_to_head_pairs, study.anchor_generators, study.anchor_share) == ("neighbours", [first.pk], 0.3)
    for wrong, says in (("judgments=3", "no study setting"), ("anchor_share=2", "outside"),
                        ("head_to_head_pairs=best", "must be one of"), (f"anchor_generators={outside.name}",
                                                                        "not generators of the study")):
        with pytest.raises(CommandError, match=says):
            call_command("configure_study", "ladder", wrong)
