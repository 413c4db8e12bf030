"""docker-compose.yml agrees with the image, the settings, the entrypoint and Celery.

Docker is not needed: the file is read as YAML, its variables are filled in the way
compose fills them, and each container's environment (the image's ENV, then compose's)
is handed to what the container runs: the entrypoint (with stand-ins for the programs
it starts), settings.py and gunicorn.conf.py (executed as Django and gunicorn do), and
the Celery app the workers load.
"""

import http.server
import json
import os
import re
import secrets
import shlex
import socket
import subprocess
import threading
import tomllib
from importlib.util import find_spec
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.requirements import Requirement

from tests.parity.test_image import image_env
from tests.parity.test_settings import SETTINGS_FILE, observe

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
ENTRYPOINT = REPO / "platform" / "entrypoint.sh"
APP_SERVICES = {"migrate", "web", "worker", "gpu-worker", "beat"}
# The processes that read and write media: uploads, imports, generation.
MEDIA_SERVICES = ("web", "worker", "gpu-worker")

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
    """Compose's environment for the service; a name without a value stays unset when not given."""
    env = {}
    for name, value in (service.get("environment") or {}).items():
        if value is None:
            if name in given:
                env[name] = given[name]
        else:
            env[name] = interpolate(str(value), given)
    return env


def container_env(service: dict, given: dict[str, str] = OPERATOR_VALUES) -> dict[str, str]:
    """What the container's processes see: the image's ENV, overridden by compose's environment."""
    built_here = (service.get("build") or {}).get("dockerfile") == "platform/Dockerfile"
    return (image_env() if built_here else {}) | service_env(service, given)


def volumes(service: dict) -> dict[str, str]:
    """Compose's short syntax, `source:target[:mode]`, as {target: source}."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        mounts[target] = source
    return mounts


def settings_seen(run_python, *envs: dict[str, str]) -> list[dict]:
    seen = [observation[str(SETTINGS_FILE)] for observation in observe(run_python, [SETTINGS_FILE], list(envs))]
    for values in seen:
        assert "error" not in values, values
    return seen


# The Celery app as `celery -A NAME` finds it, with the modules a worker imports when it
# starts: the tasks it has, the queue Celery's router sends each to, and beat's schedule.
_CELERY = """
import json, sys
from celery.app.utils import find_app
app = find_app(sys.argv[1])
app.loader.import_default_modules()
print(json.dumps({
    "queues": {name: app.amqp.router.route({}, name)["queue"].name for name in app.tasks},
    "beat": [entry["task"] for entry in app.conf.beat_schedule.values()],
    "routes": list(app.conf.task_routes or {}),
    "default_queue": app.conf.task_default_queue,
}))
"""
_celery_seen: dict[str, dict] = {}


def celery_seen(run_python, app_name: str, service: dict) -> dict:
    """What `celery -A app_name` loads in the service's container (run from the repository,
    which the image installs as a package); one run per distinct environment."""
    env = {"PATH": os.environ["PATH"]} | container_env(service)
    key = json.dumps([app_name, env], sort_keys=True)
    if key not in _celery_seen:
        result = run_python("-c", _CELERY, app_name, env=env, cwd=REPO)
        assert result.returncode == 0, result.stderr
        _celery_seen[key] = json.loads(result.stdout)
    return _celery_seen[key]


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


# ------------------------------------------------------------------------------
# Services and their environment
# ------------------------------------------------------------------------------
def test_services(compose):
    assert {"postgres", "redis", *APP_SERVICES} <= set(compose["services"])
    built_here = {
        name for name, service in compose["services"].items()
        if (service.get("build") or {}).get("dockerfile") == "platform/Dockerfile"
    }
    assert built_here == APP_SERVICES
    for name in APP_SERVICES:
        build = compose["services"][name]["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).is_file(), name


def test_app_services_share_one_environment(compose):
    shared = compose["x-parity-env"]
    for name in APP_SERVICES:
        env = compose["services"][name]["environment"]
        assert {key: env.get(key) for key in shared} == shared, name
    # Without the operator's value compose refuses to start, rather than pass an empty one.
    for required in ("DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS"):
        given = {name: value for name, value in OPERATOR_VALUES.items() if name != required}
        with pytest.raises(KeyError, match=required):
            service_env(compose["services"]["web"], given)


# Values of different kinds, so that one of them changes whatever a variable sets.
_PROBES = ["", "0", "1", "2", "off", "probe", "/probe", "probe=probe.module:attribute", "redis://probe:6379/2"]


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_every_variable_compose_passes_changes_what_the_container_runs(compose, name, run_python, entrypoint_argv):
    """Each variable, unset or set to other values, must change what the entrypoint runs, a
    setting, or gunicorn's configuration: a variable nothing reads is a setting that is not one."""
    service = compose["services"][name]
    base = container_env(service)
    started = entrypoint_argv(*service["command"], env=base)
    settings_module, argv = started
    # The files that read this container's environment, as the entrypoint names them.
    files = [find_spec(settings_module).origin] + ([option(argv, "-c")] if argv[0] == "gunicorn" else [])
    variants = {
        variable: [{k: v for k, v in base.items() if k != variable}] + [base | {variable: p} for p in _PROBES]
        for variable in service["environment"]
    }
    seen = observe(run_python, files, [base] + [env for envs in variants.values() for env in envs])
    assert all("error" not in seen[0][path] for path in files), seen[0]
    changed = iter(seen[1:])
    readers = {}
    for variable, envs in variants.items():
        readers[variable] = {path for observation in [next(changed) for _ in envs]
                             for path in files if observation[path] != seen[0][path]}
        if not readers[variable] and any(entrypoint_argv(*service["command"], env=env) != started for env in envs):
            readers[variable] = {"entrypoint"}
    unread = sorted(variable for variable, read_by in readers.items() if not read_by)
    assert not unread, f"{name} passes variables that change nothing: {unread}"
    # The settings shared by every process are settings.py's.
    assert all(readers[variable] >= {str(SETTINGS_FILE)} for variable in compose["x-parity-env"])


