"""Practice trials through Django's test client: consent, practice with feedback, then the study."""

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.test import Client
from django.utils import timezone

from annotate import selectors
from annotate.models import Assignment, Judgment, Participation, Study, Trial
from annotate.services import assignment_next, judgment_record, practice_next
from tests.annotate.builders import annotators
from tests.annotate.test_pages import PID, TOKEN, enter, opened, post_choice, servable, trial_page

HX = {"HX-Request": "true"}
HEADING = re.compile(r"<h2>Practice (\d+) of (\d+)</h2>")
OUTCOME = re.compile(r'<figure class="outcome (real|corrupted)" data-side="(left|right)">')


def practice_page(client: Client, study: Study, *, htmx: bool = False) -> tuple[str, str]:
    response = client.get(f"/s/{study.slug}/practice/", headers=HX if htmx else {})
    assert response.status_code == 200, response.headers
    html = response.content.decode()
    return html, TOKEN.search(html).group(1)


def answer(client: Client, study: Study, token: str, choice: str, *, htmx: bool = True):
    return client.post(
        f"/s/{study.slug}/practice/", {"token": token, "choice": choice, "client_ms": "640"},
        headers=HX if htmx else {},
    )


def real_side(token: str) -> str:
    return Assignment.objects.get(token=token).reference_side


def other(side: str) -> str:
    return "right" if side == "left" else "left"


def practiced(study: Study, client: Client) -> None:
    """Answer every practice trial correctly, stopping at the last feedback."""
    for _ in range(study.trials.filter(kind=Trial.Kind.PRACTICE).count()):
        _, token = practice_page(client, study, htmx=True)
        answer(client, study, token, real_side(token))


@pytest.mark.parametrize("htmx", [False, True])
def test_consent_leads_through_practice_with_feedback_to_the_trials(client, db, htmx):
    study = opened(items=8, practice=3)
    client.get(f"/s/{study.slug}/", {"PROLIFIC_PID": PID})
    assert client.post(f"/s/{study.slug}/consent/")["Location"] == f"/s/{study.slug}/practice/"
    html, token = practice_page(client, study)
    assert "<html" in html
    for n in range(1, 4):
        assignment = Assignment.objects.select_related("trial", "item").get(token=token)
        assert assignment.trial.kind == Trial.Kind.PRACTICE
        assert HEADING.search(html).groups() == (str(n), "3")
        assert assignment.item.caption in html and "Which image do you prefer for this caption?" in html
        response = answer(client, study, token, assignment.reference_side, htmx=htmx)
        feedback = response.content.decode()
        assert response.status_code == 200 and ("<html" in feedback) != htmx
        assert "Correct: you chose the real photograph." in feedback and 'name="token"' not in feedback
        assert HEADING.search(feedback).groups() == (str(n), "3")
        if n < 3:
            assert ">Next<" in feedback and f'hx-get="/s/{study.slug}/practice/"' in feedback
            assert Participation.objects.get().practice_finished_at is None
            html, token = practice_page(client, study, htmx=htmx)
            assert ("<html" in html) != htmx
        else:
            assert "Start the study" in feedback and f'hx-get="/s/{study.slug}/trial/"' in feedback
    assert Participation.objects.get().practice_finished_at is not None
    assert client.get(f"/s/{study.slug}/practice/")["Location"] == f"/s/{study.slug}/trial/"
    # A return through the invite link goes past consent and practice to the trials.
    assert client.get(f"/s/{study.slug}/", {"PROLIFIC_PID": PID})["Location"] == f"/s/{study.slug}/practice/"
    html, token = trial_page(client, study)
    assert Assignment.objects.get(token=token).trial.kind != Trial.Kind.PRACTICE
    assert "0 of 40 done" in html
    judgments = Judgment.objects.filter(assignment__trial__kind=Trial.Kind.PRACTICE)
    assert judgments.count() == 3 and set(judgments.values_list("client_response_ms", flat=True)) == {640}


