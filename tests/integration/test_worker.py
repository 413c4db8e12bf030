"""A real Celery worker, on a real Redis broker, runs a real import task."""

import json
import os
import subprocess
import sys
import time

import pytest
from django.db import connection
from PIL import Image

from generation.models import Corpus
from generation.tasks import corpus_import_task
from parity.celery import app


def _write_corpus(folder, count):
    folder.mkdir()
    lines = []
    for i in range(count):
        Image.new("RGB", (32, 32), (60 * i, 20, 200)).save(folder / f"{i}.png")
        lines.append(json.dumps({"key": f"k{i}", "caption": f"a square of shade {i}", "file": f"{i}.png"}))
    (folder / "captions.jsonl").write_text("\n".join(lines) + "\n")
    return folder


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


def test_worker_imports_a_corpus_sent_through_redis(worker, workspace, redis_url, tmp_path, media_root):
    folder = _write_corpus(tmp_path / "corpus", 4)
    with app.connection_for_write(redis_url) as broker:
        corpus_import_task.apply_async(args=[workspace.pk, "via-worker", str(folder)], connection=broker)

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and worker.poll() is None:
        corpus = Corpus.objects.filter(name="via-worker").first()
        if corpus is not None:
            break
        time.sleep(0.2)
    assert worker.poll() is None, "the worker exited"
    assert corpus is not None, "the worker did not import the corpus within 60 s"
    assert corpus.items.count() == 4
    assert sorted(corpus.items.values_list("key", flat=True)) == ["k0", "k1", "k2", "k3"]
    assert all((media_root / item.image.name).is_file() for item in corpus.items.all())
