"""A researcher logs in with a real browser and sees their workspace's corpora only.

The researcher is not staff: the sign-in form is Parity's own, not the admin's.
"""

import pytest
from django.contrib.auth import get_user_model

from generation.models import Corpus
from workspaces.models import Membership, Workspace


@pytest.fixture
def two_workspaces(transactional_db):
    mine = Workspace.objects.create(name="Mine", slug="mine")
    theirs = Workspace.objects.create(name="Theirs", slug="theirs")
    user = get_user_model().objects.create_user("ada", password="a-long-test-password")
    Membership.objects.create(workspace=mine, user=user, role=Membership.Role.OWNER)
    Corpus.objects.create(workspace=mine, name="coco-val")
    Corpus.objects.create(workspace=theirs, name="secret-corpus")


def test_researcher_sees_own_corpora_after_login(two_workspaces, live_server, browser):
    # No ORM call in here: while Playwright runs, Django would open a connection in
    # another context and leave it open (PostgreSQL then cannot drop the test database).
    page = browser.new_page()
    page.goto(f"{live_server.url}/")
    page.locator("main").get_by_role("link", name="Log in").click()
    page.fill("#id_username", "ada")
    page.fill("#id_password", "a-long-test-password")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/")

    corpora = page.locator("main table").filter(has=page.get_by_role("columnheader", name="Items"))
    assert corpora.get_by_role("link", name="coco-val").is_visible()
    assert "secret-corpus" not in page.content()