@pytest.mark.parametrize("correct", [True, False])
def test_the_feedback_says_whether_the_real_photograph_was_chosen_and_marks_both_images(client, db, correct):
    study = servable(opened(items=6, practice=2))
    enter(client, study)
    html, token = practice_page(client, study)
    real = real_side(token)
    chosen = real if correct else other(real)
    feedback = answer(client, study, token, chosen).content.decode()
    if correct:
        assert "Correct: you chose the real photograph." in feedback and "Not quite" not in feedback
    else:
        assert f"Not quite: the real photograph was the image on the {real}." in feedback and "Correct" not in feedback
    assert "deliberately corrupted" in feedback
    assert {side: kind for kind, side in OUTCOME.findall(feedback)} == {real: "real", other(real): "corrupted"}
    assert re.search(rf'{chosen.title()} image: <strong>[^<]+</strong> \(your choice\)', feedback)
    assert feedback.count("(your choice)") == 1
    # The two images are the ones of the trial, still this annotator's to load.
    shown = re.findall(r'<img src="([^"]+)" alt="(?:Left|Right) image">', html)
    assert re.findall(r'<img src="([^"]+)"', feedback) == shown
    images = [client.get(url) for url in shown]
    assert [r.status_code for r in images] == [200, 200] and images[0].content != images[1].content


def test_a_reload_resumes_the_open_practice_trial(client, db):
    study = opened(items=8, practice=3)
    enter(client, study)
    _, first = practice_page(client, study)
    _, again = practice_page(client, study, htmx=True)
    assert again == first and Assignment.objects.count() == 1
    answer(client, study, first, "left")
    html, second = practice_page(client, study)
    assert second != first and HEADING.search(html).group(1) == "2"
    _, again = practice_page(client, study)
    assert again == second and Assignment.objects.count() == 2


def test_practice_is_issued_in_one_order_with_its_own_sides_and_no_limit_of_k(db):
    study = opened(items=8, practice=3, k=1)
    order = list(study.trials.filter(kind=Trial.Kind.PRACTICE).order_by("id").values_list("id", flat=True))
    for annotator in annotators(3):
        issued = []
        while (assignment := practice_next(study=study, annotator=annotator)) is not None:
            issued.append(assignment.trial_id)
            judgment_record(assignment_token=assignment.token, annotator=annotator, choice="left")
        assert issued == order
        # The engine's balanced side blocks cover study trials only.
        assert Participation.objects.get(study=study, annotator=annotator).issued == 0
    for trial in study.trials.filter(kind=Trial.Kind.PRACTICE):
        assert trial.active_count == trial.judgment_count == trial.assignments.count() == 3
    assignment = Assignment.objects.filter(trial__kind=Trial.Kind.PRACTICE).first()
    assert assignment.shown_at == assignment.issued_at < assignment.expires_at


def test_practice_items_stay_out_of_the_study_and_practice_trials_are_never_study_trials(client, db):
    study = opened(items=8, generators=2, practice=2, catch_rate=0.5, calibration_rate=0.25, quota=40)
    practice_items = set(study.trials.filter(kind=Trial.Kind.PRACTICE).values_list("item_id", flat=True))
    assert len(practice_items) == 2
    assert not study.trials.exclude(kind=Trial.Kind.PRACTICE).filter(item_id__in=practice_items).exists()
    # An annotator driven past the pages still never gets a practice trial from the engine.
    loner = annotators(1)[0]
    while (assignment := assignment_next(study=study, annotator=loner)) is not None:
        assert assignment.trial.kind != Trial.Kind.PRACTICE
        judgment_record(assignment_token=assignment.token, annotator=loner, choice="left")
    enter(client, study)
    practiced(study, client)
    kinds = []
    for _ in range(6):
        _, token = trial_page(client, study)
        kinds.append(Assignment.objects.get(token=token).trial.kind)
        post_choice(client, study, token, "left")
    assert Trial.Kind.PRACTICE not in kinds
    study_items = Assignment.objects.exclude(trial__kind=Trial.Kind.PRACTICE).values_list("item_id", flat=True)
    assert not practice_items & set(study_items)


