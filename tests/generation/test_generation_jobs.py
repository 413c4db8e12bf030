"""Generation jobs on a worker: batches, seeds, resuming, failures, cancelling, progress.

The backend is a `callable` one (tests/generation/backend_functions.py), so the
tests need no model. The job's database writes come from a thread of their own, so
these tests commit (transaction=True) for that thread to see their rows.
"""

import time
from datetime import UTC, datetime

import pytest
from django.core.files.storage import default_storage
from PIL import Image

from generation import services
from generation.models import Corpus, GenerationJob, Generator, Item, Sample
from generation.services import enqueue, generation_run
from generation.tasks import generation_job_run_task, import_job_task
from parity.celery import app
from tests.generation import backend_functions

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("callables", "no_interruption")]
# A heartbeat no worker has written for long.
LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)
CAPTIONS = ["a red square", "two blue circles", "a broken vase", "a green line", "one yellow star"]


@pytest.fixture
def corpus(workspace):
    corpus = Corpus.objects.create(workspace=workspace, name="shapes")
    for index, caption in enumerate(CAPTIONS):
        # No job reads a reference image: the row is enough.
        Item.objects.create(
            corpus=corpus, key=f"k{index}", caption=caption, image=f"originals/k{index}.png", sha256="0" * 64,
            width=8, height=8, format="PNG", mode="RGB", byte_size=100,
        )
    return corpus


def make_generator(workspace, function="solid", name="fn", **settings):
    return services.generator_create(
        workspace=workspace, name=name, backend="callable",
        backend_config={"function": function}, settings=settings,
    )


def make_job(generator, corpus, **fields) -> GenerationJob:
    return services.generation_job_create(generator=generator, corpus=corpus, enqueue=False, **fields)


def run(job, **options) -> GenerationJob:
    return generation_run.generation_job_run(job_id=job.pk, **options)


def pairs(generator) -> list[tuple[str, int]]:
    return sorted(Sample.objects.filter(generator=generator).values_list("item__key", "seed"))


def expected_pairs(generator, keys, seeds_per_item=1) -> list[tuple[str, int]]:
    return sorted(
        (key, generation_run.sample_seed(generator_id=generator.pk, item_key=key, index=index))
        for key in keys for index in range(seeds_per_item)
    )


# ------------------------------------------------------------------------------
# Seeds
# ------------------------------------------------------------------------------


def test_seeds_depend_on_generator_item_and_index_only():
    seed = generation_run.sample_seed(generator_id=3, item_key="k0", index=0)
    assert seed == generation_run.sample_seed(generator_id=3, item_key="k0", index=0)
    others = {
        generation_run.sample_seed(generator_id=4, item_key="k0", index=0),
        generation_run.sample_seed(generator_id=3, item_key="k1", index=0),
        generation_run.sample_seed(generator_id=3, item_key="k0", index=1),
    }
    assert seed not in others and len(others) == 3
    assert all(0 <= s < 2**63 for s in others | {seed})


# ------------------------------------------------------------------------------
# A whole run
# ------------------------------------------------------------------------------


def test_a_job_makes_every_sample_in_batches_and_records_the_run(workspace, corpus):
    generator = make_generator(workspace, size=6)
    job = make_job(generator, corpus, seeds_per_item=2)
    handled = []

    job = run(job, batch_size=3, workers=2, on_progress=handled.append)

    assert job.status == GenerationJob.Status.SUCCEEDED
    assert (job.total, job.done, job.skipped, job.failed, job.errors) == (10, 10, 0, 0, [])
    assert job.batch_size == 3 and job.device == "chosen by the function"
    assert job.images_per_second > 0 and job.started_at and job.finished_at
    assert handled[-1] == 10 and handled == sorted(handled)
    assert pairs(generator) == expected_pairs(generator, [f"k{i}" for i in range(5)], seeds_per_item=2)
    for sample in Sample.objects.filter(generator=generator).select_related("item"):
        assert sample.job_id == job.pk and (sample.width, sample.height, sample.format) == (6, 6, "PNG")
        with default_storage.open(sample.image.name) as stored:
            image = Image.open(stored)
            assert image.getpixel((0, 0)) == backend_functions.colour(sample.item.caption, sample.seed)


