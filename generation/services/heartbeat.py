"""Generation jobs whose worker is gone: found by their heartbeat, marked interrupted, resumed.

A run writes its job's `heartbeat_at` when it claims the job and then every sixth of
PARITY_JOB_HEARTBEAT_TIMEOUT from a timer thread (generation_run.py), so a long
batch or a slow backend load does not look dead. A `running` job whose heartbeat is
older than the timeout has lost its worker (killed, its machine gone): nothing
would ever end it, and with the filesystem broker no task is delivered again. Such
a job becomes `interrupted`, or `cancelled` when a cancel was asked of it.

The check runs where a lost job would be seen or acted on: a periodic beat task, a
worker's start, each read of jobs by the API and the generator page, a cancel, a
resume and a claim. It writes only when it finds one: on SQLite an update, even of
no row, would wait for the write lock that a running job's writer holds.

Resuming an interrupted job (`generation_job_resume`) queues it again; its run makes
only the samples still missing (seeds are fixed per generator and item, and existing
samples are skipped).
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from generation.models import GenerationJob, Sample

log = logging.getLogger(__name__)

Status = GenerationJob.Status


def heartbeat_every() -> float:
    """Seconds between a run's heartbeats: several fit in the timeout, so one late write is no loss."""
    return settings.PARITY_JOB_HEARTBEAT_TIMEOUT / 6


def generation_jobs_interrupt_lost(*, jobs: QuerySet[GenerationJob] | None = None) -> int:
    """Mark the running jobs (of `jobs`, else all) whose heartbeat is too old; return how many.

    A job whose cancel was asked ends `cancelled`: its worker cannot stop it any more.
    The others become `interrupted`, to be resumed.
    """
    cutoff = timezone.now() - timedelta(seconds=settings.PARITY_JOB_HEARTBEAT_TIMEOUT)
    # A job claimed before heartbeats existed has none: its start stands in for it.
    silent = (
        Q(heartbeat_at__lt=cutoff)
        | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
        | Q(heartbeat_at__isnull=True, started_at__isnull=True, created_at__lt=cutoff)
    )
    lost = (GenerationJob.objects.all() if jobs is None else jobs).filter(silent, status=Status.RUNNING)
    found = list(lost.values_list("pk", flat=True))
    if not found:
        return 0
    # The same conditions again on update: a heartbeat written meanwhile keeps its job running.
    lost = GenerationJob.objects.filter(silent, pk__in=found, status=Status.RUNNING)
    # The worker wrote its counters every half second at best: `done` is what it stored.
    made = Coalesce(
        Subquery(Sample.objects.filter(job=OuterRef("pk")).values("job").annotate(n=Count("pk")).values("n")),
        Value(0),
    )
    cancelled = lost.filter(cancel_requested=True).update(
        status=Status.CANCELLED, finished_at=timezone.now(), done=made
    )
    interrupted = lost.filter(cancel_requested=False).update(status=Status.INTERRUPTED, done=made)
    if cancelled or interrupted:
        log.warning(
            "generation jobs %s: no heartbeat for %s s, their worker is gone (%d interrupted, %d cancelled)",
            found, settings.PARITY_JOB_HEARTBEAT_TIMEOUT, interrupted, cancelled,
        )
    return cancelled + interrupted
