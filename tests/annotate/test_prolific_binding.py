"""A Prolific ID is not a password: a participation answers to the browser that joined.

Anyone may learn a participant's PROLIFIC_PID (it is in their links and on forums).
Another browser presenting it gets a clear page and nothing of theirs: no trial, no
image, no judgment. A researcher who manages the study can release the participation,
and the next browser to enter with the ID takes it over where it was left.
"""

import re
import threading

import pytest
from django.db import connections
from django.test import Client

from annotate.models import Assignment, Judgment, Participation
from annotate.views import BROWSER_COOKIE
from tests.annotate.test_pages import PID, enter, opened, post_choice, same_browser, trial_page
from tests.annotate.test_research_pages import member
from workspaces.models import Membership

IMAGE = re.compile(r'<img src="([^"]+/img/[^"]+)"')


def test_another_browser_with_the_same_prolific_id_gets_nothing_of_theirs(db):
    study = opened()
    owner = Client()
    enter(owner, study, PROLIFIC_PID=PID, STUDY_ID="st", SESSION_ID="se1")
    html, token = trial_page(owner, study)
    image_url = IMAGE.search(html).group(1)

    thief = Client()
    response = thief.get(f"/s/{study.slug}/", {"PROLIFIC_PID": PID, "STUDY_ID": "st", "SESSION_ID": "forged"})
    assert response.status_code == 409
    assert "already taking part in this study in another browser" in response.content.decode()
    assert token not in response.content.decode()
    # Nothing of the participation reached the thief's session, and nothing changed.
    assert thief.get(f"/s/{study.slug}/trial/")["Location"] == f"/s/{study.slug}/"
    assert thief.get(image_url).status_code == 403
    thief.post(f"/s/{study.slug}/trial/", {"token": token, "choice": "left", "client_ms": "900"})
    assert not Judgment.objects.exists()
    assert Participation.objects.get().prolific_session_id == "se1"
    # A cookie the thief makes up is no browser of the participant's either.
    thief.cookies[BROWSER_COOKIE] = owner.cookies[BROWSER_COOKIE].value.split(":")[0] + ":forged"
    assert thief.get(f"/s/{study.slug}/", {"PROLIFIC_PID": PID}).status_code == 409

    # The participant's own browser goes on, in this session and in a later one.
    assert post_choice(owner, study, token, "left").status_code == 302
    later = same_browser(owner)
    assert later.get(f"/s/{study.slug}/", {"PROLIFIC_PID": PID})["Location"] == f"/s/{study.slug}/practice/"
    trial_page(later, study)
    assert Judgment.objects.count() == 1


def test_a_released_participation_moves_to_the_next_browser_and_leaves_the_old_one(db):
    study = opened()
    old = Client()
    enter(old, study, PROLIFIC_PID=PID)
    _, token = trial_page(old, study)
    researcher = member(study, role=Membership.Role.MEMBER)

    page = researcher.get(f"/studies/{study.slug}/").content.decode()
    assert 'id="release-form"' in page
    response = researcher.post(f"/studies/{study.slug}/release/", {"prolific_id": PID})
    assert response.status_code == 302
    assert f"Released {PID}" in researcher.get(response["Location"]).content.decode()

    new = Client()
    # Consent is in the database, so the new browser goes straight on, to the same trial.
    assert new.get(f"/s/{study.slug}/", {"PROLIFIC_PID": PID})["Location"] == f"/s/{study.slug}/practice/"
    _, again = trial_page(new, study)
    assert again == token
    # The old browser's session no longer answers for the participant, nor can it take it back.
    assert old.get(f"/s/{study.slug}/trial/")["Location"] == f"/s/{study.slug}/"
    assert old.get(f"/s/{study.slug}/", {"PROLIFIC_PID": PID}).status_code == 409
    assert post_choice(new, study, token, "right").status_code == 302
    assert Judgment.objects.get().assignment.token.hex == token.replace("-", "")
    assert Assignment.objects.filter(annotator__external_id=PID).count() >= 1


def test_only_managers_release_and_an_unknown_id_is_named(db):
    study = opened()
    enter(Client(), study, PROLIFIC_PID=PID)
    viewer = member(study, "vera", role=Membership.Role.VIEWER)
    assert viewer.post(f"/studies/{study.slug}/release/", {"prolific_id": PID}).status_code == 403
    assert Client().post(f"/studies/{study.slug}/release/", {"prolific_id": PID}).status_code == 302  # to login
    assert Participation.objects.get().browser_key != ""

    manager = member(study, "mona")
    response = manager.post(f"/studies/{study.slug}/release/", {"prolific_id": "nobody-here"})
    assert response.status_code == 400
    assert "No participant of this study has the Prolific ID &#x27;nobody-here&#x27;" in response.content.decode()
    assert Participation.objects.get().browser_key != ""


def test_an_invite_link_participant_is_unaffected(db):
    study = opened()
    browser = Client()
    enter(browser, study)
    trial_page(browser, study)
    assert Participation.objects.get().browser_key == ""


@pytest.mark.postgres
def test_two_browsers_racing_with_one_new_id_bind_exactly_one(postgres_only, transactional_db):
    study = opened()
    barrier, statuses = threading.Barrier(8), []

    def enter_once():
        try:
            barrier.wait()
            statuses.append(Client().get(f"/s/{study.slug}/", {"PROLIFIC_PID": "racing-pid"}).status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=enter_once) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] + [409] * 7, statuses
    assert Participation.objects.filter(annotator__external_id="racing-pid").count() == 1
