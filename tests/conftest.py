"""Fixtures shared by the whole suite: services, media in a temporary folder, workspaces."""

import os
import shutil

import pytest

from tests.services import Redis, require_services

# Under pytest-xdist (`make test` runs two workers), each worker keeps torch to one
# thread: two workers share the machine's cores, and OpenMP threads that wait on each
# other while another process holds a core run several times slower (on two busy
# cores, 200 training steps of the demo's L took 225 s with two threads, 36 s with
# one; the demo test, 271 s alone, took 1,108 s beside the other worker). Set before
# torch is imported, so that torch and every process a test starts inherit it.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")


def pytest_collection_modifyitems(config, items):
    """The tests marked `first` run before the others (in their order), so that under
    xdist the longest one starts at once on one worker while the other takes the rest."""
    items[:] = sorted(items, key=lambda item: item.get_closest_marker("first") is None)


def service_missing(reason: str) -> None:
    """Skip, or fail where PARITY_REQUIRE_SERVICES=1 says services must be there (CI)."""
    if require_services():
        pytest.fail(f"service missing with PARITY_REQUIRE_SERVICES=1: {reason}")
    pytest.skip(f"service missing: {reason}")


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    """Every test stores files in its own folder, so cleanup checks can list it."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    return settings.MEDIA_ROOT


@pytest.fixture(autouse=True)
def _rate_limit_counts():
    """Every test starts with no requests counted, so that one test's requests never
    push another's over a rate limit (the cache outlives a test's rolled-back data)."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def media_root(_media_root):
    return _media_root


@pytest.fixture
def postgres_only(db):
    from django.db import connection

    if connection.vendor != "postgresql":
        service_missing(
            "this test needs PostgreSQL: install postgresql (make test then starts one) or set DATABASE_URL"
        )


@pytest.fixture(scope="session")
def redis_url():
    try:
        server = Redis()
    except FileNotFoundError as exc:
        service_missing(str(exc))
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def chromium_path():
    path = os.environ.get("PARITY_CHROMIUM", "/usr/bin/chromium")
    if not shutil.which(path):
        service_missing(f"{path} not found (apt-get install chromium)")
    return path


@pytest.fixture
def workspace(db):
    from workspaces.models import Workspace

    return Workspace.objects.create(name="Lab", slug="lab")


@pytest.fixture
def sent_tasks(monkeypatch):
    """The (name, args) of each task sent to the workers, in place of sending it.

    A name that no worker would run fails the test where it is sent.
    """
    from parity.celery import app

    sent = []

    def send_task(name, args=(), **options):
        assert name in app.tasks, f"no task {name}"
        sent.append((name, tuple(args)))

    monkeypatch.setattr(app, "send_task", send_task)
    return sent
