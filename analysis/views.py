"""The analysis panel of the researcher's study page: the report's plots and tables, kept live by htmx.

The page polls the panel every `POLL_SECONDS` and shows what `services.report_delivery`
decides, the rule the report API follows too: the stored report as it is while a
worker builds a newer one or while it is younger than
`settings.PARITY_REPORT_REFRESH_SECONDS`; after that the data are checked, and a
stale report is rebuilt during the request for a small study, or by a worker while
the page shows the last one with its time and a "building" note. A poll that would
show what the page already shows answers 204, which htmx leaves alone.

Visibility goes through `annotate.selectors.study_for_user`, like the rest of the
study page: a study the user may not see is a 404.
"""

import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from analysis.models import ReportRecord, ReportSnapshot
from annotate import selectors as annotate_selectors

log = logging.getLogger(__name__)

POLL_SECONDS = 10


@login_required
@require_GET
def study_panel(request: HttpRequest, slug: str) -> HttpResponse:
    # Imported here: the analysis brings scipy (tens of MB and a second of import per web
    # worker), which workers serving only annotators never need.
    from analysis import services

    study = annotate_selectors.study_for_user(user=request.user, slug=slug)
    if study is None:
        raise Http404("no such study")
    try:
        delivery = services.report_delivery(study=study, max_age=settings.PARITY_REPORT_REFRESH_SECONDS)
        snapshot, count = delivery.snapshot, delivery.judgments
        building = delivery.how == services.Delivery.BUILDING
    except Exception:  # numerical code on any data: a message (stored by the service), never a traceback
        log.exception("analysis of study %s failed", study.slug)
        snapshot, count, building = ReportSnapshot.objects.filter(study=study).first(), None, False
    error = snapshot.error if snapshot is not None and not building else ""
    built = snapshot is not None and snapshot.built_at is not None
    shown = f"{snapshot.pk}-{snapshot.built_at.timestamp():.0f}-{int(building)}-{bool(error):d}" if built else ""
    if shown and request.GET.get("shown") == shown:
        return HttpResponse(status=204)
    from analysis import selectors

    context = {
        "study": study, "snapshot": snapshot if built else None, "building": building, "error": error,
        "shown": shown, "poll": POLL_SECONDS, "judgments": count,
        "records": selectors.report_records_for_page(study=study),
        "can_manage": annotate_selectors.study_can_manage(user=request.user, study=study),
    }
    return render(request, "analysis/partials/panel.html", context)


@login_required
@require_POST
def report_freeze(request: HttpRequest, slug: str, record_id: int) -> HttpResponse:
    """Freeze one kept report as final (`services.report_record_freeze`), from the study page."""
    from analysis import services

    study = annotate_selectors.study_for_user(user=request.user, slug=slug)
    if study is None:
        raise Http404("no such study")
    if not annotate_selectors.study_can_manage(user=request.user, study=study):
        raise PermissionDenied("viewers cannot freeze a report")
    record = ReportRecord.objects.filter(study=study, pk=record_id).first()
    if record is None:
        raise Http404("no such report")
    note = request.POST.get("note", "").strip()[:2000]
    services.report_record_freeze(record=record, user=request.user, note=note or None)
    messages.success(request, f"Report {record.pk} is frozen: cite it by its id and hash {record.content_hash[:12]}….")
    return redirect("annotate:study-detail", slug=study.slug)
