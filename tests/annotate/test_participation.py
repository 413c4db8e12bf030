"""Participation rows, breaks, timed exposure and the Prolific return, through the test client."""

import re

from django.test import Client

from annotate.models import Assignment, Participation, Study
from annotate.services import participation_release
from tests.annotate.test_pages import PID, TOKEN, enter, opened, post_choice, same_browser, trial_page

META_REFRESH = re.compile(r'<meta http-equiv="refresh" content="(\d+); url=([^"]+)">')


def test_a_prolific_entry_stores_the_ids_and_a_new_session_replaces_the_old(db):
    study = opened()
    browser = Client()
    enter(browser, study, PROLIFIC_PID=PID, STUDY_ID="st", SESSION_ID="se1")
    participation = Participation.objects.get()
    assert (participation.annotator.external_id, participation.study_id) == (PID, study.pk)
    assert (participation.prolific_study_id, participation.prolific_session_id) == ("st", "se1")
    assert participation.consented_at is not None and participation.finished_at is None

    same_browser(browser).get(f"/s/{study.slug}/", {"PROLIFIC_PID": PID, "STUDY_ID": "st", "SESSION_ID": "se2"})
    participation.refresh_from_db()
    assert Participation.objects.count() == 1
    assert participation.prolific_session_id == "se2"


def test_an_invite_entry_has_a_participation_without_prolific_ids(client, db):
    study = opened()
    client.get(f"/s/{study.slug}/")
    participation = Participation.objects.get()
    assert (participation.prolific_study_id, participation.prolific_session_id) == ("", "")
    assert participation.consented_at is None
    assert client.post(f"/s/{study.slug}/consent/").status_code == 302
    participation.refresh_from_db()
    assert participation.consented_at is not None


def test_consent_given_in_one_browser_holds_in_another_once_released(db):
    study = opened()
    enter(Client(), study, PROLIFIC_PID=PID, STUDY_ID="st", SESSION_ID="se1")
    participation_release(study=study, external_id=PID)
    fresh = Client()
    response = fresh.get(f"/s/{study.slug}/", {"PROLIFIC_PID": PID, "STUDY_ID": "st", "SESSION_ID": "se2"})
    assert response.status_code == 302 and response["Location"] == f"/s/{study.slug}/practice/"
    trial_page(fresh, study)


def test_without_consent_in_the_database_a_new_browser_asks_again(db):
    study = opened()
    first = Client()
    first.get(f"/s/{study.slug}/", {"PROLIFIC_PID": PID})
    fresh = same_browser(first)
    response = fresh.get(f"/s/{study.slug}/", {"PROLIFIC_PID": PID})
    assert response.status_code == 200 and "I agree" in response.content.decode()
    assert fresh.get(f"/s/{study.slug}/trial/")["Location"] == f"/s/{study.slug}/"


def test_finishing_sets_finished_at_once(client, db):
    study = opened(quota=2)
    enter(client, study, PROLIFIC_PID=PID)
    for _ in range(2):
        _, token = trial_page(client, study)
        post_choice(client, study, token, "left")
    assert Participation.objects.get().finished_at is None
    assert client.get(f"/s/{study.slug}/trial/")["Location"] == f"/s/{study.slug}/done/"
    finished = Participation.objects.get().finished_at
    assert finished is not None
    client.get(f"/s/{study.slug}/trial/")
    assert Participation.objects.get().finished_at == finished


def test_a_break_comes_after_every_n_judgments_and_continue_gives_the_next_trial(client, db):
    study = opened(items=6, quota=5)
    Study.objects.filter(pk=study.pk).update(break_every=2)
    enter(client, study)
    _, token = trial_page(client, study)
    seen = []
    for n in range(1, 5):
        response = post_choice(client, study, token, "left", htmx=True)
        html = response.content.decode()
        if n % 2:
            assert "Take a break" not in html
            token = TOKEN.search(html).group(1)
            continue
        assert response.status_code == 200 and "Take a break" in html and "Continue" in html
        assert 'name="token"' not in html and "<html" not in html
        # The next assignment is issued only on Continue.
        assert Assignment.objects.filter(annotator__participations__study=study).count() == n
        seen.append(html)
        resumed = client.get(f"/s/{study.slug}/trial/", headers={"HX-Request": "true"}).content.decode()
        assert "Take a break" not in resumed and f"{n} of 5 done" in resumed
        token = TOKEN.search(resumed).group(1)
    assert len(seen) == 2
    # No break after the last judgment: the annotator is done.
    response = post_choice(client, study, token, "left", htmx=True)
    assert response["HX-Redirect"] == f"/s/{study.slug}/done/"


def test_a_break_without_htmx_is_a_full_page_whose_continue_is_a_plain_link(client, db):
    study = opened(items=4, quota=3)
    Study.objects.filter(pk=study.pk).update(break_every=1)
    enter(client, study)
    _, token = trial_page(client, study)
    response = post_choice(client, study, token, "left")
    html = response.content.decode()
    assert response.status_code == 200 and "<html" in html and "Take a break" in html
    assert f'action="/s/{study.slug}/trial/"' in html and 'method="get"' in html


def test_no_break_when_break_every_is_zero(client, db):
    study = opened(items=4, quota=3)
    enter(client, study)
    _, token = trial_page(client, study)
    html = post_choice(client, study, token, "left", htmx=True).content.decode()
    assert "Take a break" not in html and TOKEN.search(html)


def test_the_exposure_is_on_the_trial_only_when_set(client, db):
    study = opened()
    enter(client, study)
    html, _ = trial_page(client, study)
    assert "data-exposure-ms" not in html
    Study.objects.filter(pk=study.pk).update(exposure_ms=300)
    html, _ = trial_page(client, study)
    assert re.search(r'<section id="trial"[^>]* data-exposure-ms="300"', html)


def _finished(client: Client, study: Study, **params) -> str:
    enter(client, study, **params)
    for _ in range(study.quota_per_annotator):
        _, token = trial_page(client, study)
        post_choice(client, study, token, "left")
    client.get(f"/s/{study.slug}/trial/")
    return client.get(f"/s/{study.slug}/done/").content.decode()


def test_a_prolific_participant_is_sent_back_to_prolific_with_the_code_shown(client, db):
    study = opened(quota=2)
    html = _finished(client, study, PROLIFIC_PID=PID, STUDY_ID="st", SESSION_ID="se")
    refresh = META_REFRESH.search(html)
    assert refresh and int(refresh.group(1)) >= 2
    assert refresh.group(2) == "https://app.prolific.com/submissions/complete?cc=C0DE42"
    assert "<code>C0DE42</code>" in html


def test_an_invited_annotator_sees_only_the_code(client, db):
    study = opened(quota=2)
    html = _finished(client, study)
    assert "<code>C0DE42</code>" in html
    assert "http-equiv" not in html and "prolific" not in html.lower()
