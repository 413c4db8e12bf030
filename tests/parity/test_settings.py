"""Settings from the environment: production's refusals, deploy checks, parsing.

Settings are read once per process, so each case runs in a fresh interpreter with an
environment of its own.
"""

import json
import secrets
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MANAGE = str(REPO / "manage.py")

PRINT_SETTINGS = """
import json
from django.conf import settings
db = settings.DATABASES["default"]
print(json.dumps({
    "engine": db["ENGINE"], "name": str(db["NAME"]), "user": db.get("USER"),
    "host": db.get("HOST"), "port": db.get("PORT"),
    "broker": settings.CELERY_BROKER_URL,
    "broker_options": settings.CELERY_BROKER_TRANSPORT_OPTIONS,
    "media_root": str(settings.MEDIA_ROOT), "static_root": str(settings.STATIC_ROOT),
    "debug": settings.DEBUG, "ssl_redirect": getattr(settings, "SECURE_SSL_REDIRECT", False),
    "cache": settings.CACHES["default"], "rate_join": settings.PARITY_RATE_JOIN,
    "rate_submit": settings.PARITY_RATE_SUBMIT, "num_proxies": settings.PARITY_NUM_PROXIES,
}))
"""


def production_env(app_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return app_env | {
        "PARITY_ENV": "production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "parity.example.org",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'parity.sqlite3'}",
        # Nothing connects to it during the checks.
        "CACHE_URL": "redis://redis.example:6379/1",
    }


# Runs each file as Python, as Django imports settings and gunicorn executes its conf,
# once per environment, in one interpreter; what it observes is every public value
# the file leaves behind, or the error it raised.
_OBSERVE = r"""
import json, os, runpy, sys, types
*paths, cases = sys.argv[1:]

def plain(value):
    return json.loads(json.dumps(value, default=str))

def observe(path, env):
    os.environ.clear()
    os.environ.update(env)
    try:
        names = runpy.run_path(path)
    except BaseException as exc:  # gunicorn.conf.py refuses a bad value with SystemExit
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {
        name: plain(value) for name, value in names.items()
        if not name.startswith("_") and not callable(value) and not isinstance(value, types.ModuleType)
    }

with open(cases) as file:
    print(json.dumps([{path: observe(path, env) for path in paths} for env in json.load(file)]))
"""
SETTINGS_FILE = REPO / "platform" / "parity" / "settings.py"


def observe(run_python, paths: list[str], envs: list[dict[str, str]]) -> list[dict[str, dict]]:
    """For each environment, exactly that environment: {path: the values the file sets, or {"error": ...}}."""
    with tempfile.TemporaryDirectory() as folder:
        cases = Path(folder) / "cases.json"
        cases.write_text(json.dumps(envs))
        result = run_python("-c", _OBSERVE, *map(str, paths), str(cases))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def read_settings(run_python, env: dict[str, str]) -> dict:
    result = run_python("-c", PRINT_SETTINGS, env=env | {"DJANGO_SETTINGS_MODULE": "parity.settings"})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("secret", [None, ""])
def test_production_refuses_to_start_without_a_secret_key(run_python, app_env, tmp_path, secret):
    env = production_env(app_env, tmp_path)
    del env["DJANGO_SECRET_KEY"]
    if secret is not None:
        env["DJANGO_SECRET_KEY"] = secret
    result = run_python(MANAGE, "check", env=env)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_production_settings_pass_the_deploy_checks(run_python, app_env, tmp_path):
    result = run_python(MANAGE, "check", "--deploy", "--fail-level", "WARNING", env=production_env(app_env, tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_without_a_shared_cache_fails_the_deploy_checks(run_python, app_env, tmp_path):
    env = production_env(app_env, tmp_path)
    del env["CACHE_URL"]
    result = run_python(MANAGE, "check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode != 0
    assert "annotate.W001" in result.stderr and "CACHE_URL" in result.stderr
    # Only a warning: the processes still start, each with its own count.
    assert run_python(MANAGE, "check", env=env).returncode == 0


def test_development_needs_no_configuration(run_python, app_env, tmp_path):
    settings = read_settings(run_python, app_env)
    assert settings["debug"] is True
    assert settings["engine"] == "django.db.backends.sqlite3"
    assert Path(settings["name"]).parent == tmp_path / "var"


@pytest.mark.parametrize(
    "name, value",
    [
        ("DJANGO_DEBUG", "maybe"),
        ("PARITY_ENV", "staging"),
        ("DATABASE_CONN_MAX_AGE", "forever"),
        ("PARITY_MAX_IMAGE_BYTES", "32MB"),
        ("PARITY_RATE_JOIN", "30 per minute"),
        ("PARITY_RATE_SUBMIT", "2/w"),
        ("PARITY_RATE_SUBMIT", "2/0m"),
        ("PARITY_NUM_PROXIES", "one"),
        ("CACHE_URL", "memcached://m:11211"),
        ("PARITY_GENERATION_BACKENDS", "bulitin"),
        ("PARITY_GENERATION_BACKENDS", "upload"),
        ("PARITY_GENERATION_BACKENDS", "fancy=my lab.Fancy"),
        ("PARITY_CALLABLES", "os.system"),
    ],
)
def test_a_bad_value_names_its_variable(run_python, app_env, name, value):
    result = run_python(MANAGE, "check", env=app_env | {name: value})
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert "ImproperlyConfigured" in last_line
    assert name in last_line and repr(value) in last_line


def test_database_url_chooses_postgresql(run_python, app_env):
    settings = read_settings(run_python, app_env | {"DATABASE_URL": "postgres://u:p@h:5/db"})
    assert settings["engine"] == "django.db.backends.postgresql"
    assert (settings["name"], settings["user"], settings["host"], settings["port"]) == ("db", "u", "h", 5)


def test_default_broker_is_the_filesystem_under_the_var_folder(run_python, app_env, tmp_path):
    settings = read_settings(run_python, app_env)
    assert settings["broker"].startswith("filesystem://")
    folders = [settings["broker_options"][key] for key in ("data_folder_in", "data_folder_out", "processed_folder")]
    for folder in folders:
        assert Path(folder).is_relative_to(tmp_path / "var")


def test_redis_broker_takes_a_visibility_timeout_not_filesystem_options(run_python, app_env):
    settings = read_settings(
        run_python,
        app_env | {"CELERY_BROKER_URL": "redis://redis:6379/0", "CELERY_VISIBILITY_TIMEOUT": "7200"},
    )
    assert settings["broker"] == "redis://redis:6379/0"
    assert settings["broker_options"] == {"visibility_timeout": 7200}


def test_media_and_static_roots_follow_the_environment(run_python, app_env, tmp_path):
    settings = read_settings(
        run_python,
        app_env | {"MEDIA_ROOT": str(tmp_path / "m"), "DJANGO_STATIC_ROOT": str(tmp_path / "s")},
    )
    assert settings["media_root"] == str(tmp_path / "m")
    assert settings["static_root"] == str(tmp_path / "s")


def test_rate_limits_and_cache_default_to_one_process(run_python, app_env):
    settings = read_settings(run_python, app_env)
    assert (settings["rate_join"], settings["rate_submit"]) == ("30/m", "120/m")
    assert settings["cache"]["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"
    assert settings["num_proxies"] == 0
    result = run_python(MANAGE, "check", "--fail-level", "WARNING", env=app_env)
    assert result.returncode == 0, result.stdout + result.stderr  # `make run` starts without a warning


@pytest.mark.parametrize(
    "join, submit, expected",
    [
        ("0", "", (None, None)),
        (" 10/5m ", "500/h", ("10/5m", "500/h")),
        ("0/m", "3/s", (None, "3/s")),
    ],
)
def test_rate_limits_parse_and_zero_or_empty_turns_them_off(run_python, app_env, join, submit, expected):
    settings = read_settings(run_python, app_env | {"PARITY_RATE_JOIN": join, "PARITY_RATE_SUBMIT": submit})
    assert (settings["rate_join"], settings["rate_submit"]) == expected


def test_cache_url_chooses_redis(run_python, app_env):
    settings = read_settings(run_python, app_env | {"CACHE_URL": "redis://redis:6379/1"})
    assert settings["cache"] == {
        "BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://redis:6379/1"
    }


PRINT_GENERATION = """
import json
from django.conf import settings
print(json.dumps([settings.PARITY_GENERATION_BACKENDS, settings.PARITY_CALLABLES, str(settings.PARITY_DIFFUSERS_DIR)]))
"""


def test_generation_backends_and_callables_are_the_operators_names(run_python, app_env, tmp_path):
    env = app_env | {"DJANGO_SETTINGS_MODULE": "parity.settings"}
    result = run_python("-c", PRINT_GENERATION, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        {"builtin": "builtin", "diffusers": "diffusers"}, {}, str(tmp_path / "var" / "diffusers")
    ]
    result = run_python("-c", PRINT_GENERATION, env=env | {
        "PARITY_GENERATION_BACKENDS": " builtin, callable ,fancy=mylab.backends.Fancy",
        "PARITY_CALLABLES": "sd15=mylab.sampling:generate,tiny = mylab.tiny.generate",
        "PARITY_DIFFUSERS_DIR": str(tmp_path / "pipelines"),
    })
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        {"builtin": "builtin", "callable": "callable", "fancy": "mylab.backends.Fancy"},
        {"sd15": "mylab.sampling:generate", "tiny": "mylab.tiny.generate"},
        str(tmp_path / "pipelines"),
    ]
