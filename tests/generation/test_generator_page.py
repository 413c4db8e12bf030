"""The researcher's generator page: fields, samples, jobs with a live progress bar, cancel, start, resume."""

from datetime import timedelta

import pytest
from django.utils import timezone

from generation.models import Corpus, GenerationJob, Generator, Item
from generation.tasks import generation_job_run_task
from workspaces.models import Membership, Workspace

pytestmark = pytest.mark.django_db


@pytest.fixture
def corpus(workspace):
    corpus = Corpus.objects.create(workspace=workspace, name="shapes")
    for key in ("a", "b"):
        Item.objects.create(corpus=corpus, key=key, caption=f"shape {key}", image=f"originals/{key}.png",
                            sha256="0" * 64, width=8, height=8, format="PNG", mode="RGB", byte_size=1)
    return corpus


@pytest.fixture
def generator(workspace):
    return Generator.objects.create(
        workspace=workspace, name="ladder-S-step100", params=123_456, train_step=100, metrics={"val_loss": 0.4321},
        backend="builtin", backend_config={"checkpoint": "lab/ladder/S/S-step0000100.pt"},
    )


def signed_in(client, workspace, django_user_model, role="member"):
    user = django_user_model.objects.create_user(f"{role}-user", password="x")
    Membership.objects.create(workspace=workspace, user=user, role=role)
    client.force_login(user)
    return client


def page_url(generator) -> str:
    return f"/generators/{generator.pk}/"


def test_the_page_shows_the_generator_and_a_running_jobs_live_bar(client, workspace, django_user_model, generator, corpus):
    running = GenerationJob.objects.create(
        generator=generator, corpus=corpus, status="running", total=10, done=3, skipped=1, failed=1,
        device="cuda:0 (NVIDIA H100)", batch_size=8, images_per_second=12.5, error_count=1,
        errors=[{"item_key": "b", "seed": 7, "error": "ValueError: nope"}],
    )
    finished = GenerationJob.objects.create(generator=generator, corpus=corpus, status="succeeded", total=2, done=2)
    html = signed_in(client, workspace, django_user_model).get(page_url(generator)).content.decode()

    assert "ladder-S-step100" in html and "123456" in html and "0.4321" in html
    assert "lab/ladder/S/S-step0000100.pt" in html
    progress = f"/generators/{generator.pk}/jobs/{running.pk}/progress/"
    assert f'hx-get="{progress}" hx-trigger="every 1s"' in html
    assert f"/generators/{generator.pk}/jobs/{finished.pk}/progress/" not in html  # an ended job does not poll
    assert "3 made, 1 already there, 1 failed" in html and "50%" in html
    assert "cuda:0 (NVIDIA H100) · batch size 8 · 12.50 images/s" in html
    assert "<code>b</code> (seed 7): ValueError: nope" in html
    assert html.count(">Cancel</button>") == 1

    partial = client.get(progress).content.decode()
    assert partial.lstrip().startswith("<section") and "every 1s" in partial
    GenerationJob.objects.filter(pk=running.pk).update(status="succeeded", done=8)
    partial = client.get(progress).content.decode()
    assert "every 1s" not in partial and "Succeeded" in partial and "100%" in partial


def test_the_home_page_links_to_the_generator_page(client, workspace, django_user_model, generator):
    html = signed_in(client, workspace, django_user_model).get("/").content.decode()
    assert f'href="{page_url(generator)}"' in html


