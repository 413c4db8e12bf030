"""Celery tasks of the generation domain: each takes ids, calls one service, owns retries."""

import logging

from celery import shared_task
from celery.signals import worker_ready
from django.db import DatabaseError, connection

from generation import services

log = logging.getLogger(__name__)


@shared_task(acks_late=True)
def import_job_task(job_id: int) -> str:
    """Run an uploaded bundle's import job; a refused import is the job's answer, not a retry."""
    return services.import_job_run(job_id=job_id).status


# Acks late and requeued when its worker dies: a killed run is delivered again and
# resumes the job, skipping the samples already made (see generation/services/generation_run.py);
# where it is not (the filesystem broker), the job is found interrupted by its
# heartbeat and resumed from the page, the API or the CLI.
# Routed to the `gpu` queue by CELERY_TASK_ROUTES.
@shared_task(acks_late=True, reject_on_worker_lost=True)
def generation_job_run_task(job_id: int) -> str:
    """Run or resume a generation job; its failures are the job's answer, not a retry."""
    return services.generation_job_run(job_id=job_id).status


@shared_task
def generation_jobs_interrupt_lost_task() -> int:
    """Periodic (CELERY_BEAT_SCHEDULE): mark interrupted the running jobs whose worker is gone."""
    return services.generation_jobs_interrupt_lost()


@worker_ready.connect
def _interrupt_lost_jobs_on_start(**kwargs) -> None:
    """A restarted worker's killed predecessor left its jobs running: mark those already silent."""
    try:
        services.generation_jobs_interrupt_lost()
    except DatabaseError:  # a worker must start even when the database is not migrated yet
        log.warning("lost generation jobs not checked at the worker's start", exc_info=True)
    finally:
        connection.close()  # the main thread's: tasks run on connections of their own
