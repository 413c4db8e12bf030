"""The annotator's pages: invite or Prolific entry, consent, practice, trials (htmx), images, completion.

Views stay thin: they read the request, ask the annotator's journey
(`services/journey.py`) what comes next and render it. Every error of the annotate
domain carries the friendly message the page shows.
"""

import hashlib
import secrets
from urllib.parse import quote

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from annotate import selectors
from annotate.errors import AnnotateError
from annotate.models import Side, Study
from annotate.ratelimits import join_limit, submit_limit
from annotate.services import (
    Answer,
    JourneyMemory,
    Next,
    ProlificEntry,
    Step,
    image_present,
    journey_consent,
    journey_done,
    journey_enter,
    journey_practice,
    journey_trial,
)
from workspaces.errors import ParityError

# A random token per browser, signed, that a Prolific participation is bound to.
BROWSER_COOKIE = "parity_browser"
BROWSER_COOKIE_SALT = "annotate.browser"
BROWSER_COOKIE_MAX_AGE = 90 * 24 * 3600
PROLIFIC_COMPLETE_URL = "https://app.prolific.com/submissions/complete?cc={code}"
# Long enough to read (or copy) the completion code before the page moves on.
PROLIFIC_REDIRECT_SECONDS = 3
IMAGE_MAX_AGE = 3600
CONTENT_TYPES = {"JPEG": "image/jpeg", "WEBP": "image/webp", "PNG": "image/png", "BMP": "image/bmp"}
QUESTIONS = {
    Study.Question.PREFERENCE: "Which image do you prefer for this caption?",
    Study.Question.REALISM: "Which image is a real photograph?",
}
# The page that shows each step, for a request to another page that the journey answers with it.
PAGES = {
    Step.ENTRY: "annotate:entry",
    Step.PRACTICE: "annotate:practice",
    Step.TRIAL: "annotate:trial",
    Step.DONE: "annotate:done",
}


def error_message(exc: ParityError) -> tuple[str, int]:
    """What the page says of `exc`, and its status: each annotate error carries its own."""
    shown = exc if isinstance(exc, AnnotateError) else AnnotateError
    return shown.annotator_message, shown.annotator_status


def _refusal(exc: Exception | None) -> tuple[str, int]:
    """What the page says of an answer that was not recorded, and its status."""
    if exc is None:
        return "", 200
    if isinstance(exc, ParityError):
        return error_message(exc)
    return "Please choose the left or the right image.", 400


# ------------------------------------------------------------------------------
# Request and response
# ------------------------------------------------------------------------------
def _memory(request: HttpRequest, study: Study) -> JourneyMemory:
    return JourneyMemory(request.session, study)


def _answer(request: HttpRequest) -> Answer | None:
    if request.method != "POST":
        return None
    return Answer(
        token=request.POST.get("token", ""),
        choice=request.POST.get("choice", ""),
        client_response_ms=_client_ms(request.POST.get("client_ms")),
    )


def _client_ms(raw: str | None) -> int | None:
    try:
        value = int(float(raw))
    except (TypeError, ValueError):
        return None
    # Negative or absurd (over a day) values are a broken clock, not a response time.
    return value if 0 <= value <= 86_400_000 else None


def _study_or_404(request: HttpRequest, slug: str) -> Study:
    study = selectors.study_by_slug(slug=slug)
    if study is None:
        raise Http404("no such study")
    return study


def _question(study: Study) -> str:
    return QUESTIONS.get(study.question, study.question_text)


def _template(request: HttpRequest, name: str) -> str:
    """The page, or under htmx its partial that replaces the trial's part of the page."""
    return f"annotate/partials/{name}.html" if request.htmx else f"annotate/{name}.html"


def _image_url(study: Study, assignment, slot: str) -> str:
    return reverse("annotate:image", args=[study.slug, selectors.image_key(assignment=assignment, slot=slot)])


def _navigate(request: HttpRequest, url: str) -> HttpResponse:
    """A redirect that also works when the request came from htmx (a full page load)."""
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _go(request: HttpRequest, study: Study, then: Next) -> HttpResponse:
    """On to the page of a step that this page does not show."""
    if then.step is Step.FULL:
        return _full(request, study)
    return _navigate(request, reverse(PAGES[then.step], args=[study.slug]))


