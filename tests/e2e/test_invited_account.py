"""An invited account that is not staff signs in, finds its invitation and judges as itself.

Until the sign-in form was Parity's own, this path ended at the admin's form, which
refuses accounts without staff status.
"""

import re

import pytest
from django.contrib.auth import get_user_model

from annotate.models import Judgment, Participation
from annotate.services import participation_invite
from tests.annotate.test_pages import opened, servable
from tests.e2e.conftest import outside_playwright

PASSWORD = "a-long-test-password"


@pytest.fixture
def invited(transactional_db):
    # Rows are made before Playwright starts (see test_researcher_home.py).
    study = servable(opened(generators=2, items=12, k=1, quota=4, practice=0))
    get_user_model().objects.create_user("ines", password=PASSWORD)  # not staff, in no workspace
    participation_invite(study=study, names=["ines"])
    return study


def _participation(slug: str) -> tuple[bool, int]:
    participation = Participation.objects.get(study__slug=slug, annotator__user__username="ines")
    judged = Judgment.objects.filter(assignment__annotator=participation.annotator).count()
    return participation.consented_at is not None, judged


def test_an_invited_account_signs_in_and_judges_as_itself(invited, live_server, browser):
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    page.goto(f"{live_server.url}/")
    page.locator("main").get_by_role("link", name="Log in").click()
    page.fill("#id_username", "ines")
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/")

    page.locator("#invitations").get_by_role("link", name=invited.name).click()
    page.get_by_role("button", name=re.compile("agree", re.I)).click()
    page.wait_for_function("() => document.getElementById('trial')?.dataset.ready === '1'")
    token = page.locator("#trial input[name=token]").input_value()
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(
        "prev => document.querySelector('#trial input[name=token]')?.value !== prev", arg=token
    )

    # The invitation's own participation: the judgment is the account's, not a new annotator's.
    assert outside_playwright(_participation, invited.slug) == (True, 1)
