"""Invites of named accounts: the service, the study page's form, entry as the account, the home page."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from annotate.errors import InviteRefused
from annotate.models import Annotator, Participation, Study
from annotate.services import participation_invite, study_build_trials, study_close, study_open
from tests.annotate.builders import build_study
from workspaces.models import Membership

User = get_user_model()


def account(username: str, email: str = "", *, active: bool = True):
    return User.objects.create_user(username=username, email=email, password="x", is_active=active)


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def manager(study: Study, role: str = Membership.Role.MEMBER) -> Client:
    user = account(f"researcher-{role}")
    Membership.objects.create(workspace=study.workspace, user=user, role=role)
    return signed_in(user)


def open_study(slug: str = "s") -> Study:
    study = build_study(slug=slug)
    study_build_trials(study=study, rng_seed=1)
    return study_open(study=study)


def invited_usernames(study: Study) -> set[str]:
    return set(
        Participation.objects.filter(study=study, invited_at__isnull=False).values_list(
            "annotator__user__username", flat=True
        )
    )


# ------------------------------------------------------------------------------
# The service
# ------------------------------------------------------------------------------
def test_invite_by_username_or_email_creates_account_annotators_and_participations(db):
    study = build_study()
    alice, bob = account("alice", "alice@example.org"), account("bob", "Bob@Example.org")

    invited = participation_invite(study=study, names=["alice", "bob@example.ORG", " alice "])

    assert {p.annotator.user for p in invited} == {alice, bob}
    for user in (alice, bob):
        annotator = Annotator.objects.get(user=user)
        assert annotator.source == Annotator.Source.ACCOUNT
        participation = Participation.objects.get(study=study, annotator=annotator)
        assert participation.invited_at is not None
        assert participation.consented_at is None


def test_inviting_again_is_harmless(db):
    study = build_study()
    account("alice")
    first_time = timezone.now() - timezone.timedelta(days=1)
    participation_invite(study=study, names=["alice"], now=first_time)

    participation_invite(study=study, names=["alice"])

    assert Annotator.objects.count() == 1
    assert Participation.objects.get().invited_at == first_time


def test_an_account_keeps_one_annotator_across_studies(db):
    one, two = build_study(slug="one"), build_study(slug="two")
    alice = account("alice")
    participation_invite(study=one, names=["alice"])
    participation_invite(study=two, names=["alice"])
    annotator = Annotator.objects.get(user=alice)
    assert set(annotator.participations.values_list("study__slug", flat=True)) == {"one", "two"}


def test_an_unknown_name_invites_nobody_and_is_named(db):
    study = build_study()
    account("alice")
    account("ghost", "ghost@example.org", active=False)

    with pytest.raises(InviteRefused) as refused:
        participation_invite(study=study, names=["alice", "nobody", "ghost", "who@example.org"])

    assert refused.value.unknown == ["nobody", "ghost", "who@example.org"]
    assert refused.value.ambiguous == []
    assert Annotator.objects.count() == 0
    assert Participation.objects.count() == 0


def test_an_email_shared_by_two_accounts_invites_nobody(db):
    study = build_study()
    account("alice", "lab@example.org")
    account("bob", "lab@example.org")
    account("carol", "carol@example.org")

    with pytest.raises(InviteRefused) as refused:
        participation_invite(study=study, names=["lab@example.org", "carol"])

    assert refused.value.ambiguous == ["lab@example.org"]
    assert "use the username" in str(refused.value)
    assert Participation.objects.count() == 0
    # A username is never ambiguous, even where it looks like someone's email.
    account("lab@example.org")
    participation_invite(study=study, names=["lab@example.org"])
    assert invited_usernames(study) == {"lab@example.org"}


# ------------------------------------------------------------------------------
# The study page
# ------------------------------------------------------------------------------
def test_a_manager_invites_from_the_study_page(db):
    study = build_study()
    account("alice", "alice@example.org")
    account("bob")
    client = manager(study)
    client.handler.enforce_csrf_checks = True
    page = client.get("/studies/s/").content.decode()
    assert 'id="invite-form"' in page
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)

    response = client.post(
        "/studies/s/invite/", {"names": "alice@example.org\r\nbob, ", "csrfmiddlewaretoken": token}, follow=True
    )

    assert response.redirect_chain == [("/studies/s/", 302)]
    html = response.content.decode()
    assert "Invited 2 accounts" in html
    assert '<tr data-account="alice"><td>alice</td><td>alice@example.org</td><td>invited</td><td>0</td></tr>' in html
    assert '<tr data-account="bob"><td>bob</td><td>—</td><td>invited</td><td>0</td></tr>' in html
    assert invited_usernames(study) == {"alice", "bob"}


def test_unknown_names_on_the_page_invite_nobody_and_are_listed(db):
    study = build_study()
    account("alice")
    client = manager(study)

    response = client.post("/studies/s/invite/", {"names": "alice, nobody\nmissing@example.org"})

    assert response.status_code == 400
    html = response.content.decode()
    error = re.search(r'id="invite-error">([^<]+)<', html).group(1)
    assert error == "Nobody was invited: no account found for nobody, missing@example.org."
    assert "alice, nobody\nmissing@example.org</textarea>" in html  # kept for correcting
    assert Participation.objects.count() == 0
    assert "No account invited yet." in html


def test_an_empty_invite_is_refused(db):
    study = build_study()
    response = manager(study).post("/studies/s/invite/", {"names": " ,\n "})
    assert response.status_code == 400
    assert "Name at least one account." in response.content.decode()


def test_the_page_shows_each_invited_accounts_state_and_judgments(db):
    study = build_study()
    for name in ("ann", "ben", "cat"):
        account(name)
    participation_invite(study=study, names=["ann", "ben", "cat"])
    now = timezone.now()
    Participation.objects.filter(annotator__user__username="ben").update(consented_at=now, judged=3)
    Participation.objects.filter(annotator__user__username="cat").update(consented_at=now, finished_at=now, judged=4)
    # An anonymous annotator of the invite link is not an invited account.
    Participation.objects.create(study=study, annotator=Annotator.objects.create(source=Annotator.Source.INVITE))

    html = manager(study, role=Membership.Role.VIEWER).get("/studies/s/").content.decode()

    rows = re.findall(r'<tr data-account="(\w+)">.*?<td>(\w+)</td><td>(\d+)</td></tr>', html)
    assert rows == [("ann", "invited", "0"), ("ben", "consented", "3"), ("cat", "finished", "4")]


def test_a_viewer_sees_invited_accounts_but_cannot_invite(db):
    study = build_study()
    account("alice")
    client = manager(study, role=Membership.Role.VIEWER)
    assert 'id="invite-form"' not in client.get("/studies/s/").content.decode()
    assert client.post("/studies/s/invite/", {"names": "alice"}).status_code == 403
    assert Participation.objects.count() == 0


def test_a_non_member_gets_404_and_an_anonymous_visitor_the_login(db):
    build_study()
    account("alice")
    outsider = signed_in(account("mallory"))
    assert outsider.post("/studies/s/invite/", {"names": "alice"}).status_code == 404
    response = Client().post("/studies/s/invite/", {"names": "alice"})
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert manager(build_study(slug="t")).post("/studies/nope/invite/", {"names": "alice"}).status_code == 404
    assert Participation.objects.count() == 0


def test_the_invite_page_only_takes_posts(db):
    study = build_study()
    assert manager(study).get("/studies/s/invite/").status_code == 405


# ------------------------------------------------------------------------------
# Entry as the invited account
# ------------------------------------------------------------------------------
def test_an_invited_account_judges_as_itself(db):
    study = open_study()
    alice = account("alice")
    participation_invite(study=study, names=["alice"])
    client = signed_in(alice)

    assert client.get("/s/s/").status_code == 200  # the consent page
    assert client.post("/s/s/consent/").status_code == 302
    assert client.get("/s/s/trial/").status_code == 200

    mine = Annotator.objects.get(user=alice)
    assert client.session[f"annotate:{study.pk}:annotator"] == mine.pk
    assert not Annotator.objects.filter(source=Annotator.Source.INVITE).exists()
    assert Participation.objects.get(annotator=mine).consented_at is not None
    assert mine.assignments.filter(study=study).exists()


def test_signing_in_as_the_invited_account_replaces_an_anonymous_annotator(db):
    study = open_study()
    alice = account("alice")
    participation_invite(study=study, names=["alice"])
    client = Client()
    client.get("/s/s/")
    client.post("/s/s/consent/")
    anonymous = Annotator.objects.get(source=Annotator.Source.INVITE)
    client.force_login(alice)  # keeps the session's data, as a login in the same browser does not

    response = client.get("/s/s/")

    assert response.status_code == 200 and 'action="/s/s/consent/"' in response.content.decode()
    assert client.session[f"annotate:{study.pk}:annotator"] == Annotator.objects.get(user=alice).pk != anonymous.pk


def test_a_returning_invited_account_who_consented_is_not_asked_again(db):
    study = open_study()
    alice = account("alice")
    participation_invite(study=study, names=["alice"])
    Participation.objects.update(consented_at=timezone.now())
    response = signed_in(alice).get("/s/s/")
    assert response.status_code == 302
    assert response["Location"].startswith("/s/s/") and "consent" not in response["Location"]


def test_a_prolific_link_wins_over_the_invited_account(db):
    study = open_study()
    alice = account("alice")
    participation_invite(study=study, names=["alice"])
    client = signed_in(alice)
    client.get("/s/s/", {"PROLIFIC_PID": "5f0c0ffee0000000000000a1"})
    prolific = Annotator.objects.get(source=Annotator.Source.PROLIFIC)
    assert client.session[f"annotate:{study.pk}:annotator"] == prolific.pk


def test_an_account_invited_elsewhere_enters_as_anyone_else(db):
    study, other = open_study(), build_study(slug="other")
    alice = account("alice")
    participation_invite(study=other, names=["alice"])
    client = signed_in(alice)
    client.get("/s/s/")
    annotator_id = client.session[f"annotate:{study.pk}:annotator"]
    assert Annotator.objects.get(pk=annotator_id).source == Annotator.Source.INVITE


# ------------------------------------------------------------------------------
# The home page
# ------------------------------------------------------------------------------
def test_home_lists_the_open_studies_an_account_is_invited_to(db):
    mine, draft, closed, theirs = (
        open_study("mine"), build_study(slug="draft"), open_study("closed"), open_study("theirs")
    )
    study_close(study=closed)
    alice, bob = account("alice"), account("bob")
    for study in (mine, draft, closed):
        participation_invite(study=study, names=["alice"])
    participation_invite(study=theirs, names=["bob"])

    html = signed_in(alice).get("/").content.decode()

    assert re.search(r'<a href="/s/mine/">mine</a></td><td>invited</td>', html)
    for slug in ("draft", "closed", "theirs"):
        assert f"/s/{slug}/" not in html
    assert "/s/mine/" not in signed_in(bob).get("/").content.decode()
    assert "Your invitations" not in Client().get("/").content.decode()
    # An invited account is no researcher: no empty tables of studies, corpora and generators.
    assert "<h2>Corpora</h2>" not in html and "import_corpus" not in html


def test_home_of_an_account_without_invitations_says_so(db):
    html = signed_in(account("carol")).get("/").content.decode()
    assert 'id="no-invitations"' in html and "<h2>Studies</h2>" not in html
