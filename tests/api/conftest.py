"""Two workspaces, a researcher of each role, the accounts the API refuses, and clients
signed in by session or by personal token."""

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from annotate.models import Annotator
from generation.models import Corpus, Generator, Item, Series
from parity.tokens import token_create
from workspaces.models import Membership, Workspace


def make_user(name: str, **extra):
    return get_user_model().objects.create_user(username=name, password="x", **extra)


def member(workspace: Workspace, name: str, role: str):
    user = make_user(name)
    Membership.objects.create(workspace=workspace, user=user, role=role)
    return user


def make_item(corpus: Corpus, key: str, caption: str) -> Item:
    # No file is read by the API: the row is enough.
    return Item.objects.create(
        corpus=corpus, key=key, caption=caption, image=f"originals/{key}.png", sha256="0" * 64,
        width=8, height=8, format="PNG", mode="RGB", byte_size=100,
    )


def session_client(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def token_client(user) -> APIClient:
    _, secret = token_create(user=user, name="test")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


@pytest.fixture
def lab(workspace):
    return workspace


@pytest.fixture
def other(db):
    return Workspace.objects.create(name="Other lab", slug="other")


@pytest.fixture
def owner(lab):
    return member(lab, "olga", Membership.Role.OWNER)


@pytest.fixture
def researcher(lab):
    return member(lab, "rita", Membership.Role.MEMBER)


@pytest.fixture
def viewer(lab):
    return member(lab, "victor", Membership.Role.VIEWER)


@pytest.fixture
def outsider(other):
    """A researcher of the other workspace only."""
    return member(other, "otto", Membership.Role.OWNER)


@pytest.fixture
def annotator_account(db):
    """An account invited to judge: it has an Annotator, and no membership."""
    user = make_user("anna")
    Annotator.objects.create(source=Annotator.Source.ACCOUNT, user=user)
    return user


@pytest.fixture
def loner(db):
    """An account with no membership at all."""
    return make_user("lonny")


@pytest.fixture
def superuser(db):
    return get_user_model().objects.create_superuser(username="root", password="x")


@pytest.fixture
def content(lab, other):
    """A corpus with items, a series and a generator in each workspace."""
    made = {}
    for workspace in (lab, other):
        corpus = Corpus.objects.create(workspace=workspace, name=f"{workspace.slug}-corpus")
        items = [
            make_item(corpus, "0001", "a red cube on a blue floor"),
            make_item(corpus, "0002", "a green sphere"),
            make_item(corpus, "0003", "two RED cones"),
        ]
        series = Series.objects.create(workspace=workspace, name=f"{workspace.slug}-ladder")
        generator = Generator.objects.create(workspace=workspace, series=series, name=f"{workspace.slug}-M")
        made[workspace.slug] = {"corpus": corpus, "items": items, "series": series, "generator": generator}
    return made
