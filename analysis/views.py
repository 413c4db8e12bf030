"""The analysis panel of the researcher's study page: the report's plots and tables, kept live by htmx.

The page polls the panel every `POLL_SECONDS`. The stored report is shown as it is
while a worker builds a newer one or while it is younger than
`settings.PARITY_REPORT_REFRESH_SECONDS`; after that the data are checked
(`selectors.study_fingerprint`), and a stale report is rebuilt during the request
when the study has at most `settings.PARITY_REPORT_INLINE_MAX` judgments, or by a
worker otherwise, while the page shows the last one with its time and a "building"
note. A poll that would show what the page already shows answers 204, which htmx
leaves alone.

Visibility goes through `annotate.selectors.study_for_user`, like the rest of the
study page: a study the user may not see is a 404.
"""

import logging

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from analysis.models import ReportSnapshot
from annotate import selectors as annotate_selectors

log = logging.getLogger(__name__)

POLL_SECONDS = 10


def _recent(snapshot: ReportSnapshot | None) -> bool:
    if snapshot is None or snapshot.built_at is None:
        return False
    return (timezone.now() - snapshot.built_at).total_seconds() < settings.PARITY_REPORT_REFRESH_SECONDS


@login_required
@require_GET
def study_panel(request: HttpRequest, slug: str) -> HttpResponse:
    # Imported here: the analysis brings scipy (tens of MB and a second of import per web
    # worker), which workers serving only annotators never need.
    from analysis import selectors, services

    study = annotate_selectors.study_for_user(user=request.user, slug=slug)
    if study is None:
        raise Http404("no such study")
    snapshot = ReportSnapshot.objects.filter(study=study).first()
    building = snapshot is not None and snapshot.building
    count = None
    # While a worker builds, or a report is fresh, the page shows what there is without
    # counting the judgments (a scan of the study's judgments: a second at a million).
    if not building and not _recent(snapshot):
        fingerprint, count = selectors.study_fingerprint(study=study, extra=services.STORED_OPTIONS.as_dict())
        stale = services.report_snapshot_stale(snapshot=snapshot, fingerprint=fingerprint)
        if stale and count > settings.PARITY_REPORT_INLINE_MAX:
            services.report_snapshot_request(study=study)
            building = True
        elif stale:
            try:
                services.report_snapshot_build(study=study)
            except Exception:  # numerical code on any data: a message (stored by the service), never a traceback
                log.exception("analysis of study %s failed", study.slug)
            snapshot = ReportSnapshot.objects.filter(study=study).first()
    error = snapshot.error if snapshot is not None and not building else ""
    built = snapshot is not None and snapshot.built_at is not None
    shown = f"{snapshot.pk}-{snapshot.built_at.timestamp():.0f}-{int(building)}-{bool(error):d}" if built else ""
    if shown and request.GET.get("shown") == shown:
        return HttpResponse(status=204)
    context = {
        "study": study, "snapshot": snapshot if built else None, "building": building, "error": error,
        "shown": shown, "poll": POLL_SECONDS, "judgments": count,
    }
    return render(request, "analysis/partials/panel.html", context)
