"""Generation jobs: create, list, progress, cancel, resume once the worker is gone.

A new job is sent to the `gpu` queue once committed; the worker's side is tested in
tests/generation/test_generation_jobs.py. Here a test that needs a job running or
finished writes the row as a worker would.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from generation import services
from generation.models import Corpus, GenerationJob, Generator
from generation.tasks import generation_job_run_task
from tests.api.conftest import token_client
from workspaces.errors import ParityError

pytestmark = pytest.mark.django_db

URL = "/api/v1/generation-jobs/"


@pytest.fixture
def generator(content):
    """The lab's generator, given a backend to run."""
    generator = content["lab"]["generator"]
    generator.backend = "builtin"
    generator.save()
    return generator


@pytest.fixture
def corpus(content):
    return content["lab"]["corpus"]


@pytest.fixture
def api(content, researcher):
    return token_client(researcher)


def create(api, **fields):
    return api.post(URL, fields, format="json")


def error(response) -> dict:
    return response.json()["error"]


def job_in(state: str, generator, corpus, **counts) -> GenerationJob:
    """A job as the worker leaves it."""
    return GenerationJob.objects.create(generator=generator, corpus=corpus, status=state, total=3, **counts)


# ------------------------------------------------------------------------------
# Create and read
# ------------------------------------------------------------------------------


def test_create_a_job_over_every_item(api, generator, corpus, django_capture_on_commit_callbacks, sent_tasks):
    with django_capture_on_commit_callbacks(execute=True):
        response = create(api, generator=generator.pk, corpus=corpus.pk)
    assert response.status_code == 201, response.json()
    body = response.json()
    job = GenerationJob.objects.get()
    assert body == {
        "id": job.pk, "generator": generator.pk, "corpus": corpus.pk, "item_keys": [], "seeds_per_item": 1,
        "status": "queued", "cancel_requested": False, "progress": 0.0, "total": 3, "done": 0, "skipped": 0,
        "failed": 0, "errors": [], "error_count": 0, "device": "", "batch_size": None, "images_per_second": None,
        "created_at": body["created_at"], "started_at": None, "heartbeat_at": None, "finished_at": None,
    }
    assert sent_tasks == [(generation_job_run_task.name, (job.pk,))]  # sent to the GPU worker once committed
    assert api.get(f"{URL}{job.pk}/").json() == body


def test_create_a_job_over_some_items_with_several_seeds(api, generator, corpus):
    response = create(api, generator=generator.pk, corpus=corpus.pk, item_keys=["0003", "0001"], seeds_per_item=4)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["item_keys"], body["seeds_per_item"], body["total"]) == (["0003", "0001"], 4, 8)
    job = GenerationJob.objects.get()
    assert (job.item_keys, job.seeds_per_item, job.total) == (["0003", "0001"], 4, 8)


def test_progress_and_counts_as_the_worker_reports_them(api, generator, corpus):
    job = job_in("running", generator, corpus, done=1, skipped=1, failed=1, device="cuda:0", batch_size=8,
                 images_per_second=2.5)
    job.total = 6
    job.save()
    body = api.get(f"{URL}{job.pk}/").json()
    assert (body["status"], body["progress"], body["done"], body["skipped"], body["failed"]) == ("running", 0.5, 1, 1, 1)
    assert (body["device"], body["batch_size"], body["images_per_second"]) == ("cuda:0", 8, 2.5)
    GenerationJob.objects.filter(pk=job.pk).update(status="succeeded", done=4)
    assert api.get(f"{URL}{job.pk}/").json()["progress"] == 1.0


def test_list_newest_first_with_filters(api, generator, corpus, lab):
    second = Generator.objects.create(workspace=lab, name="lab-L", backend="builtin")
    first = job_in("succeeded", generator, corpus)
    newer = job_in("queued", second, corpus)

    def ids(query: dict) -> list[int]:
        response = api.get(URL, query)
        assert response.status_code == 200, response.json()
        return [row["id"] for row in response.json()["results"]]

    assert ids({}) == [newer.pk, first.pk]
    assert ids({"generator": generator.pk}) == [first.pk]
    assert ids({"status": "queued"}) == [newer.pk]
    assert ids({"generator": second.pk, "status": "succeeded"}) == []
    bad_status = api.get(URL, {"status": "done"})
    assert (bad_status.status_code, error(bad_status)["field"]) == (400, "status")
    bad_generator = api.get(URL, {"generator": "lab-M"})
    assert (bad_generator.status_code, error(bad_generator)["field"]) == (400, "generator")


# ------------------------------------------------------------------------------
# Refusals
# ------------------------------------------------------------------------------


def test_a_corpus_of_another_workspace_is_refused_by_name(api, generator, content, researcher, other):
    other.memberships.create(user=researcher, role="owner")
    response = create(api, generator=generator.pk, corpus=content["other"]["corpus"].pk)
    assert response.status_code == 400
    assert (error(response)["field"], error(response)["code"]) == ("corpus", "wrong_workspace")
    assert "another workspace" in error(response)["message"]
    assert not GenerationJob.objects.exists()


