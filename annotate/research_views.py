"""The researcher's study page, under /studies/<slug>/: status, open/close, links, progress,
invited accounts.

Visibility goes through `selectors.study_for_user`: a study the user may not see is a
404, exactly like a study that does not exist. Opening, closing and inviting also
need `selectors.study_can_manage` (viewers only look). Errors of the domain become a
message on the page, never a traceback.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from annotate import selectors
from annotate.errors import InviteRefused, ParticipantUnknown
from annotate.forms import GeneratorsForm, HeadToHeadForm, InviteForm, ReleaseForm, RemoveGeneratorForm
from annotate.models import Study
from annotate.services import (
    participation_invite,
    participation_release,
    study_add_generators,
    study_close,
    study_open,
    study_remove_generators,
    study_update,
)
from workspaces.errors import ParityError

ACTIONS = {"open": study_open, "close": study_close}


def _visible_study(request: HttpRequest, slug: str) -> Study:
    study = selectors.study_for_user(user=request.user, slug=slug)
    if study is None:
        raise Http404("no such study")
    return study


@login_required
@require_GET
def study_detail(request: HttpRequest, slug: str) -> HttpResponse:
    return _study_page(request, _visible_study(request, slug))


def _study_page(request: HttpRequest, study: Study, invite_form: InviteForm | None = None,
                release_form: ReleaseForm | None = None, generators_form: GeneratorsForm | None = None,
                head_to_head_form: HeadToHeadForm | None = None, status: int = 200) -> HttpResponse:
    context = {
        "generators": study.generators.order_by("name"),
        "generators_form": generators_form or GeneratorsForm(study=study),
        "head_to_head_form": head_to_head_form or HeadToHeadForm(study=study),
        "study": study,
        "can_manage": selectors.study_can_manage(user=request.user, study=study),
        **selectors.study_links(study=study, absolute=request.build_absolute_uri),
        "progress": selectors.study_progress(study=study),
        "invite_form": invite_form or InviteForm(),
        "release_form": release_form or ReleaseForm(),
        "invited": selectors.study_invited_accounts(study=study),
    }
    return render(request, "annotate/research/study.html", context, status=status)


@login_required
@require_GET
def study_progress(request: HttpRequest, slug: str) -> HttpResponse:
    study = _visible_study(request, slug)
    context = {"study": study, "progress": selectors.study_progress(study=study)}
    return render(request, "annotate/research/partials/progress.html", context)


@login_required
@require_POST
def study_action(request: HttpRequest, slug: str, action: str) -> HttpResponse:
    study = _visible_study(request, slug)
    if action not in ACTIONS:
        raise Http404("no such action")
    if not selectors.study_can_manage(user=request.user, study=study):
        raise PermissionDenied("viewers cannot open or close a study")
    try:
        ACTIONS[action](study=study)
    except ParityError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Study {study.name} is now {study.get_status_display().lower()}.")
    return redirect("annotate:study-detail", slug=study.slug)


@login_required
@require_POST
def study_invite(request: HttpRequest, slug: str) -> HttpResponse:
    """Invite named accounts; a name that is not found invites nobody and is shown in the form."""
    study = _visible_study(request, slug)
    if not selectors.study_can_manage(user=request.user, study=study):
        raise PermissionDenied("viewers cannot invite")
    form = InviteForm(request.POST)
    if form.is_valid():
        try:
            invited = participation_invite(study=study, names=form.cleaned_data["names"])
        except InviteRefused as exc:
            form.add_error("names", str(exc))
        else:
            count = len(invited)
            messages.success(request, f"Invited {count} account{'' if count == 1 else 's'} to {study.name}.")
            return redirect("annotate:study-detail", slug=study.slug)
    return _study_page(request, study, invite_form=form, status=400)


@login_required
@require_POST
def study_release(request: HttpRequest, slug: str) -> HttpResponse:
    """Unbind a Prolific participant from their browser, so they can go on in another."""
    study = _visible_study(request, slug)
    if not selectors.study_can_manage(user=request.user, study=study):
        raise PermissionDenied("viewers cannot release participants")
    form = ReleaseForm(request.POST)
    if form.is_valid():
        prolific_id = form.cleaned_data["prolific_id"]
        try:
            participation_release(study=study, external_id=prolific_id)
        except ParticipantUnknown as exc:
            form.add_error("prolific_id", str(exc))
        else:
            messages.success(request, f"Released {prolific_id}: the next browser that opens the link with this "
                                      "ID continues their participation.")
            return redirect("annotate:study-detail", slug=study.slug)
    return _study_page(request, study, release_form=form, status=400)


@login_required
@require_POST
def study_generators(request: HttpRequest, slug: str) -> HttpResponse:
    """Add generators of the workspace to a draft or open study (`services.study_add_generators`)."""
    study = _visible_study(request, slug)
    if not selectors.study_can_manage(user=request.user, study=study):
        raise PermissionDenied("viewers cannot change a study's generators")
    form = GeneratorsForm(request.POST, study=study)
    if form.is_valid():
        try:
            study, created = study_add_generators(study=study, generators=form.cleaned_data["generators"])
        except ParityError as exc:
            form.add_error("generators", str(exc))
        else:
            names = ", ".join(g.name for g in form.cleaned_data["generators"])
            messages.success(request, f"Added {names}: {created} new trials, served first until they catch up.")
            return redirect("annotate:study-detail", slug=study.slug)
    return _study_page(request, study, generators_form=form, status=400)


@login_required
@require_POST
def study_generator_remove(request: HttpRequest, slug: str) -> HttpResponse:
    """Stop serving one generator of the study; its trials and judgments stay."""
    study = _visible_study(request, slug)
    if not selectors.study_can_manage(user=request.user, study=study):
        raise PermissionDenied("viewers cannot change a study's generators")
    form = RemoveGeneratorForm(request.POST)
    generator = None
    if form.is_valid():
        generator = study.generators.filter(pk=form.cleaned_data["generator"]).first()
    if generator is None:
        raise Http404("no such generator in this study")
    try:
        study_remove_generators(study=study, generators=[generator])
    except ParityError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Removed {generator.name}: its trials are no longer served; "
                                  "its judgments stay in the report.")
    return redirect("annotate:study-detail", slug=study.slug)


@login_required
@require_POST
def study_head_to_head(request: HttpRequest, slug: str) -> HttpResponse:
    """Change the study's head-to-head and anchor settings; on built trials, build what they now need."""
    study = _visible_study(request, slug)
    if not selectors.study_can_manage(user=request.user, study=study):
        raise PermissionDenied("viewers cannot change a study's settings")
    form = HeadToHeadForm(request.POST, study=study)
    if form.is_valid():
        try:
            study_update(study=study, **form.cleaned_data)
        except ParityError as exc:
            form.add_error(getattr(exc, "field", None) if getattr(exc, "field", None) in form.fields else None,
                           str(exc))
        else:
            messages.success(request, "Head-to-head and anchor settings saved.")
            return redirect("annotate:study-detail", slug=study.slug)
    return _study_page(request, study, head_to_head_form=form, status=400)
