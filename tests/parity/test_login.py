"""Signing in and out through Parity's own form, which admits accounts that are not staff.

The admin's form admits staff only, so before this page an invited account or a
researcher without staff status had no way to sign in at all.
"""

import re

from django.contrib.auth import get_user_model
from django.test import Client

from annotate.ratelimits import LOGIN_MESSAGE
from annotate.services import participation_invite, study_build_trials, study_open
from tests.annotate.builders import build_study
from workspaces.models import Membership

User = get_user_model()
PASSWORD = "a long enough password"


def log_in(client: Client, username: str, password: str = PASSWORD, next_url: str = ""):
    return client.post("/login/", {"username": username, "password": password, "next": next_url})


def test_an_invited_account_that_is_not_staff_signs_in_and_sees_its_invitation(db):
    study = build_study(slug="s")
    study_build_trials(study=study, rng_seed=1)
    study = study_open(study=study)
    alice = User.objects.create_user("alice", password=PASSWORD)
    participation_invite(study=study, names=["alice"])
    client = Client()
    assert not alice.is_staff

    response = log_in(client, "alice")

    assert response.status_code == 302 and response["Location"] == "/"
    home = client.get("/").content.decode()
    assert 'id="invitations"' in home and f'href="/s/{study.slug}/"' in home
    assert "alice" in home and 'action="/logout/"' in home
    assert 'href="/admin/"' not in home  # not staff: no admin link


def test_a_researcher_who_is_not_staff_reaches_the_page_asked_for(db):
    study = build_study(slug="s")
    bob = User.objects.create_user("bob", password=PASSWORD)
    Membership.objects.create(workspace=study.workspace, user=bob, role=Membership.Role.MEMBER)
    client = Client()

    sent = client.get("/studies/s/")
    assert sent.status_code == 302 and sent["Location"] == "/login/?next=/studies/s/"
    form = client.get(sent["Location"]).content.decode()
    assert 'name="next" value="/studies/s/"' in form

    response = log_in(client, "bob", next_url="/studies/s/")

    assert response.status_code == 302 and response["Location"] == "/studies/s/"
    assert client.get("/studies/s/").status_code == 200
    assert client.get("/tokens/").status_code == 200


def test_a_wrong_password_is_refused_with_a_message(db):
    User.objects.create_user("carol", password=PASSWORD)
    client = Client()

    response = log_in(client, "carol", "wrong")

    assert response.status_code == 200
    assert re.search(r'role="alert">Please enter a correct username and password', response.content.decode())
    assert "_auth_user_id" not in client.session


def test_log_out_is_a_post_that_ends_the_session(db):
    User.objects.create_user("dan", password=PASSWORD)
    client = Client()
    log_in(client, "dan")
    assert "_auth_user_id" in client.session

    assert client.get("/logout/").status_code == 405  # a link or a prefetch must not sign anyone out
    response = client.post("/logout/")

    assert response.status_code == 302 and response["Location"] == "/"
    assert "_auth_user_id" not in client.session
    assert client.get("/tokens/").status_code == 302


def test_sign_in_attempts_over_the_limit_get_429_and_do_not_sign_in(db, settings):
    settings.PARITY_RATE_LOGIN = "2/d"  # per day: the window cannot end within the test
    User.objects.create_user("eve", password=PASSWORD)
    client = Client()
    for _ in range(2):
        assert log_in(client, "eve", "guess").status_code == 200

    response = log_in(client, "eve")  # even the right password, once over the limit

    assert response.status_code == 429
    assert LOGIN_MESSAGE in response.content.decode().replace("&#x27;", "'")
    assert "_auth_user_id" not in client.session
    assert client.get("/login/").status_code == 200  # reading the form is not counted
    assert log_in(Client(REMOTE_ADDR="203.0.113.9"), "eve").status_code == 302  # another address is
