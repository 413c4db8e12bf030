"""docker-compose.yml agrees with the settings, the entrypoint and the task routes.

Docker is not needed: the file is read as YAML, its variables are filled in the way
compose fills them, and the processes it names are checked against entrypoint.sh.
"""

import json
import re
import secrets
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
ENTRYPOINT = REPO / "platform" / "entrypoint.sh"
APP_SERVICES = {"migrate", "web", "worker", "gpu-worker", "beat"}

# What an operator must provide (compose stops with the `:?` message otherwise).
OPERATOR_VALUES = {
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
    "DJANGO_ALLOWED_HOSTS": "parity.example.org",
}
_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(value: str, given: dict[str, str]) -> str:
    """Compose's `${NAME}`, `${NAME:-default}` and `${NAME:?message}`."""

    def substitute(match: re.Match) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if given.get(name):
            return given[name]
        if op and op.endswith("?"):
            raise KeyError(f"{name}: {arg}")
        return arg if op else ""

    return _VARIABLE.sub(substitute, value)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def service_env(service: dict, given: dict[str, str]) -> dict[str, str]:
    """The container's environment; a name without a value stays unset when not given."""
    env = {}
    for name, value in (service.get("environment") or {}).items():
        if value is None:
            if name in given:
                env[name] = given[name]
        else:
            env[name] = interpolate(str(value), given)
    return env


def settings_names() -> set[str]:
    """Names that settings.py, gunicorn.conf.py or entrypoint.sh read from the environment."""
    sources = {
        "settings": (REPO / "platform" / "parity" / "settings.py").read_text(),
        "gunicorn": (REPO / "platform" / "gunicorn.conf.py").read_text(),
        "entrypoint": ENTRYPOINT.read_text(),
    }
    python_reads = r"(?:environ\.get\(|environ\[|env_\w+\()\s*[\"']([A-Z][A-Z0-9_]*)[\"']"
    names = set(re.findall(python_reads, sources["settings"] + sources["gunicorn"]))
    names |= set(re.findall(r"\$\{?([A-Z][A-Z0-9_]+)", sources["entrypoint"]))
    return names


def entrypoint_subcommands() -> set[str]:
    return set(re.findall(r"^ {4}([a-z][a-z-]*)\)\s*$", ENTRYPOINT.read_text(), flags=re.MULTILINE))


def test_services(compose):
    assert {"postgres", "redis", *APP_SERVICES} <= set(compose["services"])
    built_here = {
        name for name, service in compose["services"].items()
        if (service.get("build") or {}).get("dockerfile") == "platform/Dockerfile"
    }
    assert built_here == APP_SERVICES


def test_app_services_share_one_environment(compose):
    shared = compose["x-parity-env"]
    for name in APP_SERVICES:
        env = compose["services"][name]["environment"]
        assert {key: env.get(key) for key in shared} == shared, name
    assert shared["PARITY_ENV"] == "production"
    for required in ("DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS"):
        assert shared[required].startswith(f"${{{required}:?"), f"{required} must be required"


def test_every_variable_set_for_the_app_is_read(compose):
    read = settings_names()
    for name in APP_SERVICES:
        unread = set(compose["services"][name]["environment"]) - read
        assert not unread, f"{name} sets variables nothing reads: {sorted(unread)}"


def test_database_and_broker_urls_point_at_the_services(compose):
    env = service_env(compose["services"]["web"], OPERATOR_VALUES)
    database = urlsplit(env["DATABASE_URL"])
    postgres = service_env(compose["services"]["postgres"], OPERATOR_VALUES)
    assert database.scheme == "postgres"
    assert (database.hostname, database.port) == ("postgres", 5432)
    assert database.username == postgres["POSTGRES_USER"]
    assert database.password == postgres["POSTGRES_PASSWORD"]
    assert database.path.lstrip("/") == postgres["POSTGRES_DB"]
    broker = urlsplit(env["CELERY_BROKER_URL"])
    assert (broker.scheme, broker.hostname) == ("redis", "redis")


def test_rate_limits_count_in_redis_per_forwarded_client(compose):
    env = service_env(compose["services"]["web"], OPERATOR_VALUES)
    cache, broker = urlsplit(env["CACHE_URL"]), urlsplit(env["CELERY_BROKER_URL"])
    assert (cache.scheme, cache.hostname) == ("redis", "redis")
    assert cache.path != broker.path  # its own database: flushing one leaves the other
    assert env["PARITY_NUM_PROXIES"] == "1"
    # Unset unless the operator sets them, so that settings' defaults apply.
    assert "PARITY_RATE_JOIN" not in env and "PARITY_RATE_SUBMIT" not in env
    assert service_env(compose["services"]["web"], {**OPERATOR_VALUES, "PARITY_RATE_SUBMIT": "0"})[
        "PARITY_RATE_SUBMIT"
    ] == "0"


