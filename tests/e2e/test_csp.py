"""Chromium goes through Parity's pages and nothing breaks the Content-Security-Policy.

The policy (settings.CONTENT_SECURITY_POLICY) runs no inline script, event handler
or eval and applies no inline style: a page that still had one would lose it in a
browser without a word on the server. Here every refusal the browser reports, as a
`securitypolicyviolation` event or on its console, fails the test: the annotator's
entry, consent, practice with its feedback and trials (htmx swaps, keys and a click),
the researcher's sign-in, home, study page (htmx polling, the analysis panel and its
plots), generator page (a job that polls), Swagger UI and the admin. The downloaded
HTML report has a policy of its own, under which it must render too.
"""

import re

import pytest
from django.contrib.auth import get_user_model

from analysis import services as analysis_services
from generation.models import GenerationJob
from tests.analysis.builders import add_annotators, study_with_trials
from tests.analysis.conftest import TEST_OPTIONS
from tests.annotate.test_pages import opened, servable
from workspaces.models import Membership

PASSWORD = "a-long-test-password"
# Runs in every document before its own scripts, and is not subject to its policy.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.parityCspViolation(`${location.pathname}: ${event.violatedDirective} refused `
    + `${event.blockedURI || "inline"} (${event.sourceFile}:${event.lineNumber}) ${event.sample}`);
}, true);
"""
PANEL_TIMEOUT = 120_000


@pytest.fixture
def site(transactional_db, monkeypatch):
    # Rows are made before Playwright starts (see test_researcher_home.py).
    monkeypatch.setattr(analysis_services, "STORED_OPTIONS", TEST_OPTIONS)
    judged = study_with_trials(slug="judged")
    add_annotators(judged, 12, seed=3)
    user = get_user_model().objects.create_superuser("ada", password=PASSWORD)
    Membership.objects.create(workspace=judged.study.workspace, user=user, role=Membership.Role.OWNER)
    generator = judged.generators[0]
    GenerationJob.objects.create(generator=generator, corpus=judged.study.corpus, total=8)  # queued: it polls
    annotated = servable(opened(generators=2, items=12, k=1, quota=6, practice=1, slug="annotated"))
    return {"judged": judged.study, "annotated": annotated, "generator": generator}


def _watched_context(browser, violations: list[str], **options):
    context = browser.new_context(**options)
    context.expose_function("parityCspViolation", lambda text: violations.append(text))
    context.add_init_script(REPORT_VIOLATIONS)

    def on_console(message):
        if "Content Security Policy" in message.text:
            violations.append(f"console: {message.text}")

    context.on("console", on_console)
    return context


def _swapped(page, selector: str, url_part: str) -> None:
    """Wait until htmx has polled `url_part` and put a new `selector` in place of the old."""
    page.locator(selector).evaluate("element => { element.dataset.old = '1'; }")
    with page.expect_response(lambda response: url_part in response.url, timeout=15_000):
        pass
    page.wait_for_selector(f"{selector}:not([data-old])")


def _annotator(page, base: str, slug: str) -> None:
    page.goto(f"{base}/s/{slug}/?PROLIFIC_PID=pp-csp&STUDY_ID=st&SESSION_ID=se")
    page.get_by_role("button", name=re.compile("agree", re.I)).click()
    page.wait_for_function("() => document.querySelector('#trial.practice')?.dataset.ready === '1'")
    page.keyboard.press("1")
    page.wait_for_selector("#trial.feedback .verdict")
    # The practice styles come from annotate.css, no longer from an inline <style>.
    assert page.locator("#trial .verdict").evaluate("e => getComputedStyle(e).fontWeight") == "600"
    page.get_by_role("button", name="Start the study").click()
    for answer in ("ArrowLeft", "2", "click"):
        page.wait_for_function(
            "() => { const t = document.getElementById('trial');"
            " return t && !t.matches('.practice, .feedback') && t.dataset.ready === '1'"
            " && t.querySelector('input[name=token]'); }"
        )
        token = page.locator("#trial input[name=token]").input_value()
        if answer == "click":
            page.get_by_role("button", name="Left image").click()
        else:
            page.keyboard.press(answer)
        page.wait_for_function(
            "prev => document.querySelector('#trial input[name=token]')?.value !== prev", arg=token
        )


def _researcher(page, base: str, site: dict) -> None:
    slug = site["judged"].slug
    page.goto(f"{base}/")
    page.goto(f"{base}/login/?next=/studies/{slug}/")
    page.fill("#id_username", "ada")
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/studies/{slug}/")
    page.wait_for_selector("#study-analysis #analysis-built", timeout=PANEL_TIMEOUT)
    # The plots are drawn as matplotlib meant: the figure's white ground, not SVG's black default.
    plot = page.locator('#study-analysis svg.plot[aria-label="forest"] path').first
    assert plot.evaluate("e => getComputedStyle(e).fill") == "rgb(255, 255, 255)"
    muted = page.locator("#study-analysis .muted").first  # site.css, no longer the panel's own <style>
    assert muted.evaluate("e => getComputedStyle(e).color") == "rgb(102, 102, 102)"
    _swapped(page, "#study-progress", f"/studies/{slug}/progress/")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download HTML").click()
    assert "<svg" in download.value.path().read_text()

    page.goto(f"{base}/")
    page.goto(f"{base}/generators/{site['generator'].pk}/")
    _swapped(page, "section.job", "/progress/")

    page.goto(f"{base}/api/docs/")
    page.wait_for_selector(".swagger-ui .opblock", timeout=15_000)
    page.locator(".opblock-summary").first.click()
    page.wait_for_selector(".swagger-ui .opblock-body")

    page.goto(f"{base}/admin/")
    page.goto(f"{base}/admin/generation/item/")
    assert page.locator("img.parity-preview").first.evaluate("e => getComputedStyle(e).maxHeight") == "64px"
    page.goto(f"{base}/admin/annotate/study/{site['judged'].pk}/change/")
    page.wait_for_selector("#study_form")
    page.goto(f"{base}/")
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(f"{base}/")


def test_no_page_breaks_the_content_security_policy(site, live_server, browser):
    violations: list[str] = []
    context = _watched_context(browser, violations, viewport={"width": 1100, "height": 800})
    page = context.new_page()
    try:
        _annotator(page, live_server.url, site["annotated"].slug)
        assert violations == []
        _researcher(page, live_server.url, site)
        page.wait_for_timeout(200)  # reports of the last page still on their way
    except Exception as exc:  # a refused script shows as a page that never gets ready
        exc.add_note("refused by the policy so far:\n" + "\n".join(violations))
        raise
    finally:
        context.close()
    assert violations == []


def test_the_html_report_renders_under_its_own_policy(site, live_server, browser):
    """Served by the site, the report is an attachment; shown inline all the same, its
    inline styles apply, and its policy is the one in force: an image is refused."""
    slug = site["judged"].slug
    url = f"{live_server.url}/api/v1/studies/{slug}/report/?format=html"
    violations: list[str] = []
    context = _watched_context(browser, violations)
    page = context.new_page()
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "ada")
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/")

    def shown_inline(route):
        response = route.fetch()
        headers = {name: value for name, value in response.headers.items() if name != "content-disposition"}
        assert "style-src 'unsafe-inline'" in headers["content-security-policy"]
        route.fulfill(response=response, headers=headers)

    page.route(url, shown_inline)
    page.goto(url, timeout=PANEL_TIMEOUT)
    assert page.locator("h1").inner_text() == f"Parity report: {site['judged'].name}"
    assert page.locator("table").first.evaluate("e => getComputedStyle(e).borderCollapse") == "collapse"
    assert page.locator("svg.plot path").first.evaluate("e => getComputedStyle(e).fill") == "rgb(255, 255, 255)"
    page.wait_for_timeout(200)
    assert violations == []

    loaded = page.evaluate("""() => new Promise((done) => {
      const image = new Image();
      image.onload = () => done(true);
      image.onerror = () => done(false);
      image.src = "/static/parity/favicon.svg";
    })""")
    page.wait_for_timeout(200)
    context.close()
    assert loaded is False
    assert any("img-src" in violation for violation in violations), violations