def test_a_job_over_some_items_makes_only_theirs(workspace, corpus):
    generator = make_generator(workspace)
    job = run(make_job(generator, corpus, item_keys=["k3", "k1"]))
    assert job.status == "succeeded" and job.done == 2
    assert pairs(generator) == expected_pairs(generator, ["k1", "k3"])


def test_a_rerun_skips_the_samples_that_exist(workspace, corpus):
    generator = make_generator(workspace)
    run(make_job(generator, corpus, item_keys=["k0", "k1"]))

    second = run(make_job(generator, corpus))

    assert (second.status, second.done, second.skipped) == ("succeeded", 3, 2)
    assert pairs(generator) == expected_pairs(generator, [f"k{i}" for i in range(5)])


def test_a_sample_another_run_made_meanwhile_is_skipped_and_the_others_are_stored(workspace, corpus):
    generator = make_generator(workspace, function="made_meanwhile", rival="fn")

    def on_progress(handled):
        # The writer thread calls this: holding it up after the first row lets the other
        # four, the rival's among them, arrive and be inserted together.
        if handled == 1:
            time.sleep(0.3)

    job = run(make_job(generator, corpus), batch_size=5, workers=1, on_progress=on_progress)

    assert (job.status, job.done, job.skipped, job.failed) == ("succeeded", 4, 1, 0)
    assert pairs(generator) == expected_pairs(generator, [f"k{i}" for i in range(5)])
    assert Sample.objects.get(generator=generator, item__key="k4").image.name == "originals/rival.png"
    assert Sample.objects.filter(job=job).count() == 4


def test_rows_beyond_a_group_are_inserted_by_the_next_and_crowded_stores_wait(workspace, corpus, monkeypatch):
    monkeypatch.setattr(generation_run, "MAX_GROUP_ROWS", 2)
    monkeypatch.setattr(generation_run, "MAX_PENDING_ROWS", 0)  # every store waits for the writer
    generator = make_generator(workspace)

    job = run(make_job(generator, corpus, seeds_per_item=3), batch_size=4, workers=3)

    assert (job.status, job.done, job.skipped, job.failed) == ("succeeded", 15, 0, 0)
    assert pairs(generator) == expected_pairs(generator, [f"k{i}" for i in range(5)], seeds_per_item=3)


def test_the_celery_task_runs_the_job(workspace, corpus):
    job = make_job(make_generator(workspace), corpus)
    assert generation_job_run_task(job.pk) == "succeeded"
    assert Sample.objects.filter(job=job).count() == 5


# ------------------------------------------------------------------------------
# Killed half-way, resumed
# ------------------------------------------------------------------------------


def test_a_job_killed_half_way_resumes_without_duplicates(workspace, corpus):
    generator = make_generator(workspace)
    job = make_job(generator, corpus)
    # The third batch is cut short once the first two batches are stored.
    backend_functions.interrupt["on_call"] = 3

    def on_progress(handled):
        if handled >= 2:
            backend_functions.interrupt["ready"].set()

    with pytest.raises(KeyboardInterrupt):
        run(job, batch_size=1, workers=1, on_progress=on_progress)

    job.refresh_from_db()
    assert job.status == "interrupted"  # not failed, and not finished
    assert job.finished_at is None
    assert Sample.objects.filter(job=job).count() == 2
    # A worker killed outright leaves its job running, with a heartbeat that grows old;
    # the redelivered task resumes it.
    GenerationJob.objects.filter(pk=job.pk).update(status="running", heartbeat_at=LONG_AGO)
    backend_functions.interrupt["on_call"] = None

    job = run(job, batch_size=2)

    assert (job.status, job.done, job.skipped, job.failed) == ("succeeded", 5, 0, 0)
    assert pairs(generator) == expected_pairs(generator, [f"k{i}" for i in range(5)])
    assert Sample.objects.filter(job=job).count() == 5