def test_cancel_a_running_job_from_the_page(client, workspace, django_user_model, generator, corpus):
    job = GenerationJob.objects.create(generator=generator, corpus=corpus, status="running", total=2)
    client = signed_in(client, workspace, django_user_model)
    response = client.post(f"/generators/{generator.pk}/jobs/{job.pk}/cancel/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "(stopping)" in response.content.decode() and ">Cancel</button>" not in response.content.decode()
    assert GenerationJob.objects.get().cancel_requested

    GenerationJob.objects.filter(pk=job.pk).update(status="succeeded", cancel_requested=False)
    again = client.post(f"/generators/{generator.pk}/jobs/{job.pk}/cancel/")
    assert again.status_code == 302
    assert "has ended (succeeded)" in client.get(page_url(generator)).content.decode()


def test_start_a_job_from_the_page(client, workspace, django_user_model, generator, corpus, sent_tasks,
                                  django_capture_on_commit_callbacks):
    client = signed_in(client, workspace, django_user_model)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/generators/{generator.pk}/jobs/", {"corpus": corpus.pk, "seeds_per_item": 3})
    assert response.status_code == 302
    job = GenerationJob.objects.get()
    assert (job.corpus, job.total, job.status) == (corpus, 6, "queued")
    assert sent_tasks == [(generation_job_run_task.name, (job.pk,))]
    assert "is queued: 6 samples" in client.get(page_url(generator)).content.decode()


def test_viewers_look_but_cannot_start_or_cancel(client, workspace, django_user_model, generator, corpus):
    job = GenerationJob.objects.create(generator=generator, corpus=corpus, status="running", total=2)
    client = signed_in(client, workspace, django_user_model, role="viewer")
    html = client.get(page_url(generator)).content.decode()
    assert "Start a job" not in html and ">Cancel</button>" not in html
    assert client.post(f"/generators/{generator.pk}/jobs/{job.pk}/cancel/").status_code == 403
    assert client.post(f"/generators/{generator.pk}/jobs/", {"corpus": corpus.pk, "seeds_per_item": 1}).status_code == 403
    assert not GenerationJob.objects.get().cancel_requested


def test_a_generator_of_another_workspace_is_not_found(client, workspace, django_user_model, generator):
    elsewhere = Workspace.objects.create(name="Elsewhere", slug="elsewhere")
    hidden = Generator.objects.create(workspace=elsewhere, name="hidden")
    client = signed_in(client, workspace, django_user_model)
    assert client.get(page_url(hidden)).status_code == 404
    assert client.get(f"/generators/{hidden.pk}/jobs/1/progress/").status_code == 404
    assert client.get(page_url(generator)).status_code == 200


def test_a_job_whose_worker_is_gone_is_shown_interrupted_and_resumed_from_the_page(
    client, workspace, django_user_model, generator, corpus, settings, sent_tasks, django_capture_on_commit_callbacks
):
    settings.PARITY_JOB_HEARTBEAT_TIMEOUT = 30
    silent = timezone.now() - timedelta(seconds=31)
    job = GenerationJob.objects.create(
        generator=generator, corpus=corpus, status="running", total=2, done=1, started_at=silent, heartbeat_at=silent
    )
    client = signed_in(client, workspace, django_user_model)
    progress = f"/generators/{generator.pk}/jobs/{job.pk}/progress/"

    partial = client.get(progress).content.decode()
    assert 'data-status="interrupted"' in partial and "every 1s" not in partial
    assert "resume it to make only the samples still missing" in partial
    assert ">Resume</button>" in partial and ">Cancel</button>" in partial

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/generators/{generator.pk}/jobs/{job.pk}/resume/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-status="queued"' in html and "every 1s" in html and ">Resume</button>" not in html
    assert sent_tasks == [(generation_job_run_task.name, (job.pk,))]

    again = client.post(f"/generators/{generator.pk}/jobs/{job.pk}/resume/")
    assert again.status_code == 302
    assert "is queued: a worker will run it" in client.get(page_url(generator)).content.decode()


def test_viewers_cannot_resume(client, workspace, django_user_model, generator, corpus):
    job = GenerationJob.objects.create(generator=generator, corpus=corpus, status="interrupted", total=2)
    client = signed_in(client, workspace, django_user_model, role="viewer")
    assert ">Resume</button>" not in client.get(page_url(generator)).content.decode()
    assert client.post(f"/generators/{generator.pk}/jobs/{job.pk}/resume/").status_code == 403
    assert GenerationJob.objects.get().status == "interrupted"
