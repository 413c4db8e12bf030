"""Timed exposure in Chromium: both images are masked `exposure_ms` after they appear,
and the forced choice still records."""

import re

import pytest

from tests.annotate.test_pages import opened, servable
from tests.e2e.conftest import outside_playwright

EXPOSURE_MS = 300
HIDDEN = (
    "() => Array.from(document.querySelectorAll('#trial .choice img')).map(img => {"
    " const style = getComputedStyle(img); return style.visibility === 'hidden' || style.opacity === '0'; })"
)


@pytest.fixture
def study(transactional_db):
    study = servable(opened(items=4, quota=2))
    study.exposure_ms = EXPOSURE_MS
    study.save(update_fields=["exposure_ms"])
    return study


def test_images_are_masked_after_the_exposure_and_a_choice_still_records(study, live_server, browser):
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    page.goto(f"{live_server.url}/s/{study.slug}/")
    page.get_by_role("button", name=re.compile("agree", re.I)).click()
    page.wait_for_function("() => document.getElementById('trial')?.dataset.ready === '1'")
    shown_at = page.evaluate("Number(document.getElementById('trial').dataset.shownAt)")
    visible = page.evaluate(HIDDEN)
    elapsed = page.evaluate("performance.now()") - shown_at
    if elapsed < EXPOSURE_MS - 50:
        assert visible == [False, False]
    page.wait_for_function(f"() => ({HIDDEN})().every(Boolean)", timeout=5000)
    masked_after = page.evaluate("performance.now()") - shown_at
    assert EXPOSURE_MS - 20 <= masked_after < EXPOSURE_MS + 1000
    box = page.locator("#trial .choice img").first.bounding_box()
    assert box and box["width"] > 0 and box["height"] > 0  # the grey box keeps the image's size

    token = page.locator("#trial input[name=token]").input_value()
    page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "prev => { const t = document.querySelector('#trial input[name=token]'); return t && t.value !== prev; }",
        arg=token,
    )
    assert outside_playwright(_choice, token) == "right"


def _choice(token):
    from annotate.models import Judgment

    return Judgment.objects.get(assignment__token=token).choice