def _not_open(request: HttpRequest, study: Study) -> HttpResponse:
    return render(request, "annotate/closed.html", {"study": study})


def _full(request: HttpRequest, study: Study) -> HttpResponse:
    """Every trial has its judgments: a newcomer is told so, and gets no completion code."""
    if request.htmx:
        return HttpResponseClientRedirect(reverse("annotate:entry", args=[study.slug]))
    return render(request, "annotate/closed.html", {"study": study, "full": True})


# ------------------------------------------------------------------------------
# Entry and consent
# ------------------------------------------------------------------------------
@require_GET
@join_limit("entry")
def entry(request: HttpRequest, slug: str) -> HttpResponse:
    """The invite link; Prolific appends PROLIFIC_PID, STUDY_ID and SESSION_ID.

    A signed-in account that a researcher invited judges as itself.
    """
    study = selectors.study_by_slug(slug=slug)
    if study is None:
        return render(request, "annotate/unknown.html", status=404)
    pid = request.GET.get("PROLIFIC_PID", "").strip()[:200]
    browser_token = _browser_token(request) if pid else None
    prolific = None
    if pid:
        prolific = ProlificEntry(
            participant_id=pid,
            study_id=request.GET.get("STUDY_ID", "").strip()[:200],
            session_id=request.GET.get("SESSION_ID", "").strip()[:200],
            browser_key=hashlib.sha256(browser_token.encode()).hexdigest(),
        )
    then = journey_enter(study=study, memory=_memory(request, study), prolific=prolific, user=request.user)
    if then.step is Step.NOT_OPEN:
        return _not_open(request, study)
    if then.step is Step.TAKEN:
        response = render(request, "annotate/taken.html", {"study": study}, status=409)
    elif then.step is Step.FULL:
        response = _full(request, study)
    elif then.step is Step.PRACTICE:
        response = redirect("annotate:practice", slug=study.slug)
    else:
        response = render(request, "annotate/consent.html", {"study": study, "question": _question(study)})
    return _with_browser_cookie(response, browser_token)


def _browser_token(request: HttpRequest) -> str:
    """This browser's random token from its signed cookie, or a new one (set by
    `_with_browser_cookie`). A forged or altered cookie counts as none."""
    token = request.get_signed_cookie(BROWSER_COOKIE, default=None, salt=BROWSER_COOKIE_SALT)
    return token if token and len(token) <= 64 else secrets.token_urlsafe(32)


def _with_browser_cookie(response: HttpResponse, token: str | None) -> HttpResponse:
    if token is not None:
        response.set_signed_cookie(
            BROWSER_COOKIE, token, salt=BROWSER_COOKIE_SALT, max_age=BROWSER_COOKIE_MAX_AGE, httponly=True,
            samesite="Lax", secure=settings.SESSION_COOKIE_SECURE,
        )
    return response


@require_POST
@join_limit("consent")
def consent(request: HttpRequest, slug: str) -> HttpResponse:
    study = _study_or_404(request, slug)
    then = journey_consent(study=study, memory=_memory(request, study))
    return redirect(PAGES[then.step], slug=study.slug)


# ------------------------------------------------------------------------------
# Practice
# ------------------------------------------------------------------------------
@require_http_methods(["GET", "POST"])
@submit_limit("practice", retry_view="annotate:practice")
def practice(request: HttpRequest, slug: str) -> HttpResponse:
    """Practice trials between consent and the study, each answer followed by feedback.

    A GET shows the annotator's current practice trial, or sends them on to the
    trials once practice is over (at once for a study without practice). A POST
    records the answer and shows the feedback, whose button asks for the next one.
    """
    study = _study_or_404(request, slug)
    then = journey_practice(study=study, memory=_memory(request, study), answer=_answer(request))
    if then.step is Step.FEEDBACK:
        return _feedback_page(request, study, then)
    if then.step is not Step.PRACTICE:
        return _go(request, study, then)
    return _practice_page(request, study, then)


def _practice_page(request: HttpRequest, study: Study, then: Next) -> HttpResponse:
    assignment = then.assignment
    message, status = _refusal(then.refused)
    position, total = selectors.practice_position(assignment=assignment)
    context = {
        "study": study,
        "assignment": assignment,
        "caption": assignment.item.caption,
        "question": _question(study),
        "position": position,
        "total": total,
        "left_url": _image_url(study, assignment, Side.LEFT),
        "right_url": _image_url(study, assignment, Side.RIGHT),
        "message": message,
    }
    return render(request, _template(request, "practice"), context, status=status)


