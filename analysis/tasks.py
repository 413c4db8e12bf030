"""Celery tasks of the analysis: each takes ids, calls one service, owns retries.

An analysis that fails fails the same way again, so none is retried: the error is
logged and, for a report, stored where the study page shows it.
"""

import logging

from celery import shared_task

from analysis import services
from annotate.models import Study

log = logging.getLogger(__name__)


@shared_task(acks_late=True)
def report_snapshot_task(study_id: int) -> str:
    """Build and store a study's report (the study page's panel and the API downloads)."""
    study = Study.objects.select_related("workspace", "corpus").filter(pk=study_id).first()
    if study is None:
        return "gone"
    try:
        services.report_snapshot_build(study=study)
    except Exception:
        # Recorded on the snapshot by the service, and shown on the study page.
        log.exception("report of study %s failed", study.slug)
        return "failed"
    return "built"


@shared_task(acks_late=True)
def study_plan_update_task(study_id: int) -> list[int] | None:
    """Write the generators done of one study with a target half-width, and the uncertain pairs it serves."""
    study = Study.objects.filter(pk=study_id).first()
    return None if study is None else services.study_plan_update(study=study)


@shared_task
def plan_update_open_studies_task() -> int:
    """Run by beat (settings.CELERY_BEAT_SCHEDULE): one plan update per open study with a target or
    serving the uncertain head-to-head pairs."""
    return services.study_plan_update_request_open()
