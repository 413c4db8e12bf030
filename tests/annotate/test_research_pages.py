"""The researcher's study page through Django's test client: visibility, open/close, progress."""

import re

from django.contrib.auth import get_user_model
from django.test import Client

from annotate.models import Side, Study, Trial
from annotate.selectors import study_progress
from annotate.services import assignment_next, judgment_record, participation_finish, study_build_trials, study_open
from tests.annotate.builders import annotators, build_study
from workspaces.models import Membership

OTHER = {Side.LEFT: Side.RIGHT, Side.RIGHT: Side.LEFT}


def member(study: Study, name: str = "alice", role: str = Membership.Role.MEMBER) -> Client:
    user = get_user_model().objects.create_user(username=name, password="x")
    Membership.objects.create(workspace=study.workspace, user=user, role=role)
    client = Client()
    client.force_login(user)
    return client


def outsider(name: str = "mallory") -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_user(username=name, password="x"))
    return client


def judge_until_two_catches(study: Study) -> dict:
    """Judge through the engine until two catch judgments exist: the first right, the second wrong."""
    done = {}
    catches = 0
    people = annotators(20)
    for annotator in people:
        while (assignment := assignment_next(study=study, annotator=annotator)) is not None:
            kind = assignment.trial.kind
            if kind == Trial.Kind.CATCH:
                catches += 1
                choice = assignment.reference_side if catches == 1 else OTHER[assignment.reference_side]
            else:
                choice = Side.LEFT
            judgment_record(assignment_token=assignment.token, annotator=annotator, choice=choice)
            if kind == Trial.Kind.GENERATED:
                name = assignment.trial.sample.generator.name
                done[name] = done.get(name, 0) + 1
            if catches == 2:
                participation_finish(study=study, annotator=annotator)
                return {"done": done, "annotators": people.index(annotator) + 1}
    raise AssertionError("the study ran out of trials before two catch judgments")


def test_member_sees_progress_per_generator_and_catch_pass_rate(db):
    study = build_study(generators=2, items=4, k=2, catch_rate=0.5)
    study_build_trials(study=study, rng_seed=3)
    study_open(study=study)
    judged = judge_until_two_catches(study)

    progress = study_progress(study=study)
    rows = {row["name"]: (row["done"], row["needed"]) for row in progress["generators"]}
    assert rows == {name: (judged["done"].get(name, 0), 8) for name in ("s-g0", "s-g1")}
    assert (progress["catch"], progress["catch_passed"], progress["catch_pass_rate"]) == (2, 1, 0.5)
    assert progress["calibration"] == 0 and progress["calibration_left_rate"] is None
    assert progress["active_annotators"] == judged["annotators"]
    assert progress["finished"] == 1

    response = member(study).get("/studies/s/")
    assert response.status_code == 200
    html = response.content.decode()
    for name, (done, needed) in rows.items():
        assert f'<tr data-generator="{name}"><td>{name}</td><td>{done} / {needed}</td>' in html
        assert f'<progress value="{done}" max="{needed}">' in html
    assert 'id="catch-pass-rate">50%<' in html
    assert 'id="study-status">Open<' in html
    assert "http://testserver/s/s/" in html
    assert "http://testserver/s/s/?PROLIFIC_PID={{%PROLIFIC_PID%}}&amp;STUDY_ID={{%STUDY_ID%}}" in html
    assert 'hx-get="/studies/s/progress/"' in html and 'hx-trigger="every 5s"' in html


def test_progress_partial_returns_the_table_fragment(db):
    study = build_study()
    study_build_trials(study=study)
    response = member(study).get("/studies/s/progress/", headers={"HX-Request": "true"})
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="study-progress"')
    assert "<html" not in html
    assert 'hx-swap="outerHTML"' in html
    assert "0 / 8" in html  # 4 items x k=2 per generator


def test_non_member_gets_404_like_a_missing_study(db):
    study = build_study()
    client = outsider()
    assert client.get("/studies/s/").status_code == 404
    assert client.get("/studies/s/progress/").status_code == 404
    assert client.post("/studies/s/open/").status_code == 404
    assert client.get("/studies/nope/").status_code == 404
    member(study)  # a member of the workspace exists, but it is not this client
    assert client.get("/studies/s/").status_code == 404


def test_anonymous_is_redirected_to_login(db):
    build_study()
    client = Client()
    for url in ("/studies/s/", "/studies/s/progress/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")
    assert client.post("/studies/s/open/").status_code == 302
    assert Study.objects.get().status == Study.Status.DRAFT


def test_viewer_sees_the_page_but_cannot_open_or_close(db):
    study = build_study()
    study_build_trials(study=study)
    client = member(study, role=Membership.Role.VIEWER)
    response = client.get("/studies/s/")
    assert response.status_code == 200
    main = response.content.decode().split("<main>", 1)[1]  # the header's only button logs out
    assert "<button" not in main
    assert client.post("/studies/s/open/").status_code == 403
    study_open(study=study)
    assert client.post("/studies/s/close/").status_code == 403
    assert Study.objects.get().status == Study.Status.OPEN


def test_owner_opens_and_closes_a_study(db):
    study = build_study()
    study_build_trials(study=study)
    client = member(study, role=Membership.Role.OWNER)
    client.handler.enforce_csrf_checks = True
    page = client.get("/studies/s/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = client.post("/studies/s/open/", {"csrfmiddlewaretoken": token}, follow=True)
    assert response.status_code == 200
    assert Study.objects.get().status == Study.Status.OPEN
    assert 'id="study-status">Open<' in response.content.decode()
    assert client.post("/studies/s/open/").status_code == 403  # no CSRF token
    client.post("/studies/s/close/", {"csrfmiddlewaretoken": token})
    assert Study.objects.get().status == Study.Status.CLOSED


def test_opening_a_study_without_trials_shows_a_message(db):
    study = build_study()
    response = member(study).post("/studies/s/open/", follow=True)
    assert response.status_code == 200
    assert "has no trials" in response.content.decode()
    assert Study.objects.get().status == Study.Status.DRAFT


def test_home_lists_the_members_studies_only(db):
    mine = build_study(slug="mine")
    build_study(slug="theirs")
    html = member(mine).get("/").content.decode()
    assert '<a href="/studies/mine/">mine</a>' in html
    assert "/studies/theirs/" not in html
    assert "/studies/" not in Client().get("/").content.decode()
