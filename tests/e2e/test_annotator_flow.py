"""An annotator arrives from a Prolific link, practises, and judges with keyboard and mouse in Chromium.

The page's own script is what is under test here: images revealed only once both are
decoded, the response time, ←/→ and 1/2 keys, the htmx swap, the narrow layout; and
on the practice trials, the same script and the feedback after each answer.
"""

import re

import pytest

from tests.annotate.test_pages import opened, servable
from tests.e2e.conftest import outside_playwright

KEYS = ["ArrowLeft", "ArrowRight", "1", "2"]
KEYBOARD_TRIALS = 20
MOUSE_TRIALS = 5
PRACTICE_TRIALS = 3


@pytest.fixture
def study(transactional_db):
    # Rows are made before Playwright starts (see test_researcher_home.py).
    return servable(opened(generators=3, items=30, k=1, quota=KEYBOARD_TRIALS + MOUSE_TRIALS,
                           practice=PRACTICE_TRIALS))


def _wait_for_next(page, previous_token):
    page.wait_for_function(
        "prev => { const t = document.querySelector('#trial input[name=token]');"
        " const s = document.getElementById('trial');"
        " return t && t.value !== prev && s.dataset.ready === '1'; }",
        arg=previous_token,
    )


def _practise(page) -> dict[str, str]:
    """Answer every practice trial (wrong by key, then right by key, then right by click),
    check each feedback and go on; return the choice made per token."""
    chosen = {}
    for n in range(1, PRACTICE_TRIALS + 1):
        page.wait_for_function("() => document.querySelector('#trial.practice')?.dataset.ready === '1'")
        assert page.get_by_role("heading", name=f"Practice {n} of {PRACTICE_TRIALS}").is_visible()
        token = page.locator("#trial input[name=token]").input_value()
        real = outside_playwright(_reference_side, token)
        correct = n > 1
        choice = real if correct else ("right" if real == "left" else "left")
        if n < PRACTICE_TRIALS:
            page.keyboard.press({"left": "1", "right": "ArrowRight"}[choice])
        else:
            page.get_by_role("button", name=f"{choice.title()} image").click()
        chosen[token] = choice
        page.wait_for_selector("#trial.feedback")
        verdict = page.locator("#trial .verdict").inner_text()
        assert verdict == ("Correct: you chose the real photograph." if correct
                           else f"Not quite: the real photograph was the image on the {real}.")
        # Both images stay on the feedback, marked, the real one where the server put it.
        assert page.locator("#trial figure.outcome.real").get_attribute("data-side") == real
        assert page.locator("#trial figure.outcome img").count() == 2
        last = n == PRACTICE_TRIALS
        page.get_by_role("button", name="Start the study" if last else "Next").click()
    return chosen


def test_prolific_annotator_judges_by_keyboard_and_mouse(study, live_server, browser):
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    page.goto(f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID=pp-e2e&STUDY_ID=st&SESSION_ID=se")
    assert "Look closely at both images." in page.content()
    page.get_by_role("button", name=re.compile("agree", re.I)).click()
    page.wait_for_url(re.compile(r"/practice/$"))
    practised = _practise(page)
    page.wait_for_function(
        "() => { const s = document.getElementById('trial');"
        " return s && !s.matches('.practice, .feedback') && s.dataset.ready === '1'"
        " && s.querySelector('input[name=token]'); }"
    )

    chosen, timings = [], []
    for n in range(KEYBOARD_TRIALS + MOUSE_TRIALS):
        token = page.locator("#trial input[name=token]").input_value()
        if n == KEYBOARD_TRIALS:
            page.set_viewport_size({"width": 360, "height": 740})
        if n < KEYBOARD_TRIALS:
            key = KEYS[n % len(KEYS)]
            choice = "left" if key in ("ArrowLeft", "1") else "right"
            started = page.evaluate("performance.now()")
            page.keyboard.press(key)
        else:
            choice = "left" if n % 2 else "right"
            started = page.evaluate("performance.now()")
            page.get_by_role("button", name=f"{choice.title()} image").click()
        chosen.append((token, choice))
        if n + 1 < KEYBOARD_TRIALS + MOUSE_TRIALS:
            _wait_for_next(page, token)
            timings.append(page.evaluate("performance.now()") - started)

    page.wait_for_url(re.compile(r"/done/$"))
    assert "C0DE42" in page.content()
    boxes = [page.get_by_role("button", name=f"{side} image") for side in ("Left", "Right")]
    assert all(box.count() == 0 for box in boxes)
    timings.sort()
    print(f"\nclick to next trial visible: median {timings[len(timings) // 2]:.0f} ms, "
          f"max {timings[-1]:.0f} ms over {len(timings)} trials")
    recorded = outside_playwright(_recorded, study, False)
    assert recorded == {token: choice for token, choice in chosen}
    assert outside_playwright(_recorded, study, True) == practised


def _reference_side(token):
    from annotate.models import Assignment

    return Assignment.objects.get(token=token).reference_side


def _recorded(study, practice):
    """The judgments on the study's trials, or those on its practice trials."""
    from annotate.models import Judgment, Trial

    rows = Judgment.objects.filter(assignment__study=study).select_related("assignment")
    is_practice = {"assignment__trial__kind": Trial.Kind.PRACTICE}
    rows = rows.filter(**is_practice) if practice else rows.exclude(**is_practice)
    judgments = {str(j.assignment.token): j.choice for j in rows}
    assert all(j.client_response_ms is not None for j in rows)
    return judgments