def test_generators_and_corpora_outside_your_workspaces_are_not_found(api, generator, corpus, content):
    foreign_corpus = create(api, generator=generator.pk, corpus=content["other"]["corpus"].pk)
    assert (error(foreign_corpus)["field"], error(foreign_corpus)["code"]) == ("corpus", "does_not_exist")
    foreign_generator = create(api, generator=content["other"]["generator"].pk, corpus=corpus.pk)
    assert (error(foreign_generator)["field"], error(foreign_generator)["code"]) == ("generator", "does_not_exist")
    assert not GenerationJob.objects.exists()


@pytest.mark.parametrize(
    ("fields", "field", "code"),
    [
        ({"item_keys": ["0001", "9999"]}, "item_keys", "unknown_item"),
        ({"item_keys": ["0001", "0001"]}, "item_keys", "duplicate_key"),
        ({"item_keys": "0001"}, "item_keys", "not_a_list"),
        ({"seeds_per_item": 0}, "seeds_per_item", "min_value"),
        ({"status": "running"}, None, None),  # read-only: ignored, the job is queued
        ({"seed": 3}, "seed", "unknown_field"),
    ],
    ids=["unknown-key", "twice", "not-a-list", "no-seeds", "read-only", "unknown-field"],
)
def test_bad_fields_are_named(api, generator, corpus, fields, field, code):
    response = create(api, generator=generator.pk, corpus=corpus.pk, **fields)
    if field is None:
        assert response.status_code == 201 and response.json()["status"] == "queued"
        return
    assert response.status_code == 400, response.json()
    assert (error(response)["field"], error(response)["code"]) == (field, code)
    assert not GenerationJob.objects.exists()


def test_a_generator_whose_samples_are_uploaded_has_nothing_to_run(api, content, corpus):
    response = create(api, generator=content["lab"]["generator"].pk, corpus=corpus.pk)
    assert response.status_code == 400
    assert (error(response)["field"], error(response)["code"]) == ("generator", "no_backend")


def test_an_empty_corpus_is_refused(api, generator, lab):
    empty = Corpus.objects.create(workspace=lab, name="empty")
    response = create(api, generator=generator.pk, corpus=empty.pk)
    assert (response.status_code, error(response)["field"], error(response)["code"]) == (400, "corpus", "empty")


def test_the_service_guards_what_the_api_checks(generator, content):
    with pytest.raises(ParityError, match="another workspace"):
        services.generation_job_create(generator=generator, corpus=content["other"]["corpus"])
    with pytest.raises(ParityError, match="no item with key '9999'"):
        services.generation_job_create(generator=generator, corpus=content["lab"]["corpus"], item_keys=["9999"])
    assert not GenerationJob.objects.exists()


# ------------------------------------------------------------------------------
# Who may
# ------------------------------------------------------------------------------


def test_jobs_of_another_workspace_are_404(api, generator, corpus, outsider):
    job = job_in("queued", generator, corpus)
    stranger = token_client(outsider)
    assert stranger.get(f"{URL}{job.pk}/").status_code == 404
    assert stranger.post(f"{URL}{job.pk}/cancel/").status_code == 404
    assert stranger.get(URL).json()["count"] == 0
    refused = create(stranger, generator=generator.pk, corpus=corpus.pk)
    assert (refused.status_code, error(refused)["field"]) == (400, "generator")
    assert GenerationJob.objects.get().status == "queued"


def test_viewers_read_but_cannot_create_or_cancel(generator, corpus, viewer):
    job = job_in("queued", generator, corpus)
    client = token_client(viewer)
    assert client.get(f"{URL}{job.pk}/").status_code == 200
    assert client.get(URL).json()["count"] == 1
    created = create(client, generator=generator.pk, corpus=corpus.pk)
    assert (created.status_code, error(created)["code"]) == (403, "permission_denied")
    assert client.post(f"{URL}{job.pk}/cancel/").status_code == 403
    assert GenerationJob.objects.get().status == "queued"


def test_annotators_are_refused(generator, corpus, annotator_account):
    job = job_in("queued", generator, corpus)
    client = token_client(annotator_account)
    assert client.get(URL).status_code == 403
    assert client.get(f"{URL}{job.pk}/").status_code == 403
    assert client.post(f"{URL}{job.pk}/cancel/").status_code == 403


# ------------------------------------------------------------------------------
# Cancel
# ------------------------------------------------------------------------------


def test_cancel_a_queued_job_at_once(api, generator, corpus):
    job_id = create(api, generator=generator.pk, corpus=corpus.pk).json()["id"]
    response = api.post(f"{URL}{job_id}/cancel/")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["cancel_requested"]) == ("cancelled", True)
    assert body["finished_at"] is not None
    again = api.post(f"{URL}{job_id}/cancel/")
    assert (again.status_code, error(again)["code"]) == (409, "not_cancellable")


