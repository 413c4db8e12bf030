"""A real Celery worker, on a real Redis broker, runs a real corpus import job."""

import json
import os
import subprocess
import sys
import time
import zipfile

import pytest
from django.core.files import File
from django.db import connection
from PIL import Image

from generation import services
from generation.models import Corpus, ImportJob
from generation.services import import_jobs
from parity.celery import app


def _write_corpus(path, count):
    """A corpus upload as a researcher sends it: captions.jsonl and its images in one zip."""
    lines = []
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(count):
            with archive.open(f"{i}.png", "w") as image:
                Image.new("RGB", (32, 32), (60 * i, 20, 200)).save(image, format="PNG")
            lines.append(json.dumps({"key": f"k{i}", "caption": f"a square of shade {i}", "file": f"{i}.png"}))
        archive.writestr("captions.jsonl", "\n".join(lines) + "\n")
    return path


def _database_url() -> str:
    conf = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{conf['NAME']}"
    return f"postgres://{conf['USER']}@{conf['HOST']}:{conf['PORT']}/{conf['NAME']}"


@pytest.fixture
def worker(redis_url, transactional_db, media_root, tmp_path):
    env = dict(
        os.environ,
        CELERY_BROKER_URL=redis_url,
        DATABASE_URL=_database_url(),
        MEDIA_ROOT=str(media_root),
        PARITY_VAR_DIR=str(tmp_path / "var"),
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "parity", "worker", "--pool", "solo",
         "-Q", "celery", "--loglevel", "WARNING", "--hostname", f"test-{os.getpid()}@%h"],
        env=env,
    )
    yield process
    process.terminate()
    process.wait(timeout=20)


def test_worker_imports_a_corpus_sent_through_redis(worker, workspace, redis_url, tmp_path, media_root,
                                                     monkeypatch):
    sent = []
    send_task = app.send_task

    def through_redis(name, args):
        """What the service sends, on the worker's broker rather than this process's."""
        with app.connection_for_write(redis_url) as broker:
            sent.append(send_task(name, args=args, connection=broker))

    monkeypatch.setattr(app, "send_task", through_redis)
    archive = _write_corpus(tmp_path / "corpus.zip", 4)
    with archive.open("rb") as upload:
        job = services.import_job_create(
            kind=ImportJob.Kind.CORPUS, workspace=workspace, upload=File(upload), filename="corpus.zip",
            total=4, name="via-worker",
        )
    assert len(sent) == 1  # the job's task, enqueued when its row was committed

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and worker.poll() is None:
        job.refresh_from_db()
        if job.status not in (ImportJob.Status.QUEUED, ImportJob.Status.RUNNING):
            break
        time.sleep(0.2)
    assert worker.poll() is None, "the worker exited"
    assert job.status == ImportJob.Status.SUCCEEDED, f"the job is {job.status} after 60 s: {job.error}"
    corpus = Corpus.objects.get(name="via-worker")
    assert (job.corpus_id, job.created, corpus.source) == (corpus.pk, 4, "corpus.zip")
    assert not list((media_root / import_jobs.UPLOADS).rglob("*.zip")), "the upload outlived its job"
    assert corpus.items.count() == 4
    assert sorted(corpus.items.values_list("key", flat=True)) == ["k0", "k1", "k2", "k3"]
    assert all((media_root / item.image.name).is_file() for item in corpus.items.all())
