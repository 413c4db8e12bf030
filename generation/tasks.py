"""Celery tasks of the generation domain: each takes ids, calls one service, owns retries."""

import logging

from celery import shared_task

from generation import generate, jobs
from generation.errors import ParityError
from generation.models import Workspace
from generation.services import corpus_import

log = logging.getLogger(__name__)


@shared_task(acks_late=True)
def corpus_import_task(workspace_id: int, name: str, source: str, skip_bad: bool = False) -> dict:
    """Import a corpus from files the worker can read (an upload already on shared storage)."""
    workspace = Workspace.objects.get(pk=workspace_id)
    try:
        corpus, result = corpus_import(workspace=workspace, name=name, source=source, skip_bad=skip_bad)
    except ParityError as exc:
        # A refused import is an answer, not a crash: retrying would refuse it again.
        log.warning("corpus import %r refused: %s", name, exc)
        return {"status": "refused", "error": str(exc)}
    return {
        "status": "imported",
        "corpus": corpus.pk,
        "created": result.created,
        "rejected": [rejection.as_dict() for rejection in result.rejected],
    }


@shared_task(acks_late=True)
def import_job_task(job_id: int) -> str:
    """Run an uploaded bundle's import job; a refused import is the job's answer, not a retry."""
    return jobs.import_job_run(job_id=job_id).status


# Acks late and requeued when its worker dies: a killed run is delivered again and
# resumes the job, skipping the samples already made (see generation/generate.py).
# Routed to the `gpu` queue by CELERY_TASK_ROUTES.
@shared_task(acks_late=True, reject_on_worker_lost=True)
def generation_job_run(job_id: int) -> str:
    """Run or resume a generation job; its failures are the job's answer, not a retry."""
    return generate.generation_job_run(job_id=job_id).status
