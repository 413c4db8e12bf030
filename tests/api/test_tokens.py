"""Personal tokens: made on /tokens/, shown once, stored hashed, revocable; the bearer scheme."""

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from parity.models import PersonalToken
from parity.tokens import token_create
from tests.api.conftest import session_client

pytestmark = pytest.mark.django_db


def bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_page_needs_a_login(client):
    response = client.get("/tokens/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


@pytest.mark.parametrize("who", ["annotator_account", "loner"])
def test_page_refuses_accounts_that_are_not_researchers(client, request, who):
    client.force_login(request.getfixturevalue(who))
    assert client.get("/tokens/").status_code == 403
    assert client.post("/tokens/", {"name": "x"}).status_code == 403
    assert not PersonalToken.objects.exists()


def test_home_links_the_page_for_researchers_only(client, researcher, annotator_account):
    client.force_login(researcher)
    assert b'href="/tokens/"' in client.get("/").content
    client.force_login(annotator_account)
    assert b'href="/tokens/"' not in client.get("/").content


def test_create_shows_the_secret_once_and_stores_only_its_hash(client, researcher):
    client.force_login(researcher)
    response = client.post("/tokens/", {"name": "training cluster"})
    assert response.status_code == 201
    assert response["Cache-Control"] == "no-store"
    secret = response.context["secret"]
    assert secret.startswith("pty_") and len(secret) > 40
    assert secret in response.content.decode()

    token = PersonalToken.objects.get()
    assert token.user == researcher and token.name == "training cluster"
    assert token.digest == hashlib.sha256(secret.encode()).hexdigest()
    assert token.prefix == secret[:12]
    stored = [str(value) for value in PersonalToken.objects.values().get().values()]
    assert not any(secret in value for value in stored)

    page = client.get("/tokens/").content.decode()
    assert secret not in page
    assert "training cluster" in page and token.prefix in page and "never" in page


def test_create_needs_a_name(client, researcher):
    client.force_login(researcher)
    response = client.post("/tokens/", {"name": ""})
    assert response.status_code == 200
    assert not PersonalToken.objects.exists()


def test_bearer_token_authenticates_as_its_user(researcher):
    _, secret = token_create(user=researcher, name="t")
    response = bearer(secret).get("/api/v1/workspaces/")
    assert response.status_code == 200
    assert [w["slug"] for w in response.json()["results"]] == ["lab"]


def test_revoked_token_gets_401(client, researcher):
    token, secret = token_create(user=researcher, name="t")
    client.force_login(researcher)
    response = client.post(f"/tokens/{token.pk}/revoke/")
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None

    response = bearer(secret).get("/api/v1/workspaces/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json() == {
        "error": {"code": "authentication_failed", "message": "Unknown or revoked token.", "field": None}
    }
    assert "revoked" in client.get("/tokens/").content.decode()


def test_cannot_revoke_someone_elses_token(client, researcher, owner):
    token, secret = token_create(user=owner, name="t")
    client.force_login(researcher)
    assert client.post(f"/tokens/{token.pk}/revoke/").status_code == 404
    assert bearer(secret).get("/api/v1/workspaces/").status_code == 200


@pytest.mark.parametrize(
    "header",
    ["Bearer pty_unknown", "Bearer", "Bearer a b", "Bearer not-even-ours"],
)
def test_bad_tokens_get_401(researcher, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/workspaces/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_no_credentials_get_401(db):
    response = APIClient().get("/api/v1/workspaces/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_token_of_a_disabled_account_gets_401(researcher):
    _, secret = token_create(user=researcher, name="t")
    researcher.is_active = False
    researcher.save()
    assert bearer(secret).get("/api/v1/workspaces/").status_code == 401


def test_last_used_is_written_at_most_once_a_minute(researcher):
    token, secret = token_create(user=researcher, name="t")
    assert token.last_used_at is None
    client = bearer(secret)
    client.get("/api/v1/workspaces/")
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None

    client.get("/api/v1/workspaces/")
    token.refresh_from_db()
    assert token.last_used_at == first

    PersonalToken.objects.filter(pk=token.pk).update(last_used_at=first - timedelta(minutes=2))
    client.get("/api/v1/workspaces/")
    token.refresh_from_db()
    assert token.last_used_at > first - timedelta(minutes=1)
    assert token.last_used_at <= timezone.now()


def test_session_still_works_for_the_browser(researcher):
    assert session_client(researcher).get("/api/v1/workspaces/").status_code == 200