def test_a_job_that_has_ended_is_not_run_again(workspace, corpus):
    job = run(make_job(make_generator(workspace), corpus))
    Sample.objects.all().delete()
    assert run(job).status == "succeeded"
    assert not Sample.objects.exists()


# ------------------------------------------------------------------------------
# Failures
# ------------------------------------------------------------------------------


def test_a_failing_item_is_reported_and_the_others_are_stored(workspace, corpus):
    generator = make_generator(workspace, function="broken_on")
    job = run(make_job(generator, corpus), batch_size=5)

    assert (job.status, job.done, job.failed, job.error_count) == ("succeeded", 4, 1, 1)
    seed = generation_run.sample_seed(generator_id=generator.pk, item_key="k2", index=0)
    assert job.errors == [{"item_key": "k2", "seed": seed, "error": "ValueError: cannot draw 'broken' prompts"}]
    assert pairs(generator) == expected_pairs(generator, ["k0", "k1", "k3", "k4"])


def test_a_job_whose_writer_is_behind_still_counts_its_samples(workspace, corpus, monkeypatch):
    # The writer inserts nothing until the pipeline has ended, as when the database is
    # slower than the device: the status must not be read from counters still at zero
    # (a CI run once saw "failed: 5 made, 1 failed").
    monkeypatch.setattr(generation_run._Run, "_insert_pending", lambda self: None)
    generator = make_generator(workspace, function="broken_on")
    job = run(make_job(generator, corpus), batch_size=5)

    assert (job.status, job.done, job.failed) == ("succeeded", 4, 1)
    assert pairs(generator) == expected_pairs(generator, ["k0", "k1", "k3", "k4"])


def test_a_job_keeps_the_first_errors_and_counts_them_all(workspace, corpus, monkeypatch):
    monkeypatch.setattr(generation_run, "MAX_STORED_ERRORS", 2)
    generator = make_generator(workspace, function="broken_on", word="e")
    job = run(make_job(generator, corpus, item_keys=["k0", "k1", "k2", "k3"]), batch_size=2)

    assert (job.status, job.done, job.failed, job.error_count, len(job.errors)) == ("failed", 0, 4, 4, 2)


def test_what_is_not_an_image_fails_its_item(workspace, corpus):
    job = run(make_job(make_generator(workspace, function="not_images"), corpus, item_keys=["k0"]))
    assert (job.status, job.failed) == ("failed", 1)
    assert "returned a str, not a PIL image" in job.errors[0]["error"]


def test_a_backend_that_cannot_load_fails_the_job_with_its_reason(workspace, corpus, callables):
    callables["missing"] = f"{backend_functions.__name__}:missing"
    generator = make_generator(workspace, function="missing")
    job = run(make_job(generator, corpus))

    assert job.status == "failed" and job.finished_at
    assert job.errors == [{"error": job.errors[0]["error"]}] and job.error_count == 1
    assert "function 'missing' cannot be imported" in job.errors[0]["error"]
    assert not Sample.objects.exists()


# ------------------------------------------------------------------------------
# What the operator allows, checked again when a job runs
# ------------------------------------------------------------------------------


def test_a_job_whose_callable_is_no_longer_allowed_fails_and_calls_nothing(workspace, corpus, settings):
    job = make_job(make_generator(workspace), corpus)
    settings.PARITY_CALLABLES = {}  # the operator took `solid` off the list while the job was queued

    job = run(job)

    assert (job.status, job.done, job.error_count) == ("failed", 0, 1)
    assert job.errors[0]["error"] == (
        "function 'solid' is not one this site allows: it allows none (the operator lists them in PARITY_CALLABLES)"
    )
    assert backend_functions.interrupt["calls"] == 0
    assert not Sample.objects.exists()


def test_a_job_whose_backend_is_no_longer_allowed_fails_and_calls_nothing(workspace, corpus, settings):
    job = make_job(make_generator(workspace), corpus)
    settings.PARITY_GENERATION_BACKENDS = {"builtin": "builtin"}

    job = run(job)

    assert job.status == "failed"
    assert "backend 'callable' is not one this site allows: use 'upload', 'builtin'" in job.errors[0]["error"]
    assert backend_functions.interrupt["calls"] == 0
    assert not Sample.objects.exists()


