"""platform/Dockerfile agrees with pyproject.toml, .dockerignore and docker-compose.yml.

Docker is not needed: the Dockerfile is read instruction by instruction.
"""

import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines, current = [], ""
    for line in (REPO / "platform" / "Dockerfile").read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip().removesuffix("\\") + " " if line.rstrip().endswith("\\") else line
        if not line.rstrip().endswith("\\"):
            lines.append(current)
            current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip()) for line in lines]


def env() -> dict[str, str]:
    values = {}
    for instruction, arguments in instructions():
        if instruction == "ENV":
            values |= dict(token.split("=", 1) for token in shlex.split(arguments))
    return values


def copied_sources() -> list[str]:
    sources = []
    for instruction, arguments in instructions():
        if instruction == "COPY" and "--from" not in arguments:
            sources += [s.rstrip("/") for s in shlex.split(arguments)[:-1] if not s.startswith("--")]
    return sources


def setuptools_config() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def top_level_package_folders() -> set[str]:
    package_dir = setuptools_config().get("package-dir", {})
    return {package_dir.get(name, name) for name in {p.split(".")[0] for p in setuptools_config()["packages"]}}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_base_image_and_user():
    steps = instructions()
    assert steps[0] == ("FROM", "python:3.11-slim")
    users = [arguments for instruction, arguments in steps if instruction == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}


def test_image_copies_every_package_and_the_process_files():
    sources = copied_sources()
    for needed in ["pyproject.toml", *top_level_package_folders(), "platform/gunicorn.conf.py", "platform/entrypoint.sh"]:
        assert needed in sources, f"the Dockerfile does not COPY {needed}"


def test_dockerignore_lets_the_copied_files_through():
    lines = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()]
    assert "*" in lines  # an allowlist: everything else (the virtualenv, var/) stays out
    allowed = [line[1:].rstrip("/") for line in lines if line.startswith("!")]
    for source in copied_sources():
        assert any(source == a or source.startswith(a + "/") for a in allowed), f"{source} is ignored"


def test_production_environment_and_paths(compose):
    values = env()
    assert values["PARITY_ENV"] == "production"
    assert values["DJANGO_SETTINGS_MODULE"] == "parity.settings"
    var = values["PARITY_VAR_DIR"]
    assert values["MEDIA_ROOT"] == f"{var}/media" == compose["x-parity-env"]["MEDIA_ROOT"]
    assert values["DJANGO_STATIC_ROOT"] == f"{var}/static"
    assert "DJANGO_SECRET_KEY" not in values, "a secret key in ENV would be in every container"


def test_secret_key_only_for_collectstatic():
    steps = [arguments for instruction, arguments in instructions() if "DJANGO_SECRET_KEY" in arguments]
    assert len(steps) == 1 and "collectstatic" in steps[0]


def test_extras_build_argument(compose):
    assert ("ARG", 'EXTRAS=""') in instructions()
    # `pip install .` without EXTRAS, `pip install .[generation]` with EXTRAS=generation.
    runs = [arguments for instruction, arguments in instructions() if instruction == "RUN"]
    assert any('pip install --no-compile ".${EXTRAS:+[$EXTRAS]}"' in arguments for arguments in runs)
    groups = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert compose["services"]["gpu-worker"]["build"]["args"]["EXTRAS"] in groups


def test_entrypoint_is_where_compose_expects_it(compose):
    steps = instructions()
    (entrypoint,) = [shlex.split(a.strip("[]").replace(",", " "))[0] for i, a in steps if i == "ENTRYPOINT"]
    copies = [shlex.split(a) for i, a in steps if i == "COPY" and "platform/entrypoint.sh" in a]
    assert copies and copies[0][-1].rstrip("/") == str(Path(entrypoint).parent)
    # gunicorn.conf.py is found beside the entrypoint.
    assert "platform/gunicorn.conf.py" in copies[0]
    assert compose["services"]["web"]["healthcheck"]["test"][1] == entrypoint