@pytest.mark.parametrize("htmx", [False, True])
def test_a_study_without_practice_goes_straight_to_the_trials(client, db, htmx):
    study = opened(practice=0)
    assert not study.trials.filter(kind=Trial.Kind.PRACTICE).exists()
    enter(client, study)
    response = client.get(f"/s/{study.slug}/practice/", headers=HX if htmx else {})
    target = response["HX-Redirect"] if htmx else response["Location"]
    assert target == f"/s/{study.slug}/trial/"
    assert Participation.objects.get().practice_finished_at is not None
    assert not selectors.practice_pending(study=study, annotator=Participation.objects.get().annotator)
    trial_page(client, study)


def test_practice_is_pending_until_the_last_practice_answer(client, db):
    study = opened(items=6, practice=2)
    enter(client, study)
    annotator = Participation.objects.get().annotator
    assert selectors.practice_pending(study=study, annotator=annotator)
    _, token = practice_page(client, study)
    answer(client, study, token, "left")
    assert selectors.practice_pending(study=study, annotator=annotator)
    assert selectors.practice_remaining(study=study, annotator=annotator) == 1
    _, token = practice_page(client, study)
    answer(client, study, token, "left")
    assert not selectors.practice_pending(study=study, annotator=annotator)
    assert selectors.practice_remaining(study=study, annotator=annotator) == 0
    assert practice_next(study=study, annotator=annotator) is None


@pytest.mark.parametrize("htmx", [False, True])
def test_the_trial_page_sends_an_annotator_with_pending_practice_to_practice(client, db, htmx):
    study = opened(items=6, practice=2)
    enter(client, study)
    response = client.get(f"/s/{study.slug}/trial/", headers=HX if htmx else {})
    assert (response["HX-Redirect"] if htmx else response["Location"]) == f"/s/{study.slug}/practice/"
    response = client.post(f"/s/{study.slug}/trial/", {"token": "0" * 32, "choice": "left"})
    assert response["Location"] == f"/s/{study.slug}/practice/"
    assert not Assignment.objects.exclude(trial__kind=Trial.Kind.PRACTICE).exists()
    practiced(study, client)
    trial_page(client, study)


def test_practice_needs_consent(client, db):
    study = opened(items=6, practice=2)
    client.get(f"/s/{study.slug}/")
    assert client.get(f"/s/{study.slug}/practice/")["Location"] == f"/s/{study.slug}/"
    assert Client().get(f"/s/{study.slug}/practice/")["Location"] == f"/s/{study.slug}/"
    assert not Assignment.objects.exists()


def test_another_prolific_id_in_the_same_browser_practices_anew(client, db):
    study = opened(items=8, practice=2)
    enter(client, study, PROLIFIC_PID=PID)
    practiced(study, client)
    assert client.get(f"/s/{study.slug}/practice/")["Location"] == f"/s/{study.slug}/trial/"
    enter(client, study, PROLIFIC_PID="another-participant")
    html, _ = practice_page(client, study)
    assert HEADING.search(html).groups() == ("1", "2")


@pytest.mark.parametrize("htmx", [False, True])
def test_another_annotators_practice_token_is_refused_with_a_message(db, htmx):
    study = opened(items=6, practice=2)
    owner, intruder = Client(), Client()
    enter(owner, study)
    _, token = practice_page(owner, study)
    enter(intruder, study)
    response = answer(intruder, study, token, "left", htmx=htmx)
    html = response.content.decode()
    assert response.status_code == 403 and "belongs to another participant" in html
    assert "real photograph was" not in html and "Correct" not in html
    # The intruder's own first practice trial, not the owner's.
    assert TOKEN.search(html).group(1) != token and HEADING.search(html).group(1) == "1"
    assert not Judgment.objects.exists()


