"""Generation jobs: queued, cancelled and resumed; a worker runs them (generation_run.py)."""

from django.utils import timezone

from generation import selectors
from generation.errors import NotCancellable, NotResumable
from generation.models import Corpus, GenerationJob, Generator
from generation.services.enqueue import GENERATION_JOB_RUN_TASK, enqueue_on_commit
from generation.services.heartbeat import generation_jobs_interrupt_lost
from workspaces.errors import ParityError

Status = GenerationJob.Status

# A generator whose samples are uploaded has no backend to run.
UPLOAD_BACKEND = "upload"
# `GenerationJob.total` is a PositiveIntegerField: the largest value every database stores.
MAX_JOB_SAMPLES = 2**31 - 1


def generation_job_create(
    *,
    generator: Generator,
    corpus: Corpus,
    item_keys: list[str] | None = None,
    seeds_per_item: int = 1,
    enqueue: bool = True,
) -> GenerationJob:
    """Queue a run of `generator`'s backend over `corpus`'s items: those of `item_keys`, or every item.

    `total` is the samples the job is to make, items × `seeds_per_item`, counted now.
    The job is sent to the `gpu` queue once the transaction commits; `enqueue=False`
    leaves it for the caller to run (the `generate` command runs it in-process).
    """
    keys = list(item_keys or [])
    if generator.backend == UPLOAD_BACKEND:
        raise ParityError(f"generator {generator.name!r} has no backend to run: its samples are uploaded")
    if corpus.workspace_id != generator.workspace_id:
        raise ParityError(f"corpus {corpus.name!r} belongs to another workspace than generator {generator.name!r}")
    if seeds_per_item < 1:
        raise ParityError("a job makes at least one seed per item")
    if len(set(keys)) != len(keys):
        raise ParityError("an item key is listed twice")
    if keys and (missing := selectors.item_keys_missing(corpus=corpus, keys=keys)):
        raise ParityError(f"corpus {corpus.name!r} has no item with key {missing[0]!r}")
    items = len(keys) if keys else corpus.items.count()
    if items == 0:
        raise ParityError(f"corpus {corpus.name!r} has no items")
    total = items * seeds_per_item
    if total > MAX_JOB_SAMPLES:
        raise ParityError(f"a job makes at most {MAX_JOB_SAMPLES:,} samples; this one would make {total:,}")
    job = GenerationJob.objects.create(
        generator=generator, corpus=corpus, item_keys=keys, seeds_per_item=seeds_per_item, total=total
    )
    if enqueue:
        enqueue_on_commit(GENERATION_JOB_RUN_TASK, job.pk)
    return job


def generation_job_cancel(*, job: GenerationJob) -> GenerationJob:
    """Cancel a queued or interrupted job at once; ask a running one to stop, which its worker
    does between batches.

    A running job whose worker is gone (heartbeat.py) is cancelled at once, and
    one whose worker goes silent after the request ends cancelled when the loss is seen.
    A job that has ended cannot be cancelled (`NotCancellable`); asking twice is harmless.
    """
    jobs = GenerationJob.objects.filter(pk=job.pk)
    generation_jobs_interrupt_lost(jobs=jobs)
    cancelled = jobs.filter(status__in=[Status.QUEUED, Status.INTERRUPTED]).update(
        status=Status.CANCELLED, cancel_requested=True, finished_at=timezone.now()
    )
    if not cancelled and not jobs.filter(status=Status.RUNNING).update(cancel_requested=True):
        job.refresh_from_db()
        raise NotCancellable(f"generation job {job.pk} has ended ({job.status}); there is nothing to cancel")
    job.refresh_from_db()
    return job


def generation_job_resume(*, job: GenerationJob, enqueue: bool = True) -> GenerationJob:
    """Queue an interrupted job again; its run makes only the samples still missing.

    The job is sent to the `gpu` queue once the transaction commits; `enqueue=False`
    leaves it for the caller to run (the `generate` command runs it in-process). A job
    that is not interrupted (`NotResumable`) says what it is instead.
    """
    jobs = GenerationJob.objects.filter(pk=job.pk)
    generation_jobs_interrupt_lost(jobs=jobs)
    if not jobs.filter(status=Status.INTERRUPTED).update(status=Status.QUEUED, heartbeat_at=None):
        job.refresh_from_db()
        state = {
            Status.QUEUED: "is queued: a worker will run it",
            Status.RUNNING: "is running: its worker writes its heartbeat",
        }.get(job.status, f"has ended ({job.status}); a new job makes only the samples that are missing")
        raise NotResumable(f"generation job {job.pk} {state}")
    if enqueue:
        enqueue_on_commit(GENERATION_JOB_RUN_TASK, job.pk)
    job.refresh_from_db()
    return job