def test_cancel_a_running_job_asks_its_worker(api, generator, corpus):
    job = job_in("running", generator, corpus, done=1)
    job.started_at = timezone.now()
    job.save()
    response = api.post(f"{URL}{job.pk}/cancel/")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["cancel_requested"]) == ("running", True)
    assert response.json()["finished_at"] is None
    assert api.post(f"{URL}{job.pk}/cancel/").status_code == 200  # asking twice is harmless
    job.refresh_from_db()
    assert (job.status, job.cancel_requested, job.done) == ("running", True, 1)


@pytest.mark.parametrize("state", ["succeeded", "failed", "cancelled"])
def test_a_finished_job_cannot_be_cancelled(api, generator, corpus, state):
    job = job_in(state, generator, corpus)
    response = api.post(f"{URL}{job.pk}/cancel/")
    assert response.status_code == 409
    assert error(response)["code"] == "not_cancellable"
    assert state in error(response)["message"]
    job.refresh_from_db()
    assert (job.status, job.cancel_requested) == (state, False)


# ------------------------------------------------------------------------------
# A lost worker: interrupted, resumed, cancelled
# ------------------------------------------------------------------------------


def silent_for(job: GenerationJob, seconds: float) -> GenerationJob:
    """The job as a worker killed `seconds` ago leaves it: running, its heartbeat that old."""
    GenerationJob.objects.filter(pk=job.pk).update(
        status="running", started_at=timezone.now() - timedelta(hours=1),
        heartbeat_at=timezone.now() - timedelta(seconds=seconds),
    )
    job.refresh_from_db()
    return job


def test_reading_a_job_whose_worker_is_gone_shows_it_interrupted(api, generator, corpus, settings):
    settings.PARITY_JOB_HEARTBEAT_TIMEOUT = 30
    lost = silent_for(job_in("running", generator, corpus), 31)
    alive = silent_for(job_in("running", generator, corpus), 5)

    assert api.get(f"{URL}{lost.pk}/").json()["status"] == "interrupted"
    assert {job["id"]: job["status"] for job in api.get(URL).json()["results"]} == {
        lost.pk: "interrupted", alive.pk: "running",
    }
    lost.refresh_from_db()
    assert (lost.status, lost.finished_at) == ("interrupted", None)


def test_resume_queues_an_interrupted_job_again(api, generator, corpus, sent_tasks,
                                                django_capture_on_commit_callbacks):
    job = job_in("interrupted", generator, corpus, done=1)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"{URL}{job.pk}/resume/")
    assert response.status_code == 200, response.json()
    assert (response.json()["status"], response.json()["done"]) == ("queued", 1)
    assert sent_tasks == [(generation_job_run_task.name, (job.pk,))]

    again = api.post(f"{URL}{job.pk}/resume/")
    assert (again.status_code, error(again)["code"]) == (409, "not_resumable")
    assert "is queued" in error(again)["message"]
    assert sent_tasks == [(generation_job_run_task.name, (job.pk,))]


def test_a_running_job_whose_worker_is_gone_is_resumed(api, generator, corpus, sent_tasks):
    job = silent_for(job_in("running", generator, corpus), 3600)
    assert api.post(f"{URL}{job.pk}/resume/").json()["status"] == "queued"


@pytest.mark.parametrize("state", ["queued", "running", "succeeded", "failed", "cancelled"])
def test_only_an_interrupted_job_is_resumed(api, generator, corpus, state):
    job = job_in(state, generator, corpus)
    response = api.post(f"{URL}{job.pk}/resume/")
    assert (response.status_code, error(response)["code"]) == (409, "not_resumable")
    job.refresh_from_db()
    assert job.status == state


def test_viewers_cannot_resume(generator, corpus, viewer):
    job = job_in("interrupted", generator, corpus)
    assert token_client(viewer).post(f"{URL}{job.pk}/resume/").status_code == 403
    job.refresh_from_db()
    assert job.status == "interrupted"


def test_cancel_ends_a_running_job_whose_worker_is_gone_at_once(api, generator, corpus, settings):
    settings.PARITY_JOB_HEARTBEAT_TIMEOUT = 30
    job = silent_for(job_in("running", generator, corpus), 31)
    response = api.post(f"{URL}{job.pk}/cancel/")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["cancel_requested"]) == ("cancelled", True)
    assert body["finished_at"] is not None


def test_cancel_ends_an_interrupted_job(api, generator, corpus):
    job = job_in("interrupted", generator, corpus)
    assert api.post(f"{URL}{job.pk}/cancel/").json()["status"] == "cancelled"


def test_a_cancel_its_worker_never_saw_ends_the_job_once_the_worker_is_seen_gone(api, generator, corpus, settings):
    settings.PARITY_JOB_HEARTBEAT_TIMEOUT = 30
    job = silent_for(job_in("running", generator, corpus), 10)  # killed 10 s ago: not known yet
    assert api.post(f"{URL}{job.pk}/cancel/").json()["status"] == "running"
    silent_for(job, 31)
    body = api.get(f"{URL}{job.pk}/").json()
    assert (body["status"], body["cancel_requested"]) == ("cancelled", True)
    assert body["finished_at"] is not None
