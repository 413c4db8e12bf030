"""In Chromium, the next trial's images are fetched while the current one is judged and
shown from that copy: the trial after a click needs nothing more from the network."""

import time
from collections import Counter

import pytest

from tests.annotate.test_pages import opened, servable

TRIALS = 6


@pytest.fixture
def study(transactional_db):
    # Rows are made before Playwright starts (see test_researcher_home.py).
    return servable(opened(generators=2, items=12, k=1, quota=TRIALS))


def _wait_until(page, condition, timeout_s: float = 5.0) -> None:
    # The sync API delivers events only while Playwright is waiting, so wait through it.
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        page.wait_for_timeout(20)


def test_the_next_trial_shows_the_images_preloaded_during_this_one(study, live_server, browser):
    page = browser.new_page()
    requested, finished = Counter(), set()
    page.on("request", lambda request: requested.update([request.url]))
    page.on("requestfinished", lambda request: finished.add(request.url))
    page.goto(f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID=pp-preload")
    page.get_by_role("button", name="I agree").click()
    page.wait_for_function("() => document.getElementById('trial')?.dataset.ready === '1'")
    for n in range(TRIALS - 1):
        preload = page.locator("#trial").get_attribute("data-preload")
        urls = [live_server.url + path for path in preload.split(" ")]
        assert len(urls) == 2
        _wait_until(page, lambda: all(url in finished for url in urls))
        token = page.locator("#trial input[name=token]").input_value()
        page.keyboard.press("1")
        page.wait_for_function(
            "prev => { const s = document.getElementById('trial');"
            " return s.querySelector('input[name=token]').value !== prev && s.dataset.ready === '1'; }",
            arg=token,
        )
        shown = [live_server.url + src for src in page.locator("#trial .choice img").evaluate_all(
            "images => images.map(image => image.getAttribute('src'))")]
        assert shown == urls
        # Fetched once, by the preload; the trial on screen reused that copy.
        assert [requested[url] for url in urls] == [1, 1]
    assert page.locator("#trial").get_attribute("data-preload") is None