def _feedback_page(request: HttpRequest, study: Study, then: Next) -> HttpResponse:
    """Whether the practice answer found the real photograph."""
    assignment, judgment = then.assignment, then.judgment
    position, total = selectors.practice_position(assignment=assignment)
    context = {
        "study": study,
        "caption": assignment.item.caption,
        "position": position,
        "total": total,
        "correct": judgment.choice == assignment.reference_side,
        "reference_side": assignment.reference_side,
        "panels": [
            {
                "side": slot,
                "url": _image_url(study, assignment, slot),
                "real": slot == assignment.reference_side,
                "chosen": slot == judgment.choice,
            }
            for slot in (Side.LEFT, Side.RIGHT)
        ],
        "last": then.last,
    }
    return render(request, _template(request, "feedback"), context)


# ------------------------------------------------------------------------------
# Trials
# ------------------------------------------------------------------------------
@require_http_methods(["GET", "POST"])
@submit_limit("trial")
def trial(request: HttpRequest, slug: str) -> HttpResponse:
    study = _study_or_404(request, slug)
    then = journey_trial(
        study=study,
        memory=_memory(request, study),
        answer=_answer(request),
        # Under htmx the answer's response is the next trial: one transaction for both.
        issue_with_answer=bool(request.htmx),
    )
    if then.step is Step.BREAK:
        context = {"study": study, "judged": then.judged, "quota": study.quota_per_annotator}
        return render(request, _template(request, "break"), context)
    if then.step is not Step.TRIAL or then.assignment is None:
        return _go(request, study, then)
    return _trial_page(request, study, then)


def _trial_page(request: HttpRequest, study: Study, then: Next) -> HttpResponse:
    current = then.assignment
    message, status = _refusal(then.refused)
    context = {
        "study": study,
        "assignment": current,
        "caption": current.item.caption,
        "question": _question(study),
        "judged": then.judged,
        "quota": study.quota_per_annotator,
        "left_url": _image_url(study, current, Side.LEFT),
        "right_url": _image_url(study, current, Side.RIGHT),
        "preload_urls": [_image_url(study, a, slot) for a in then.upcoming for slot in (Side.LEFT, Side.RIGHT)],
        "message": message,
    }
    return render(request, _template(request, "trial"), context, status=status)


# ------------------------------------------------------------------------------
# Images
# ------------------------------------------------------------------------------
@require_GET
def image(request: HttpRequest, slug: str, key: str) -> HttpResponse:
    """One image of a trial, rendered through the study's presentation policy.

    Both slots answer with the same headers and the same number of bytes; only the
    bytes differ, and they differ for every assignment.
    """
    resolved = selectors.image_key_resolve(key=key)
    if resolved is None or resolved[0].study.slug != slug:
        raise Http404("no such image")
    assignment, slot = resolved
    annotator = _memory(request, assignment.study).annotator()
    if annotator is None or annotator.pk != assignment.annotator_id:
        return HttpResponse("This image belongs to another participant's trial.", status=403,
                            content_type="text/plain; charset=utf-8")
    data = image_present(assignment=assignment, slot=slot)
    response = HttpResponse(data, content_type=CONTENT_TYPES[assignment.study.policy.format])
    response["Cache-Control"] = f"private, max-age={IMAGE_MAX_AGE}"
    return response


# ------------------------------------------------------------------------------
# Completion
# ------------------------------------------------------------------------------
@require_GET
def done(request: HttpRequest, slug: str) -> HttpResponse:
    study = _study_or_404(request, slug)
    then = journey_done(study=study, memory=_memory(request, study))
    if then.step is not Step.DONE:
        return redirect("annotate:entry", slug=study.slug)
    prolific_url = ""
    if then.completion_code:
        prolific_url = PROLIFIC_COMPLETE_URL.format(code=quote(then.completion_code, safe=""))
    context = {"study": study, "prolific_url": prolific_url, "redirect_seconds": PROLIFIC_REDIRECT_SECONDS}
    return render(request, "annotate/done.html", context)
