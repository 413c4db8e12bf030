"""The documentation's screenshots, taken by Chromium from the project's own pages.

A temporary server runs in this process (demo.simulation.server) on the
configured database, and Playwright drives Debian's Chromium (never a downloaded
browser) through it:

- ``annotator.png`` and ``annotator-mobile.png``: a fresh annotator enters the study
  by its Prolific-style link, consents, answers the practice trials (always the left
  image) and reaches a trial; the shot is taken once the page's own script has
  decoded both images and set ``#trial[data-ready="1"]``, at 1200 and at 360 pixels
  wide;
- ``forest.png`` and ``scaling.png``: a researcher logs in and opens the study page;
  once the analysis panel has replaced its placeholder, the forest plot and the
  study's first scaling plot are shot as elements, at twice the pixel density.

That visitor must leave no trace in the results. It is marked simulated as soon as
it has entered (as `simulate_annotators` marks its own), so its participation is
counted as simulated, and when the shots are taken its open assignments (the
trial on screen and the one issued ahead for preloading) are released at once
instead of at expiry, so their trials go back to the pool. Its practice answers stay
on practice trials, which no analysis reads; no judgment of the study is made.

The report is built in this process first when the stored one does not match the
data, so that the panel does not wait for a worker. A shot that cannot be taken (no
trial left for a new annotator, no scaling plot yet) writes no file; the others
are still taken, and the command then fails naming what is missing.
"""

import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import authenticate
from django.core.management.base import BaseCommand, CommandError
from django.db import connections
from django.shortcuts import resolve_url
from django.urls import reverse

from analysis.services import report_snapshot_current
from annotate import selectors as annotate_selectors
from annotate.models import Annotator, Study
from annotate.services import annotator_mark_simulated, assignments_release
from demo.management.commands.demo import DEMO_PASSWORD, DEMO_USER
from demo.management.commands.demo import STUDY as DEMO_STUDY
from demo.simulation.server import local_server

DESKTOP = {"width": 1200, "height": 800}
MOBILE = {"width": 360, "height": 740}
# The plots are SVG: twice the pixels keep their text sharp in the documentation.
PLOT_SCALE = 2
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
# Milliseconds: a page step, and the analysis panel (its first request may fit curves).
STEP_TIMEOUT = 30_000
PANEL_TIMEOUT = 180_000
# Where the annotator stands, read in the browser. A section already acted on is
# marked, so that the state waited for is the next one. The kind of section is read
# from its content and its class must agree: for a moment after an htmx swap the new
# section still wears the old one's class (htmx settles "class" across the swap).
ANNOTATOR_STATE = """() => {
  const t = document.getElementById('trial');
  if (!t) return document.readyState === 'complete' ? 'none' : false;
  if (t.dataset.screenshotsDone) return false;
  const is = name => t.classList.contains(name);
  if (t.querySelector('.verdict')) return is('feedback') ? 'feedback' : false;
  const form = t.querySelector('form[hx-post]');
  if (!form || t.dataset.ready !== '1') return false;
  const practice = form.getAttribute('action').endsWith('/practice/');
  if (practice) return is('practice') ? 'practice' : false;
  return is('practice') || is('feedback') ? false : 'trial';
}"""
# (file, the plot's element, what its absence means)
PLOTS = (
    ("forest.png", '#study-analysis svg.plot[aria-label="forest"]',
     "no forest plot: the study has no judgments of generated trials yet"),
    ("scaling.png", "#study-analysis #report-scaling article.fit svg.plot",
     ("no scaling plot: the study has no series of three generators that differ along a scale axis "
      "(params, train_images, train_flops, train_step or a numeric setting) with judgments yet")),
)


def _page(browser, **context):
    """A page of a fresh browser context (its own cookies), answering the browser's
    favicon request itself so that the server logs no 404 for it."""
    context = browser.new_context(**context)
    context.route("**/favicon.ico", lambda route: route.fulfill(status=204, body=""))
    page = context.new_page()
    page.set_default_timeout(STEP_TIMEOUT)
    return page