def test_an_unknown_token_or_a_bad_choice_records_nothing(client, db):
    study = opened(items=6, practice=2)
    enter(client, study)
    _, token = practice_page(client, study)
    response = answer(client, study, "not-a-uuid", "left")
    html = response.content.decode()
    assert response.status_code == 200 and "did not match any trial" in html
    assert TOKEN.search(html).group(1) == token
    assert answer(client, study, "0" * 32, "left").status_code == 200
    response = answer(client, study, token, "middle")
    assert response.status_code == 400 and "left or the right" in response.content.decode()
    assert not Judgment.objects.exists()


def test_a_study_trial_posted_as_practice_gets_no_feedback(client, db):
    study = opened(items=6, practice=2)
    enter(client, study)
    annotator = Participation.objects.get().annotator
    study_assignment = assignment_next(study=study, annotator=annotator)
    response = answer(client, study, str(study_assignment.token), study_assignment.reference_side)
    html = response.content.decode()
    assert response.status_code == 200 and "did not match any trial" in html
    assert "real photograph was" not in html and "Correct" not in html
    assert not Judgment.objects.exists()


def test_an_expired_practice_trial_says_so_and_moves_on(client, db):
    study = opened(items=8, practice=3)
    enter(client, study)
    _, token = practice_page(client, study)
    Assignment.objects.filter(token=token).update(
        issued_at=timezone.now() - timedelta(hours=2), shown_at=None, expires_at=timezone.now() - timedelta(hours=1)
    )
    response = answer(client, study, token, "left")
    html = response.content.decode()
    assert response.status_code == 200 and "timed out" in html
    assert TOKEN.search(html).group(1) != token and HEADING.search(html).groups() == ("2", "3")
    assert not Judgment.objects.exists()


def test_a_study_closed_during_practice_sends_the_annotator_to_the_polite_page(client, db):
    study = opened(items=6, practice=2)
    enter(client, study)
    practice_page(client, study)
    Study.objects.filter(pk=study.pk).update(status="closed")
    response = client.get(f"/s/{study.slug}/practice/", follow=True)
    assert response.status_code == 200 and "is closed" in response.content.decode()


def test_the_practice_page_keeps_the_trial_page_structure_and_its_exposure(client, db):
    study = opened(items=6, practice=2)
    Study.objects.filter(pk=study.pk).update(exposure_ms=300)
    enter(client, study)
    html, _ = practice_page(client, study)
    # The page script drives practice as it drives trials: the same ids, classes and fields.
    assert re.search(r'<section id="trial" class="trial practice" data-ready="0" data-exposure-ms="300"', html)
    assert html.count('class="choice"') == 2 and 'name="client_ms"' in html
    script = re.search(r'<script src="(/static/annotate/trial\.js)"></script>', html)
    assert script, "the practice page does not load the trial page's script"
    source = Path(finders.find("annotate/trial.js")).read_text()
    assert "decode()" in source and "ArrowLeft" in source


def test_practice_judgments_are_not_counted_in_the_study_progress(client, db):
    study = opened(items=12, generators=2, practice=3, catch_rate=0.3, calibration_rate=0.2, quota=8)
    enter(client, study)
    _, token = practice_page(client, study)
    # Practice is a catch pair: were it counted, it would show up as catch judgments.
    answer(client, study, token, real_side(token))
    for _ in range(2):
        _, token = practice_page(client, study)
        answer(client, study, token, other(real_side(token)))
    progress = selectors.study_progress(study=study)
    assert (progress["done"], progress["catch"], progress["catch_passed"], progress["calibration"]) == (0, 0, 0, 0)
    for _ in range(8):
        _, token = trial_page(client, study)
        post_choice(client, study, token, "left")
    progress = selectors.study_progress(study=study)
    study_judgments = Judgment.objects.exclude(assignment__trial__kind=Trial.Kind.PRACTICE)
    assert Judgment.objects.count() == 11 and study_judgments.count() == 8
    counted = progress["done"] + progress["catch"] + progress["calibration"]
    assert counted == 8
    assert progress["catch"] == study_judgments.filter(assignment__trial__kind=Trial.Kind.CATCH).count()
    assert sum(row["trials"] for row in progress["generators"]) == study.trials.filter(kind="generated").count()
