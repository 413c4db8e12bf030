"""Helpers for tests that start fresh processes: settings are read once per process."""

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Variables that configure Parity, gunicorn or the entrypoint: a test's subprocess
# starts without the caller's values (`make test` sets DATABASE_URL, for one).
_CONFIG_PREFIXES = ("PARITY_", "DJANGO_", "DATABASE_", "CELERY_", "GUNICORN_")
_CONFIG_NAMES = {"MEDIA_ROOT", "PORT", "WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS"}


@pytest.fixture
def app_env(tmp_path) -> dict[str, str]:
    """A clean environment for a Parity process, with its var/ folder in tmp_path."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_CONFIG_PREFIXES) and name not in _CONFIG_NAMES
    }
    env["PARITY_VAR_DIR"] = str(tmp_path / "var")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


@pytest.fixture
def run_python(app_env, tmp_path) -> Callable[..., subprocess.CompletedProcess]:
    """Run `python ARGS` in a fresh interpreter, by default from a folder outside the repository."""

    def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
        return subprocess.run(
            [sys.executable, *args],
            env=app_env if env is None else env,
            cwd=tmp_path if cwd is None else cwd,
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run


ENTRYPOINT = REPO / "platform" / "entrypoint.sh"
# Stand-ins for the programs the entrypoint starts: each prints its name and
# arguments, one a line, after the settings module it was given.
_STUB = '#!/bin/sh\nprintf \'%s\\n\' "${DJANGO_SETTINGS_MODULE:-}" "$(basename "$0")" "$@"\n'


@pytest.fixture
def entrypoint_argv(app_env, tmp_path) -> Callable[..., tuple[str, list[str]]]:
    """Run entrypoint.sh with stand-ins; return (DJANGO_SETTINGS_MODULE, argv it ran)."""
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name in ("gunicorn", "celery", "django-admin"):
        (stubs / name).write_text(_STUB)
        (stubs / name).chmod(0o755)
    # nproc answers 7, so the default concurrency is recognisable.
    (stubs / "nproc").write_text("#!/bin/sh\necho 7\n")
    (stubs / "nproc").chmod(0o755)

    def run(*args: str, env: dict[str, str] | None = None) -> tuple[str, list[str]]:
        result = subprocess.run(
            ["sh", str(ENTRYPOINT), *args],
            env=app_env | {"PATH": f"{stubs}:/usr/bin:/bin"} | (env or {}),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
        settings_module, *argv = result.stdout.splitlines()
        return settings_module, argv

    return run