def _mark_simulated(study: Study, pid: str) -> Annotator | None:
    """The visitor who entered with `pid`, marked simulated; None if it never got in."""
    try:
        return annotator_mark_simulated(study=study, external_id=pid)
    except Annotator.DoesNotExist:
        return None


def _in_thread(function, *args, **kwargs):
    """ORM work while Playwright runs: its event loop owns this thread, so Django
    refuses synchronous queries here; a thread of its own, whose connection is closed."""

    def call():
        try:
            return function(*args, **kwargs)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(call).result()


class Command(BaseCommand):
    help = "Write annotator.png, annotator-mobile.png, forest.png and scaling.png of a study with Chromium."

    def add_arguments(self, parser):
        parser.add_argument("--study", help=f"the study's slug (default: {DEMO_STUDY!r} if it exists, "
                                            "else the newest open study)")
        parser.add_argument("--out", type=Path, default=Path(settings.BASE_DIR) / "docs" / "screenshots",
                            help="folder for the PNG files (default: docs/screenshots)")
        parser.add_argument("--username", default=DEMO_USER, help=f"the researcher's login (default {DEMO_USER})")
        parser.add_argument("--password", default=DEMO_PASSWORD, help="the researcher's password (default: the demo's)")
        parser.add_argument("--chromium", default=os.environ.get("PARITY_CHROMIUM", "/usr/bin/chromium"),
                            help="the Chromium binary (default /usr/bin/chromium or $PARITY_CHROMIUM)")

    def handle(self, *args, study, out, username, password, chromium, **options):
        try:
            from playwright.sync_api import Error as PlaywrightError
            from playwright.sync_api import sync_playwright
        except ImportError:
            raise CommandError("Playwright is not installed: it is a dev dependency (pip install -e '.[dev]', "
                               "or make screenshots)") from None
        if not os.path.isfile(chromium) or not os.access(chromium, os.X_OK):
            raise CommandError(f"no Chromium at {chromium}: install Debian's package (apt-get install chromium) "
                               "or pass --chromium; no browser is ever downloaded")
        target = self._study(study)
        user = authenticate(username=username, password=password)
        if user is None:
            raise CommandError(f"the login {username!r} with that password is refused: "
                               "pass --username and --password of a researcher")
        if annotate_selectors.study_for_user(user=user, slug=target.slug) is None:
            raise CommandError(f"{username!r} may not see study {target.slug!r}: log in as a member of its workspace")
        self._report(target)
        out.mkdir(parents=True, exist_ok=True)
        missing, written = [], []
        try:
            with local_server() as base, sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
                try:
                    if target.status == Study.Status.OPEN:
                        self._annotator(browser, base, target, out, written, missing)
                    else:
                        missing.append(f"annotator.png: study {target.slug!r} is {target.status}, not open")
                    self._plots(browser, base, target, username, password, out, written, missing)
                finally:
                    browser.close()
        except PlaywrightError as exc:  # a launch that fails, a page that never reaches the state waited for
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CommandError(f"Chromium ({chromium}): {first}") from exc
        for path in written:
            self.stdout.write(f"Wrote {path}")
        if missing:
            raise CommandError("not taken: " + "; ".join(missing))

    def _study(self, slug: str | None) -> Study:
        if slug:
            target = Study.objects.filter(slug=slug).first()
            if target is None:
                raise CommandError(f"no study with slug {slug!r}")
            return target
        target = (Study.objects.filter(slug=DEMO_STUDY).first()
                  or Study.objects.filter(status=Study.Status.OPEN).order_by("-created_at").first())
        if target is None:
            raise CommandError(f"no study {DEMO_STUDY!r} and no open study: run make demo, or pass --study")
        return target

    def _report(self, study: Study) -> None:
        """The stored report, built now (in this process) unless it matches the data."""
        self.stdout.write(f"Analysis of study {study.slug!r}: the stored report, or one built now…")
        try:
            report_snapshot_current(study=study)
        except Exception as exc:  # numerical code on any data: said plainly, the panel shows the same
            raise CommandError(f"the analysis of study {study.slug!r} failed: {type(exc).__name__}: {exc}") from exc

    # ------------------------------------------------------------------------------
    # Annotator
    # ------------------------------------------------------------------------------
    def _annotator(self, browser, base: str, study: Study, out: Path, written: list, missing: list) -> None:
        pid = f"parity-screenshots-{secrets.token_hex(4)}"
        page = _page(browser, viewport=DESKTOP)
        annotator = None
        try:
            page.goto(f"{base}/s/{study.slug}/?" + urlencode({"PROLIFIC_PID": pid}))
            annotator = _in_thread(_mark_simulated, study, pid)
            consent = page.locator("form[action$='/consent/'] button[type=submit]")
            if consent.count():
                with page.expect_navigation():
                    consent.click()
            state = self._to_trial(page, limit=2 * study.practice_trials + 2)
            if state != "trial":
                text = " ".join(page.locator("main").inner_text().split())[:200]
                missing.append(f"annotator.png: no trial for a new annotator in study {study.slug!r} "
                               f"(the page says: {text!r})")
                return
            for name, viewport in (("annotator.png", DESKTOP), ("annotator-mobile.png", MOBILE)):
                page.set_viewport_size(viewport)
                # One frame for the layout to follow the new width before the shot.
                page.evaluate("() => new Promise(done => requestAnimationFrame(() => done()))")
                page.screenshot(path=out / name, full_page=True)
                written.append(out / name)
        finally:
            page.context.close()
            # Also after a failure between the entry and the mark.
            annotator = annotator or _in_thread(_mark_simulated, study, pid)
            if annotator is not None:
                _in_thread(assignments_release, study=study, annotator=annotator)

    def _to_trial(self, page, *, limit: int) -> str:
        """Answer practice (the left image) and its feedback until a trial shows; return the last state."""
        for _ in range(limit + 1):
            state = page.wait_for_function(ANNOTATOR_STATE).json_value()
            if state in ("trial", "none"):
                return state
            page.evaluate("() => { document.getElementById('trial').dataset.screenshotsDone = '1'; }")
            if state == "practice":
                page.locator("#trial .choice").first.click()
            else:
                page.locator("#trial.feedback button[type=submit]").click()
        return state

    # ------------------------------------------------------------------------------
    # Researcher
    # ------------------------------------------------------------------------------
    def _plots(self, browser, base: str, study: Study, username: str, password: str, out: Path,
               written: list, missing: list) -> None:
        page = _page(browser, viewport=DESKTOP, device_scale_factor=PLOT_SCALE)
        try:
            study_path = reverse("annotate:study-detail", args=[study.slug])
            page.goto(f"{base}{resolve_url(settings.LOGIN_URL)}?" + urlencode({"next": study_path}))
            page.fill("#id_username", username)
            page.fill("#id_password", password)
            with page.expect_navigation():
                page.press("#id_password", "Enter")
            if not page.url.endswith(study_path):
                raise CommandError(f"logging in as {username!r} did not lead to the study page ({page.url})")
            page.wait_for_selector("#study-analysis #analysis-built, #study-analysis #analysis-error",
                                   timeout=PANEL_TIMEOUT)
            if page.locator("#study-analysis #analysis-built").count() == 0:
                error = page.locator("#analysis-error").inner_text()
                missing.append(f"forest.png and scaling.png: {error}")
                return
            for name, selector, absent in PLOTS:
                plot = page.locator(selector).first
                if plot.count() == 0:
                    missing.append(f"{name}: {absent}")
                    continue
                plot.scroll_into_view_if_needed()
                plot.screenshot(path=out / name)
                written.append(out / name)
        finally:
            page.context.close()
