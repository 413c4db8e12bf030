"""A real Celery worker on a real Redis broker, killed with SIGKILL in the middle of a
generation job: the job is found interrupted by the restarted worker, resumed to make
only the missing samples, and a cancel ends a job whose worker is gone.

The heartbeat timeout is two seconds in the workers and in this process; the `slow`
callable (tests/generation/backend_functions.py) makes one sample a batch, 0.3 s
each, and writes down every seed it draws.
"""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from generation import services
from generation.models import Corpus, GenerationJob, Item, Sample
from generation.tasks import generation_job_run_task
from parity.celery import app
from tests.generation import backend_functions
from tests.integration.test_worker import _database_url

pytestmark = pytest.mark.slow

TIMEOUT = 2
ITEMS = 8


@pytest.fixture
def start_worker(redis_url, transactional_db, media_root, tmp_path, settings):
    """Start a worker on the `gpu` queue; every one started is stopped at the end."""
    backend_functions.allow(settings)
    settings.PARITY_JOB_HEARTBEAT_TIMEOUT = TIMEOUT
    env = dict(
        os.environ,
        CELERY_BROKER_URL=redis_url,
        DATABASE_URL=_database_url(),
        MEDIA_ROOT=str(media_root),
        PARITY_VAR_DIR=str(tmp_path / "var"),
        PARITY_JOB_HEARTBEAT_TIMEOUT=str(TIMEOUT),
        PARITY_GENERATION_BACKENDS="builtin,callable",
        PARITY_CALLABLES="slow=tests.generation.backend_functions:slow",
    )
    started = []

    def start() -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "parity", "worker", "--pool", "solo", "-Q", "gpu",
             "--loglevel", "WARNING", "--hostname", f"lost-{os.getpid()}-{len(started)}@%h"],
            env=env,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=20)


@pytest.fixture
def corpus(workspace):
    corpus = Corpus.objects.create(workspace=workspace, name="shapes")
    for index in range(ITEMS):
        Item.objects.create(
            corpus=corpus, key=f"k{index}", caption=f"shape {index}", image=f"originals/k{index}.png",
            sha256="0" * 64, width=8, height=8, format="PNG", mode="RGB", byte_size=100,
        )
    return corpus


def send(job: GenerationJob, redis_url: str) -> None:
    """What the job's commit sends: its task by name, routed to the `gpu` queue, through Redis."""
    with app.connection_for_write(redis_url) as broker:
        app.send_task(generation_job_run_task.name, args=[job.pk], connection=broker)


def wait_for(condition, what: str, seconds: float = 90.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def kill(worker: subprocess.Popen) -> None:
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)


def job_status(job: GenerationJob) -> str:
    """Read as the database holds it: no check for lost workers on the way."""
    return GenerationJob.objects.values_list("status", flat=True).get(pk=job.pk)


def wait_until_silent(job: GenerationJob) -> None:
    """Until its heartbeat is older than the timeout."""
    beat = GenerationJob.objects.values_list("heartbeat_at", flat=True).get(pk=job.pk)
    time.sleep(max(0.0, (beat + timedelta(seconds=TIMEOUT + 0.5) - timezone.now()).total_seconds()))


def drawn(path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def test_a_job_whose_worker_is_killed_is_interrupted_and_resumed_and_a_cancel_ends_the_next(
    start_worker, redis_url, workspace, corpus, tmp_path
):
    log = tmp_path / "drawn.txt"
    generator = services.generator_create(
        workspace=workspace, name="slow", backend="callable", backend_config={"function": "slow", "batch_size": 1},
        settings={"seconds": 0.3, "drawn": str(log)},
    )
    job = services.generation_job_create(generator=generator, corpus=corpus, enqueue=False)
    worker = start_worker()
    send(job, redis_url)
    wait_for(lambda: Sample.objects.filter(job=job).count() >= 2, "two samples")

    kill(worker)
    assert job_status(job) == "running"  # nothing tells a killed worker's job yet

    wait_until_silent(job)
    restarted = start_worker()
    # The restarted worker marks it as it starts (nothing else checks here).
    wait_for(lambda: job_status(job) == "interrupted", "the restarted worker to mark the job interrupted")
    made = set(Sample.objects.filter(job=job).values_list("seed", flat=True))
    assert 2 <= len(made) < ITEMS
    drawn_before = len(drawn(log))

    job = services.generation_job_resume(job=job, enqueue=False)  # enqueued below, through Redis
    assert job.status == "queued"
    send(job, redis_url)
    job = wait_for(
        lambda: GenerationJob.objects.filter(pk=job.pk, status="succeeded").first(), "the resumed job to succeed"
    )

    assert restarted.poll() is None
    every = {services.sample_seed(generator_id=generator.pk, item_key=f"k{i}", index=0) for i in range(ITEMS)}
    assert (job.done, job.skipped, job.failed, job.total) == (ITEMS, 0, 0, ITEMS)
    assert set(Sample.objects.filter(job=job).values_list("seed", flat=True)) == every
    assert Sample.objects.count() == ITEMS
    # The resumed run drew the missing seeds only, each once.
    resumed = drawn(log)[drawn_before:]
    assert sorted(resumed) == sorted(every - made)

    # A second seed per item: a new job, its worker killed too, then cancelled.
    second = services.generation_job_create(generator=generator, corpus=corpus, seeds_per_item=2, enqueue=False)
    send(second, redis_url)
    wait_for(lambda: Sample.objects.filter(job=second).exists(), "a sample of the second job")
    kill(restarted)
    wait_until_silent(second)
    assert job_status(second) == "running"

    second = services.generation_job_cancel(job=second)

    assert (second.status, second.cancel_requested) == ("cancelled", True)
    assert second.finished_at is not None
    assert second.done == Sample.objects.filter(job=second).count() >= 1  # the samples it stored, counted