def test_a_generator_saved_with_a_dotted_function_path_runs_nothing(workspace, corpus):
    """As a generator written before the allow-list, or straight into the database, would."""
    generator = make_generator(workspace)
    Generator.objects.filter(pk=generator.pk).update(
        backend_config={"function": f"{backend_functions.__name__}:solid"}
    )
    job = run(make_job(generator, corpus))

    assert job.status == "failed"
    assert f"function '{backend_functions.__name__}:solid' is not one this site allows" in job.errors[0]["error"]
    assert backend_functions.interrupt["calls"] == 0


def test_a_job_whose_checkpoint_leads_out_of_the_checkpoint_folder_fails_before_loading(
    workspace, corpus, settings, tmp_path
):
    settings.PARITY_CHECKPOINT_DIR = tmp_path / "checkpoints"
    settings.PARITY_CHECKPOINT_DIR.mkdir()
    outside = tmp_path / "elsewhere.pt"
    outside.write_bytes(b"not read")
    (settings.PARITY_CHECKPOINT_DIR / "link.pt").symlink_to(outside)
    generator = services.generator_create(
        workspace=workspace, name="b", backend="builtin", backend_config={"checkpoint": "inside.pt"}
    )
    for checkpoint in ("link.pt", "../elsewhere.pt", str(outside)):
        Generator.objects.filter(pk=generator.pk).update(backend_config={"checkpoint": checkpoint})
        job = run(make_job(generator, corpus))
        assert job.status == "failed", checkpoint
        assert "PARITY_CHECKPOINT_DIR" in job.errors[0]["error"], checkpoint


# ------------------------------------------------------------------------------
# Cancelling
# ------------------------------------------------------------------------------


def test_a_running_job_stops_between_batches_when_cancelled(workspace, corpus, monkeypatch):
    generator = make_generator(workspace)
    job = make_job(generator, corpus)
    original = backend_functions.solid

    def cancel_then_draw(prompts, seeds, **settings):
        services.generation_job_cancel(job=job)
        return original(prompts, seeds, **settings)

    monkeypatch.setattr(backend_functions, "solid", cancel_then_draw)
    job = run(job, batch_size=2)

    assert (job.status, job.cancel_requested, job.done) == ("cancelled", True, 2)
    assert Sample.objects.filter(job=job).count() == 2  # the batch sampled before the stop is kept


def test_a_job_cancelled_while_its_worker_was_lost_is_not_resumed(workspace, corpus):
    job = make_job(make_generator(workspace), corpus)
    GenerationJob.objects.filter(pk=job.pk).update(status="running", cancel_requested=True, heartbeat_at=LONG_AGO)
    assert run(job).status == "cancelled"
    assert not Sample.objects.exists()


# ------------------------------------------------------------------------------
# Enqueued on commit
# ------------------------------------------------------------------------------


def test_a_new_job_is_sent_to_the_worker_once_committed(workspace, corpus, sent_tasks):
    generator = make_generator(workspace)
    job = services.generation_job_create(generator=generator, corpus=corpus)
    assert sent_tasks == [(generation_job_run_task.name, (job.pk,))]


def test_the_services_send_the_tasks_by_their_own_names_to_their_queues():
    # Sent by name, not through the task's object: a renamed task must be renamed here too.
    assert (enqueue.GENERATION_JOB_RUN_TASK, enqueue.IMPORT_JOB_TASK) == (
        generation_job_run_task.name, import_job_task.name,
    )
    queue = {name: app.amqp.router.route({}, name)["queue"].name for name in (
        enqueue.GENERATION_JOB_RUN_TASK, enqueue.IMPORT_JOB_TASK,
    )}
    assert queue == {enqueue.GENERATION_JOB_RUN_TASK: "gpu", enqueue.IMPORT_JOB_TASK: "celery"}
