"""One simulated annotator's visit: the study's pages, from the link to the completion code.

`visit` goes where a person's browser goes: the study link with a PROLIFIC_PID,
consent, practice with its feedback, the trials (htmx fragments), breaks, and the
done page, where it reads the completion code. For each trial it downloads both
images at their opaque URLs (and preloads the next trial's, as the page's script
does), measures each one against the caption (`look`), lets the persona choose
(`population.decide`) and posts the choice with its simulated response time. It
knows only what the pages show: never the database, never which image is real.

A refusal for going too fast (429) is waited out as its Retry-After asks, then the
page's Continue is clicked, as a person would.
"""

from __future__ import annotations

import hashlib
import io
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

from PIL import Image

from demo.scene_check import caption_recognition, cleanliness
from demo.simulation.browser import Browser, Form, Page
from demo.simulation.population import Persona, decide

# Trials in a row without a recorded answer before the annotator gives up.
MAX_UNRECORDED = 8
# The longest wait for a rate limit; a longer Retry-After is cut to this.
MAX_WAIT_S = 60.0


@dataclass
class Click:
    """One answer the annotator sent."""

    token: str
    choice: str
    client_ms: int
    practice: bool
    left: float  # the measured quality of each image
    right: float
    recorded: bool = False  # the page that came back did not refuse it
    refusal: str = ""  # else what it said (status and message)


@dataclass
class Visit:
    """What one annotator did and saw."""

    persona: Persona
    pid: str
    clicks: list[Click] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)  # practice feedback: correct / wrong
    code: str = ""  # the completion code shown on the done page
    finished: bool = False  # reached the done page
    ended: str = ""  # why the visit ended
    waits: int = 0  # refusals for going too fast, waited out
    requests: int = 0

    @property
    def judgments(self) -> int:
        return sum(1 for c in self.clicks if c.recorded and not c.practice)


class Eyes:
    """How much of a caption can be recognised in an image, cached by content (annotators share it)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def look(self, data: bytes, caption: str) -> float:
        key = (hashlib.sha256(data).hexdigest(), caption)
        with self._lock:
            if key in self._seen:
                return self._seen[key]
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            try:
                value = caption_recognition(image, caption)
            except ValueError:
                # Not a scene caption: judge how clean the image looks instead.
                value = cleanliness(image)
        with self._lock:
            self._seen[key] = value
        return value


def visit(
    *,
    base_url: str,
    slug: str,
    pid: str,
    persona: Persona,
    eyes: Eyes,
    on_entered: Callable[[str], None] = lambda pid: None,
    on_judged: Callable[[Click], None] = lambda click: None,
    max_steps: int = 100_000,
    sleep: Callable[[float], None] = time.sleep,
) -> Visit:
    """Take part in the study at `base_url`/s/`slug`/ as `persona`, with Prolific id `pid`.

    `on_entered(pid)` runs once the study has let the annotator in (before consent);
    `on_judged(click)` after each study answer that was recorded.
    """
    rng = random.Random(persona.seed)
    outcome = Visit(persona=persona, pid=pid)
    browser = Browser(base_url)
    entered = False
    unrecorded = 0
    pending: Click | None = None
    try:
        page = browser.load("GET", f"/s/{quote(slug)}/?{urlencode({'PROLIFIC_PID': pid})}")
        for _ in range(max_steps):
            if pending is not None:
                pending.recorded = page.status < 400 and not page.message
                if not pending.recorded:
                    pending.refusal = f"{page.status} {page.section} {page.message}".strip()
                if pending.recorded and not pending.practice:
                    on_judged(pending)
                # A refusal for speed is waited out below; it is no reason to give up.
                if page.status != 429:
                    unrecorded = 0 if pending.recorded else unrecorded + 1
                pending = None
                if unrecorded >= MAX_UNRECORDED:
                    outcome.ended = f"gave up: {unrecorded} answers in a row not recorded ({page.message!r})"
                    break
            if page.status == 429:
                outcome.waits += 1
                sleep(min(page.retry_after(), MAX_WAIT_S))
                page = _retry(browser, page)
                continue
            if page.status >= 400:
                outcome.ended = f"HTTP {page.status} at {page.path}"
                break
            if not entered:
                entered = True
                on_entered(pid)
            if page.path.endswith("/done/"):
                outcome.code, outcome.finished, outcome.ended = page.code, True, "done"
                break
            consent = _form(page, lambda f: f.action.rstrip("/").endswith("/consent"))
            if consent is not None:
                page = browser.submit(page, consent)
            elif page.section in ("trial", "practice"):
                pending, page = _judge(browser, page, persona, rng, eyes)
                outcome.clicks.append(pending)
            elif page.section in ("feedback", "break") and page.forms:
                if page.verdict:
                    outcome.verdicts.append(page.verdict)
                page = browser.submit(page, page.forms[0])
            else:
                # A closed or full study, or an unknown page: nothing left to do here.
                outcome.ended = page.message or page.paragraph or page.title or f"nothing to do at {page.path}"
                break
        else:
            outcome.ended = f"stopped after {max_steps} steps"
    finally:
        outcome.requests = browser.requests
        browser.close()
    return outcome


def _judge(browser: Browser, page: Page, persona: Persona, rng: random.Random, eyes: Eyes) -> tuple[Click, Page]:
    """Look at both images of the trial on `page`, choose, and send the choice."""
    form = _form(page, lambda f: len([b for b in f.buttons if b.image]) == 2)
    if form is None:
        raise RuntimeError(f"a {page.section} without two images at {page.path}")
    buttons = {b.value: b for b in form.buttons if b.image}
    images = {side: browser.image(buttons[side].image) for side in ("left", "right")}
    for url in page.preload:  # the page's script preloads the next trial once these are shown
        browser.image(url)
    left, right = (eyes.look(images[side], page.caption) for side in ("left", "right"))
    decision = decide(persona, rng, left, right)
    click = Click(token=form.inputs.get("token", ""), choice=decision.choice, client_ms=decision.client_ms,
                  practice=page.section == "practice", left=left, right=right)
    answer = browser.submit(page, form, button=buttons[decision.choice], extra={"client_ms": str(decision.client_ms)})
    return click, answer


def _retry(browser: Browser, page: Page) -> Page:
    """After a wait: the refusal's Continue button (a fragment) or its Try again link (a page)."""
    if page.forms:
        return browser.submit(page, page.forms[0])
    return browser.load("GET", page.links[0] if page.links else page.url)


def _form(page: Page, test: Callable[[Form], bool]) -> Form | None:
    return next((form for form in page.forms if test(form)), None)