def test_compose_environment_passes_the_deploy_checks(compose, run_python, app_env):
    env = app_env | service_env(compose["services"]["web"], OPERATOR_VALUES)
    result = run_python(str(REPO / "manage.py"), "check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr

    code = (
        "import json; from django.conf import settings; print(json.dumps([settings.DATABASES['default']"
        "['ENGINE'], settings.CELERY_BROKER_URL, str(settings.MEDIA_ROOT), settings.SECURE_SSL_REDIRECT]))"
    )
    result = run_python("-c", code, env=env | {"DJANGO_SETTINGS_MODULE": "parity.settings"})
    assert result.returncode == 0, result.stderr
    engine, broker, media_root, ssl_redirect = json.loads(result.stdout)
    assert engine == "django.db.backends.postgresql"
    assert broker.startswith("redis://")
    assert ssl_redirect is True
    for name in ("web", "worker", "gpu-worker"):
        assert f"media:{media_root}" in compose["services"][name]["volumes"], name


def test_workers_consume_the_queues_tasks_are_routed_to(compose, entrypoint_argv, settings):
    def queues(service: str) -> set[str]:
        _, argv = entrypoint_argv(*compose["services"][service]["command"])
        assert argv[:4] == ["celery", "-A", "parity", "worker"]
        return set(argv[argv.index("-Q") + 1].split(","))

    assert queues("worker") == {settings.CELERY_TASK_DEFAULT_QUEUE} == {"celery"}
    assert queues("gpu-worker") == {"gpu"}
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    assert routed <= queues("worker") | queues("gpu-worker")
    generation_queues = {
        route["queue"] for task, route in settings.CELERY_TASK_ROUTES.items() if task.startswith("generation.")
    }
    assert generation_queues == {"gpu"}


def test_one_beat_sends_the_periodic_tasks(compose, entrypoint_argv, settings):
    _, argv = entrypoint_argv(*compose["services"]["beat"]["command"])
    assert argv[:4] == ["celery", "-A", "parity", "beat"]
    assert "deploy" not in compose["services"]["beat"]  # never replicated: each beat would send every task
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert tasks == {"analysis.tasks.plan_update_open_studies", "generation.tasks.generation_jobs_interrupt_lost_task"}
    # On the CPU worker's queue: a job is found lost when the GPU worker is the one gone.
    assert not set(settings.CELERY_TASK_ROUTES) & tasks


def test_gpu_worker_reserves_an_nvidia_gpu_and_builds_with_torch(compose):
    gpu_worker = compose["services"]["gpu-worker"]
    (device,) = gpu_worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert device["count"] in (1, "all")
    assert device["capabilities"] == ["gpu"]
    assert gpu_worker["build"]["args"]["EXTRAS"] == "generation"
    assert "args" not in compose["services"]["web"]["build"]
    assert gpu_worker["image"] != compose["services"]["web"]["image"]


def test_healthchecks(compose):
    services = compose["services"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["redis"]["healthcheck"]["test"][1:] == ["redis-cli", "ping"]
    test = services["web"]["healthcheck"]["test"]
    assert test[0] == "CMD" and test[-1] == "healthcheck"
    assert "/healthz" in ENTRYPOINT.read_text()


def test_start_order(compose):
    services = compose["services"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"]["restart"] == "no"
    for name in ("web", "worker", "gpu-worker"):
        depends_on = services[name]["depends_on"]
        assert depends_on["migrate"]["condition"] == "service_completed_successfully", name
        assert depends_on["redis"]["condition"] == "service_healthy", name


def test_named_volumes_are_declared(compose):
    declared = set(compose["volumes"])
    assert {"postgres-data", "redis-data", "media"} <= declared
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source in declared, f"{name}: volume {source!r} is not declared"


def test_commands_are_entrypoint_subcommands(compose):
    subcommands = entrypoint_subcommands()
    assert {"web", "worker", "gpu-worker", "migrate", "healthcheck"} <= subcommands
    for name in APP_SERVICES:
        assert compose["services"][name]["command"][0] in subcommands, name


def test_entrypoint_is_valid_posix_sh():
    result = subprocess.run(["sh", "-n", str(ENTRYPOINT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