def test_database_broker_and_cache_are_the_compose_services(compose, run_python):
    services = compose["services"]
    (seen,) = settings_seen(run_python, container_env(services["web"]))
    database = seen["DATABASES"]["default"]
    postgres = service_env(services["postgres"], OPERATOR_VALUES)
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert services[database["HOST"]]["image"].startswith("postgres:")
    assert database["PORT"] == 5432  # the postgres image's port
    assert (database["USER"], database["PASSWORD"], database["NAME"]) == (
        postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"], postgres["POSTGRES_DB"]
    )
    broker = urlsplit(seen["CELERY_BROKER_URL"])
    assert seen["CACHES"]["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    cache = urlsplit(seen["CACHES"]["default"]["LOCATION"])
    for url in (broker, cache):
        assert url.scheme == "redis" and url.port == 6379  # the redis image's port
        assert services[url.hostname]["image"].startswith("redis:")
    assert cache.path != broker.path  # its own database: flushing one leaves the other


def test_rate_limits_count_in_redis_per_forwarded_client(compose, run_python):
    web = compose["services"]["web"]
    env = container_env(web)
    rates = [variable for variable in web["environment"] if variable.startswith("PARITY_RATE_")]
    assert rates
    # Unset unless the operator sets them, so that settings' defaults apply: an empty value
    # would turn a limit off.
    seen, defaults, turned_off = settings_seen(
        run_python,
        env,
        {k: v for k, v in env.items() if k not in rates},
        container_env(web, OPERATOR_VALUES | {"PARITY_RATE_SUBMIT": "0"}),
    )
    for rate in rates:
        assert seen[rate] == defaults[rate] is not None, rate
    assert turned_off["PARITY_RATE_SUBMIT"] is None and turned_off["PARITY_RATE_JOIN"] == seen["PARITY_RATE_JOIN"]
    assert seen["PARITY_NUM_PROXIES"] == 1  # the operator's TLS proxy
    assert seen["CACHES"]["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"


def test_compose_environment_passes_the_deploy_checks(compose, run_python, app_env):
    env = app_env | container_env(compose["services"]["web"])
    result = run_python(str(REPO / "manage.py"), "check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    names = sorted(APP_SERVICES)
    for name, seen in zip(names, settings_seen(run_python, *(container_env(compose["services"][n]) for n in names))):
        assert seen["PRODUCTION"] is True and seen["DEBUG"] is False, name
        assert seen["SECURE_SSL_REDIRECT"] is True, name


def test_media_is_one_volume_mounted_where_each_process_keeps_media(compose, run_python):
    services = compose["services"]
    seen = settings_seen(run_python, *(container_env(services[name]) for name in MEDIA_SERVICES))
    sources = set()
    for name, settings in zip(MEDIA_SERVICES, seen):
        mounts = volumes(services[name])
        assert settings["MEDIA_ROOT"] in mounts, f"{name}: no volume on {settings['MEDIA_ROOT']}"
        sources.add(mounts[settings["MEDIA_ROOT"]])
    (source,) = sources
    assert source in compose["volumes"]  # a named volume, the same for all


# ------------------------------------------------------------------------------
# Processes
# ------------------------------------------------------------------------------
def test_commands_are_entrypoint_subcommands(compose, entrypoint_argv):
    """Each command starts its program; one the entrypoint did not know would be run as is."""
    for name in APP_SERVICES:
        command = compose["services"][name]["command"]
        _, argv = entrypoint_argv(*command, env=container_env(compose["services"][name]))
        assert argv[0] in {"gunicorn", "celery", "django-admin"} and argv[0] != command[0], name


def test_workers_consume_the_queues_tasks_are_routed_to(compose, entrypoint_argv, run_python):
    consumed, known = {}, {}
    for name in ("worker", "gpu-worker"):
        service = compose["services"][name]
        _, argv = entrypoint_argv(*service["command"], env=container_env(service))
        assert argv[:2] == ["celery", "-A"] and argv[3] == "worker"
        consumed[name] = set(option(argv, "-Q").split(","))
        known[name] = celery_seen(run_python, argv[2], service)
    assert consumed["worker"] == {known["worker"]["default_queue"]} == {"celery"}
    assert consumed["gpu-worker"] == {"gpu"}
    for name, celery in known.items():
        # A route names a task the workers have: a renamed task would silently lose its route.
        assert set(celery["routes"]) <= set(celery["queues"]), name
        everywhere = set().union(*consumed.values())
        unconsumed = {task: queue for task, queue in celery["queues"].items() if queue not in everywhere}
        assert not unconsumed, f"{name}: tasks no worker takes: {unconsumed}"
    # Generation jobs, and only the generation domain's tasks, go to the GPU.
    gpu_tasks = {task for task, queue in known["gpu-worker"]["queues"].items() if queue in consumed["gpu-worker"]}
    assert gpu_tasks and all(task.startswith("generation.") for task in gpu_tasks)


def test_one_beat_sends_the_periodic_tasks_to_the_cpu_worker(compose, entrypoint_argv, run_python):
    beat = compose["services"]["beat"]
    _, argv = entrypoint_argv(*beat["command"], env=container_env(beat))
    assert argv[:2] == ["celery", "-A"] and argv[3] == "beat"
    assert "deploy" not in beat  # never replicated: each beat would send every task
    scheduled = celery_seen(run_python, argv[2], beat)["beat"]
    assert scheduled
    worker = compose["services"]["worker"]
    _, worker_argv = entrypoint_argv(*worker["command"], env=container_env(worker))
    known = celery_seen(run_python, worker_argv[2], worker)["queues"]
    for task in scheduled:
        assert task in known, f"beat sends {task}, which no worker has"
        # On the CPU worker's queue: a job is found lost when the GPU worker is the one gone.
        assert known[task] in option(worker_argv, "-Q").split(","), task


def test_gpu_worker_reserves_an_nvidia_gpu_and_builds_with_torch(compose):
    gpu_worker = compose["services"]["gpu-worker"]
    (device,) = gpu_worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert device["count"] in (1, "all")
    assert device["capabilities"] == ["gpu"]
    groups = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    extras = gpu_worker["build"]["args"]["EXTRAS"].split(",")
    assert "torch" in {Requirement(r).name for extra in extras for r in groups[extra]}
    assert "args" not in compose["services"]["web"]["build"]
    assert gpu_worker["image"] != compose["services"]["web"]["image"]


# ------------------------------------------------------------------------------
# Health checks, ports, start order, volumes
# ------------------------------------------------------------------------------
def test_postgres_and_redis_healthchecks(compose):
    services = compose["services"]
    kind, script = services["postgres"]["healthcheck"]["test"]
    argv = shlex.split(script)
    postgres = service_env(services["postgres"], OPERATOR_VALUES)
    assert kind == "CMD-SHELL" and argv[0] == "pg_isready"
    # Asks for the database and user the postgres image creates.
    assert (option(argv, "-U"), option(argv, "-d")) == (postgres["POSTGRES_USER"], postgres["POSTGRES_DB"])
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Recorder(http.server.BaseHTTPRequestHandler):
    status = 200
    requests: list = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.requests.append((self.path, dict(self.headers)))
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.django_db
def test_web_healthcheck_asks_for_a_page_that_answers_on_gunicorns_port(compose, run_python, app_env, client, settings):
    web = compose["services"]["web"]
    # The program is the image's entrypoint (test_image checks it); the arguments are run here.
    kind, _program, *args = web["healthcheck"]["test"]
    assert kind == "CMD"
    port = free_port()
    env = app_env | container_env(web) | {"PORT": str(port)}
    conf = REPO / "platform" / "gunicorn.conf.py"
    bound = observe(run_python, [conf], [container_env(web), container_env(web) | {"PORT": str(port)}])
    # gunicorn listens on compose's container port, and on PORT when it is set, as the check asks.
    published = interpolate(web["ports"][0], {}).split(":")[-1].split("/")[0]
    assert bound[0][str(conf)]["bind"].rsplit(":", 1)[1] == published
    assert bound[1][str(conf)]["bind"].rsplit(":", 1)[1] == str(port)

    server = http.server.HTTPServer(("127.0.0.1", port), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        _Recorder.requests = []
        for status, healthy in ((200, True), (503, False)):
            _Recorder.status = status
            check = subprocess.run(["sh", str(ENTRYPOINT), *args], env=env, capture_output=True, text=True, timeout=30)
            assert (check.returncode == 0) == healthy, (status, check.stderr)
    finally:
        server.shutdown()
        server.server_close()

    # The request it made, asked of the app with this container's production settings for hosts
    # and HTTPS (without X-Forwarded-Proto it would be redirected): answered 200.
    path, headers = _Recorder.requests[0]
    (production,) = settings_seen(run_python, container_env(web))
    settings.ALLOWED_HOSTS = production["ALLOWED_HOSTS"]
    settings.SECURE_SSL_REDIRECT = production["SECURE_SSL_REDIRECT"]
    settings.SECURE_PROXY_SSL_HEADER = tuple(production["SECURE_PROXY_SSL_HEADER"])
    sent = {name: value for name, value in headers.items() if name.lower() == "host" or name.lower().startswith("x-")}
    response = client.get(path, headers=sent)
    assert response.status_code == 200, (path, headers, response.status_code)


def test_start_order(compose):
    services = compose["services"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"]["restart"] == "no"
    for name in ("web", "worker", "gpu-worker", "beat"):
        depends_on = services[name]["depends_on"]
        assert depends_on["migrate"]["condition"] == "service_completed_successfully", name
        assert depends_on["redis"]["condition"] == "service_healthy", name


def test_named_volumes_are_declared(compose):
    declared = set(compose["volumes"])
    assert {"postgres-data", "redis-data", "media"} <= declared
    for name, service in compose["services"].items():
        for source in volumes(service).values():
            assert source in declared, f"{name}: volume {source!r} is not declared"


def test_entrypoint_is_valid_posix_sh():
    result = subprocess.run(["sh", "-n", str(ENTRYPOINT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
