"""The annotator's pages: invite or Prolific entry, consent, practice, trials (htmx), images, completion.

Views stay thin: they read the session, call one service of the assignment engine
and render. Every error of the annotate domain carries the friendly message the page shows.
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
from annotate.errors import (
    AnnotateError,
    AssignmentUnknown,
    ParticipationTaken,
    QuotaReached,
    StudyClosed,
)
from annotate.models import Annotator, Side, Study
from annotate.ratelimits import join_limit, submit_limit
from annotate.services import (
    assignments_next,
    image_present,
    judgment_record,
    judgment_record_and_next,
    participation_consent,
    participation_enter,
    participation_finish,
    practice_finish,
    practice_next,
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

def error_message(exc: ParityError) -> tuple[str, int]:
    """What the page says of `exc`, and its status: each annotate error carries its own."""
    shown = exc if isinstance(exc, AnnotateError) else AnnotateError
    return shown.annotator_message, shown.annotator_status


# ------------------------------------------------------------------------------
# Session
# ------------------------------------------------------------------------------
def _key(study: Study, name: str) -> str:
    return f"annotate:{study.pk}:{name}"


def _session_annotator(request: HttpRequest, study: Study) -> Annotator | None:
    annotator_id = request.session.get(_key(study, "annotator"))
    return Annotator.objects.filter(pk=annotator_id).first() if annotator_id else None


def _study_or_404(request: HttpRequest, slug: str) -> Study:
    study = selectors.study_by_slug(slug=slug)
    if study is None:
        raise Http404("no such study")
    return study


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
    if study.status != Study.Status.OPEN:
        return _not_open(request, study)
    pid = request.GET.get("PROLIFIC_PID", "").strip()[:200]
    # A Prolific link wins over an invited account: Prolific pays by its own id.
    invited = None if pid else selectors.invited_annotator(study=study, user=request.user)
    browser_token = None
    if pid:
        annotator, _ = Annotator.objects.get_or_create(source=Annotator.Source.PROLIFIC, external_id=pid)
        browser_token = _browser_token(request)
        if request.session.session_key is None:
            request.session.save()  # its key is what a release ends
        try:
            participation_enter(
                study=study,
                annotator=annotator,
                prolific_study_id=request.GET.get("STUDY_ID", "").strip()[:200],
                prolific_session_id=request.GET.get("SESSION_ID", "").strip()[:200],
                browser_key=hashlib.sha256(browser_token.encode()).hexdigest(),
                session_key=request.session.session_key,
            )
        except ParticipationTaken:
            response = render(request, "annotate/taken.html", {"study": study}, status=409)
            return _with_browser_cookie(response, browser_token)
        if request.session.get(_key(study, "annotator")) != annotator.pk:
            request.session[_key(study, "consented")] = False
        request.session[_key(study, "annotator")] = annotator.pk
    elif invited is not None:
        annotator = invited
        if request.session.get(_key(study, "annotator")) != annotator.pk:
            request.session[_key(study, "consented")] = False
        request.session[_key(study, "annotator")] = annotator.pk
    else:
        annotator = _session_annotator(request, study)
        if annotator is None:
            annotator = Annotator.objects.create(source=Annotator.Source.INVITE)
            request.session[_key(study, "annotator")] = annotator.pk
        participation_enter(study=study, annotator=annotator)
    if selectors.study_full_for(study=study, annotator=annotator):
        response = _full(request, study)
    elif _consented(request, study, annotator):
        response = redirect("annotate:practice", slug=study.slug)
    else:
        question = QUESTIONS.get(study.question, study.question_text)
        response = render(request, "annotate/consent.html", {"study": study, "question": question})
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
    annotator = _session_annotator(request, study)
    if annotator is None:
        return redirect("annotate:entry", slug=study.slug)
    participation_consent(study=study, annotator=annotator)
    request.session[_key(study, "consented")] = True
    return redirect("annotate:practice", slug=study.slug)


def _consented(request: HttpRequest, study: Study, annotator: Annotator) -> bool:
    """Consent from the session's cache, else from the database (another browser's consent)."""
    if request.session.get(_key(study, "consented")):
        return True
    if selectors.annotator_has_consented(study=study, annotator=annotator):
        request.session[_key(study, "consented")] = True
        return True
    return False


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
    annotator = _session_annotator(request, study)
    if annotator is None or not _consented(request, study, annotator):
        return _navigate(request, reverse("annotate:entry", args=[study.slug]))
    if _practiced_in_session(request, study, annotator):
        return _navigate(request, reverse("annotate:trial", args=[study.slug]))
    message, status = "", 200
    if request.method == "POST":
        try:
            return _practice_feedback(request, study, annotator)
        except ParityError as exc:
            message, status = error_message(exc)
        except ValueError:
            message, status = "Please choose the left or the right image.", 400
    try:
        assignment = practice_next(study=study, annotator=annotator)
    except StudyClosed:
        return _navigate(request, reverse("annotate:entry", args=[study.slug]))
    if assignment is None:
        _practice_over(request, study, annotator)
        return _navigate(request, reverse("annotate:trial", args=[study.slug]))
    position, total = selectors.practice_position(assignment=assignment)
    context = {
        "study": study,
        "assignment": assignment,
        "caption": assignment.item.caption,
        "question": QUESTIONS.get(study.question, study.question_text),
        "position": position,
        "total": total,
        "left_url": _image_url(study, assignment, Side.LEFT),
        "right_url": _image_url(study, assignment, Side.RIGHT),
        "message": message,
    }
    template = "annotate/partials/practice.html" if request.htmx else "annotate/practice.html"
    return render(request, template, context, status=status)


def _practice_feedback(request: HttpRequest, study: Study, annotator: Annotator) -> HttpResponse:
    """Record a practice answer and say whether it found the real photograph."""
    assignment = selectors.practice_assignment(study=study, token=request.POST.get("token", ""))
    if assignment is None:
        # Feedback reveals the sides, so only a practice assignment may get it.
        raise AssignmentUnknown("no practice assignment of this study has this token")
    judgment = judgment_record(
        assignment_token=assignment.token,
        annotator=annotator,
        choice=request.POST.get("choice", ""),
        client_response_ms=_client_ms(request.POST.get("client_ms")),
    )
    last = selectors.practice_remaining(study=study, annotator=annotator) == 0
    if last:
        _practice_over(request, study, annotator)
    position, total = selectors.practice_position(assignment=assignment)
    context = {
        "study": study,
        "caption": assignment.item.caption,
        "position": position,
        "total": total,
        # A repeated submit gets the first answer's feedback: the judgment is the first one.
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
        "last": last,
    }
    template = "annotate/partials/feedback.html" if request.htmx else "annotate/feedback.html"
    return render(request, template, context)


def _practice_over(request: HttpRequest, study: Study, annotator: Annotator) -> None:
    practice_finish(study=study, annotator=annotator)
    request.session[_key(study, "practiced")] = annotator.pk


def _practiced_in_session(request: HttpRequest, study: Study, annotator: Annotator) -> bool:
    # Keyed to the annotator, so that another Prolific id entering this browser does
    # not inherit the practice of the one before.
    return request.session.get(_key(study, "practiced")) == annotator.pk


def _practice_pending(request: HttpRequest, study: Study, annotator: Annotator) -> bool:
    """Practice before the trials, from the database until "done" is cached in the session."""
    if _practiced_in_session(request, study, annotator):
        return False
    if selectors.practice_pending(study=study, annotator=annotator):
        return True
    request.session[_key(study, "practiced")] = annotator.pk
    return False


# ------------------------------------------------------------------------------
# Trials
# ------------------------------------------------------------------------------
@require_http_methods(["GET", "POST"])
@submit_limit("trial")
def trial(request: HttpRequest, slug: str) -> HttpResponse:
    study = _study_or_404(request, slug)
    annotator_id = request.session.get(_key(study, "annotator"))
    # The engine needs only the annotator's key: no row is read for it.
    annotator = Annotator(pk=annotator_id) if annotator_id else None
    if annotator is None or not _consented(request, study, annotator):
        return _navigate(request, reverse("annotate:entry", args=[study.slug]))
    if _practice_pending(request, study, annotator):
        return _navigate(request, reverse("annotate:practice", args=[study.slug]))
    message, status = "", 200
    judged = issued = None
    if request.method == "POST":
        submitted = {
            "assignment_token": request.POST.get("token", ""),
            "annotator": annotator,
            "choice": request.POST.get("choice", ""),
            "client_response_ms": _client_ms(request.POST.get("client_ms")),
        }
        try:
            if request.htmx:
                # The answer carries the next trial: one transaction for both.
                judgment, issued = judgment_record_and_next(study=study, **submitted)
            else:
                judgment = judgment_record(**submitted)
        except ParityError as exc:
            message, status = error_message(exc)
        except ValueError:
            message, status = "Please choose the left or the right image.", 400
        if not message:
            judged = judgment.annotator_judged
            if judged is None:  # a practice trial's token posted here
                judged = selectors.annotator_judged_count(study=study, annotator=annotator)
            if selectors.break_due(study=study, judged=judged):
                # The next assignment is issued only on Continue, so a break does not
                # run down its timeout.
                context = {"study": study, "judged": judged, "quota": study.quota_per_annotator}
                template = "annotate/partials/break.html" if request.htmx else "annotate/break.html"
                return render(request, template, context)
            if not request.htmx:
                return redirect("annotate:trial", slug=study.slug)
    if judged is None:
        judged = selectors.annotator_judged_count(study=study, annotator=annotator)
    # One ahead, so that the page can preload the next trial's images; none when a
    # break comes next, so that no assignment's timeout runs during the break.
    ahead = 0 if selectors.break_due(study=study, judged=judged + 1) else 1
    try:
        if issued is None:
            issued = assignments_next(study=study, annotator=annotator, ahead=ahead)
        current, *upcoming = issued or [None]
    except StudyClosed:
        return _navigate(request, reverse("annotate:entry", args=[study.slug]))
    except QuotaReached:
        current, upcoming = None, []
    if current is None and judged == 0 and selectors.study_full_for(study=study, annotator=annotator):
        return _full(request, study)
    if current is None:
        participation_finish(study=study, annotator=annotator)
        request.session[_key(study, "finished")] = True
        return _navigate(request, reverse("annotate:done", args=[study.slug]))
    context = {
        "study": study,
        "assignment": current,
        "caption": current.item.caption,
        "question": QUESTIONS.get(study.question, study.question_text),
        "judged": judged,
        "quota": study.quota_per_annotator,
        "left_url": _image_url(study, current, Side.LEFT),
        "right_url": _image_url(study, current, Side.RIGHT),
        "preload_urls": [_image_url(study, a, slot) for a in upcoming for slot in (Side.LEFT, Side.RIGHT)],
        "message": message,
    }
    template = "annotate/partials/trial.html" if request.htmx else "annotate/trial.html"
    return render(request, template, context, status=status)


def _navigate(request: HttpRequest, url: str) -> HttpResponse:
    """A redirect that also works when the request came from htmx (a full page load)."""
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _client_ms(raw: str | None) -> int | None:
    try:
        value = int(float(raw))
    except (TypeError, ValueError):
        return None
    # Negative or absurd (over a day) values are a broken clock, not a response time.
    return value if 0 <= value <= 86_400_000 else None


def _image_url(study: Study, assignment, slot: str) -> str:
    return reverse("annotate:image", args=[study.slug, selectors.image_key(assignment=assignment, slot=slot)])


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
    annotator = _session_annotator(request, assignment.study)
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
    annotator = _session_annotator(request, study)
    if annotator is None or not request.session.get(_key(study, "finished")):
        return redirect("annotate:entry", slug=study.slug)
    prolific_url = ""
    if annotator.source == Annotator.Source.PROLIFIC and study.completion_code:
        prolific_url = PROLIFIC_COMPLETE_URL.format(code=quote(study.completion_code, safe=""))
    context = {"study": study, "prolific_url": prolific_url, "redirect_seconds": PROLIFIC_REDIRECT_SECONDS}
    return render(request, "annotate/done.html", context)
