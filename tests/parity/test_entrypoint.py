"""The image's entrypoint: what each subcommand starts, and a real gunicorn behind it."""

import secrets
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENTRYPOINT = REPO / "platform" / "entrypoint.sh"


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_web_runs_gunicorn_with_the_conf_beside_the_entrypoint(entrypoint_argv):
    settings_module, argv = entrypoint_argv("web")
    assert settings_module == "parity.settings"
    assert argv == ["gunicorn", "-c", str(REPO / "platform" / "gunicorn.conf.py"), "parity.wsgi"]


def test_no_argument_means_web(entrypoint_argv):
    assert entrypoint_argv()[1][0] == "gunicorn"


def test_worker_consumes_the_cpu_queue(entrypoint_argv):
    _, argv = entrypoint_argv("worker")
    assert argv[:4] == ["celery", "-A", "parity", "worker"]
    assert option(argv, "-Q") == "celery"
    assert option(argv, "--concurrency") == "7"  # nproc's answer
    _, argv = entrypoint_argv("worker", env={"CELERY_WORKER_CONCURRENCY": "3"})
    assert option(argv, "--concurrency") == "3"


def test_gpu_worker_runs_one_job_at_a_time_on_the_gpu_queue(entrypoint_argv):
    _, argv = entrypoint_argv("gpu-worker", env={"CELERY_WORKER_CONCURRENCY": "3"})
    assert argv[:4] == ["celery", "-A", "parity", "worker"]
    assert option(argv, "-Q") == "gpu"
    assert option(argv, "--concurrency") == "1"
    # in the worker's own process, not a daemonic prefork child: the job starts PNG encoder processes
    assert option(argv, "--pool") == "threads"


def test_migrate(entrypoint_argv):
    assert entrypoint_argv("migrate")[1] == ["django-admin", "migrate", "--noinput"]


def test_arguments_after_a_subcommand_are_passed_on(entrypoint_argv):
    assert entrypoint_argv("worker", "--autoscale", "4,1")[1][-2:] == ["--autoscale", "4,1"]
    assert entrypoint_argv("migrate", "annotate")[1][-1] == "annotate"


def test_other_commands_run_as_they_are(entrypoint_argv):
    settings_module, argv = entrypoint_argv("django-admin", "createsuperuser")
    assert settings_module == "parity.settings"
    assert argv == ["django-admin", "createsuperuser"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_web_serves_healthz_in_production(app_env, tmp_path):
    """gunicorn from the real conf, production settings, SSL redirect on, as compose runs it."""
    port = free_port()
    env = app_env | {
        "PARITY_ENV": "production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "parity.example.org",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'parity.sqlite3'}",
        "CELERY_BROKER_URL": "memory://",
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        # gunicorn puts its control socket under $HOME/.gunicorn.
        "HOME": str(tmp_path),
    }
    web = subprocess.Popen(
        ["sh", str(ENTRYPOINT), "web"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            check = subprocess.run(
                ["sh", str(ENTRYPOINT), "healthcheck"], env=env, capture_output=True, text=True, timeout=30
            )
            if check.returncode == 0:
                break
            assert web.poll() is None, f"gunicorn exited:\n{web.stdout.read()}"
            assert time.monotonic() < deadline, f"no healthy answer: {check.stderr}"
            time.sleep(0.3)

        # Plain HTTP that does not come through the TLS proxy is sent to HTTPS.
        request = urllib.request.Request(f"http://127.0.0.1:{port}/healthz", headers={"Host": "parity.example.org"})
        opener = urllib.request.build_opener(NoRedirect)
        with pytest.raises(urllib.error.HTTPError) as redirect:
            opener.open(request, timeout=10)
        assert redirect.value.code == 301
        assert redirect.value.headers["Location"] == "https://parity.example.org/healthz"
    finally:
        web.terminate()
        try:
            output, _ = web.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            web.kill()
            output, _ = web.communicate()
    # The access log goes to standard output.
    assert "GET /healthz" in output


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
