"""A generation job whose worker is gone: its heartbeat, interrupted, resumed, cancelled.

A run writes its heartbeat from a timer thread; here PARITY_JOB_HEARTBEAT_TIMEOUT is
one second, and the `slow` function's batches last longer than that. The real worker
killed with SIGKILL is in tests/integration/test_lost_worker.py. Jobs write from a
thread of their own, so these tests commit.
"""

import io
import threading
import time
from datetime import timedelta

import pytest
from celery.signals import worker_ready
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.utils import timezone

from generation import services
from generation.models import Corpus, GenerationJob, Item, Sample
from generation.tasks import generation_jobs_interrupt_lost_task
from parity.celery import app
from tests.generation import backend_functions

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("callables", "no_interruption")]


@pytest.fixture
def corpus(workspace):
    corpus = Corpus.objects.create(workspace=workspace, name="shapes")
    for index in range(4):
        Item.objects.create(
            corpus=corpus, key=f"k{index}", caption=f"shape {index}", image=f"originals/k{index}.png",
            sha256="0" * 64, width=8, height=8, format="PNG", mode="RGB", byte_size=100,
        )
    return corpus


def make_generator(workspace, function="slow", **settings):
    return services.generator_create(
        workspace=workspace, name="fn", backend="callable", backend_config={"function": function}, settings=settings,
    )


def silent_for(job: GenerationJob, seconds: float) -> None:
    GenerationJob.objects.filter(pk=job.pk).update(
        status="running", heartbeat_at=timezone.now() - timedelta(seconds=seconds)
    )


@pytest.fixture
def in_a_thread():
    """Run a job on a thread, as a worker would; it is waited for, even when the test fails."""
    threads = []

    def start(job: GenerationJob) -> tuple[threading.Thread, list]:
        ended = []  # the job as its run ends

        def target():
            try:
                ended.append(services.generation_job_run(job_id=job.pk, batch_size=1, workers=1))
            finally:
                connections.close_all()

        threads.append(threading.Thread(target=target))
        threads[-1].start()
        return threads[-1], ended

    yield start
    for thread in threads:
        thread.join(timeout=30)


def status(job: GenerationJob) -> str:
    return GenerationJob.objects.values_list("status", flat=True).get(pk=job.pk)


def wait_for(condition, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# ------------------------------------------------------------------------------
# The heartbeat of a run
# ------------------------------------------------------------------------------


def test_a_batch_longer_than_the_timeout_keeps_its_job_running(workspace, corpus, settings, in_a_thread):
    settings.PARITY_JOB_HEARTBEAT_TIMEOUT = 1
    job = services.generation_job_create(
        generator=make_generator(workspace, seconds=1.6), corpus=corpus, item_keys=["k0", "k1"], enqueue=False
    )
    thread, ended = in_a_thread(job)
    wait_for(lambda: status(job) == "running")
    started = timezone.now()

    time.sleep(1.3)  # past the timeout, inside the first batch
    assert services.generation_jobs_interrupt_lost() == 0
    job.refresh_from_db()
    assert job.status == "running" and job.heartbeat_at > started

    thread.join(timeout=30)
    assert (ended[0].status, ended[0].done) == ("succeeded", 2)


def test_a_run_taken_for_lost_is_running_again_at_its_next_heartbeat(workspace, corpus, settings, in_a_thread):
    settings.PARITY_JOB_HEARTBEAT_TIMEOUT = 1
    job = services.generation_job_create(
        generator=make_generator(workspace, seconds=0.8), corpus=corpus, enqueue=False
    )
    thread, ended = in_a_thread(job)
    wait_for(lambda: status(job) == "running")
    GenerationJob.objects.filter(pk=job.pk).update(status="interrupted")  # as a heartbeat too late would

    wait_for(lambda: status(job) == "running", seconds=1.5)  # long before its four batches are over
    thread.join(timeout=30)
    assert (ended[0].status, ended[0].done) == ("succeeded", 4)


def test_a_job_is_claimed_once_queued_or_interrupted_never_while_its_worker_beats(workspace, corpus, settings):
    settings.PARITY_JOB_HEARTBEAT_TIMEOUT = 30
    job = services.generation_job_create(
        generator=make_generator(workspace, seconds=0), corpus=corpus, enqueue=False
    )
    silent_for(job, 5)
    assert services.generation_job_run(job_id=job.pk).status == "running"
    assert not Sample.objects.exists()

    silent_for(job, 31)
    job = services.generation_job_run(job_id=job.pk)
    assert (job.status, job.done) == ("succeeded", 4)


# ------------------------------------------------------------------------------
# Found lost: by the beat task, at a worker's start, on a read
# ------------------------------------------------------------------------------


def test_running_jobs_silent_past_the_timeout_are_interrupted_or_cancelled(workspace, corpus, settings):
    settings.PARITY_JOB_HEARTBEAT_TIMEOUT = 30
    generator = make_generator(workspace)
    jobs = [services.generation_job_create(generator=generator, corpus=corpus, enqueue=False) for _ in range(4)]
    silent_for(jobs[0], 31)
    # Its worker stored a sample after it last wrote its counters.
    Sample.objects.create(
        generator=jobs[0].generator, item=corpus.items.get(key="k0"), seed=1, job=jobs[0], image="originals/s.png",
        sha256="1" * 64, width=8, height=8, format="PNG", mode="RGB", byte_size=100,
    )
    silent_for(jobs[1], 31)
    GenerationJob.objects.filter(pk=jobs[1].pk).update(cancel_requested=True)
    silent_for(jobs[2], 29)
    # Claimed before heartbeats existed: its start stands in for its heartbeat.
    GenerationJob.objects.filter(pk=jobs[3].pk).update(
        status="running", heartbeat_at=None, started_at=timezone.now() - timedelta(minutes=5)
    )

    assert generation_jobs_interrupt_lost_task() == 3

    assert [status(job) for job in jobs] == ["interrupted", "cancelled", "running", "interrupted"]
    assert GenerationJob.objects.get(pk=jobs[1].pk).finished_at is not None
    assert GenerationJob.objects.get(pk=jobs[0].pk).finished_at is None
    assert [GenerationJob.objects.get(pk=job.pk).done for job in jobs] == [1, 0, 0, 0]
    assert generation_jobs_interrupt_lost_task() == 0


def test_beat_sends_the_check_every_timeout(settings):
    entry = next(e for e in django_settings.CELERY_BEAT_SCHEDULE.values() if "interrupt_lost" in e["task"])
    assert entry["task"] in app.tasks
    assert entry["schedule"] == float(django_settings.PARITY_JOB_HEARTBEAT_TIMEOUT)


def test_a_worker_that_starts_marks_the_jobs_its_killed_predecessor_left(workspace, corpus, settings):
    settings.PARITY_JOB_HEARTBEAT_TIMEOUT = 30
    job = services.generation_job_create(generator=make_generator(workspace), corpus=corpus, enqueue=False)
    silent_for(job, 60)
    worker_ready.send(sender=None)
    assert status(job) == "interrupted"


# ------------------------------------------------------------------------------
# The generate command: Ctrl-C, --resume
# ------------------------------------------------------------------------------


def command(*args) -> str:
    out = io.StringIO()
    call_command("generate", *args, stdout=out, stderr=io.StringIO(), verbosity=0)
    return out.getvalue()


def drawn(path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def test_ctrl_c_interrupts_and_resume_makes_only_the_missing_samples(workspace, corpus, tmp_path):
    log = tmp_path / "drawn.txt"
    generator = make_generator(workspace, seconds=0, drawn=str(log))
    backend_functions.interrupt.update(on_call=3)
    backend_functions.interrupt["ready"].set()

    with pytest.raises(CommandError, match=r"keeps the samples made; resume it with --resume \d+") as caught:
        command("--generator", "fn", "--batch-size", "1")
    assert caught.value.returncode == 130
    job = GenerationJob.objects.get()
    assert (job.status, job.finished_at, Sample.objects.count()) == ("interrupted", None, 2)
    before = drawn(log)
    assert len(before) == 2

    backend_functions.interrupt.update(on_call=None)
    out = command("--resume", str(job.pk))

    assert "4 made, 0 already there, 0 failed" in out
    job.refresh_from_db()
    assert (job.status, job.done, Sample.objects.filter(job=job).count()) == ("succeeded", 4, 4)
    made_now = drawn(log)[2:]
    assert len(made_now) == 2 and not set(made_now) & set(before)
    assert sorted(before + made_now) == sorted(
        services.sample_seed(generator_id=generator.pk, item_key=f"k{i}", index=0) for i in range(4)
    )


def test_resume_without_an_id_takes_the_generators_newest_interrupted_job(workspace, corpus):
    generator = make_generator(workspace, seconds=0)
    older, newer = (
        services.generation_job_create(generator=generator, corpus=corpus, item_keys=[key], enqueue=False)
        for key in ("k0", "k1")
    )
    GenerationJob.objects.filter(pk__in=[older.pk, newer.pk]).update(status="interrupted")

    command("--generator", "fn", "--resume")

    assert (status(older), status(newer)) == ("interrupted", "succeeded")
    assert list(Sample.objects.values_list("item__key", flat=True)) == ["k1"]


@pytest.mark.parametrize(
    ("state", "args", "message"),
    [
        ("succeeded", ["--resume", "{job}"], r"has ended \(succeeded\)"),
        ("queued", ["--resume", "{job}"], "is queued"),
        ("succeeded", ["--generator", "fn", "--resume"], "generator 'fn' has no interrupted job"),
        ("interrupted", ["--resume"], "give --resume JOB, or --generator"),
        ("interrupted", ["--resume", "x"], "--resume takes a job id, not 'x'"),
        ("interrupted", ["--resume", "999"], "no generation job 999"),
        ("running", ["--job", "{job}"], "is running on a worker"),
    ],
)
def test_resume_says_what_is_wrong(workspace, corpus, state, args, message):
    job = services.generation_job_create(generator=make_generator(workspace), corpus=corpus, enqueue=False)
    GenerationJob.objects.filter(pk=job.pk).update(status=state, heartbeat_at=timezone.now())
    with pytest.raises(CommandError, match=message):
        command(*[arg.format(job=job.pk) for arg in args])
    assert status(job) == state
