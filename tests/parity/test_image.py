"""platform/Dockerfile agrees with pyproject.toml, .dockerignore, settings and docker-compose.yml.

Docker is not needed. The Dockerfile is read instruction by instruction, and what can
run here is run: its COPY steps are replayed into a folder standing for the image's
filesystem (through .dockerignore, as the build context is), the project is installed
from that copy the way its RUN step installs it, collectstatic runs with the image's
environment, and its shell commands run with stand-ins for pip. What stays textual is
what only a Docker build can do: the base image, the user, and ownership.
"""

import json
import os
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from importlib.util import find_spec
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from tests.parity.test_settings import SETTINGS_FILE, observe

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "platform" / "Dockerfile"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


# ------------------------------------------------------------------------------
# Reading the Dockerfile
# ------------------------------------------------------------------------------
def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        # Docker drops comment and empty lines even inside a continued instruction.
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip().removesuffix("\\") + " "
            continue
        lines.append(current + line)
        current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip()) for line in lines]


def key_values(arguments: str) -> dict[str, str]:
    """ENV's or ARG's `NAME=value ...` (ARG NAME alone: no default, None)."""
    tokens = shlex.split(arguments)
    if "=" not in tokens[0] and len(tokens) > 1:  # the old `ENV NAME value` form
        return {tokens[0]: arguments.split(None, 1)[1]}
    return {name: value for name, _, value in (token.partition("=") for token in tokens)}


def image_env(root: Path | None = None) -> dict[str, str]:
    """The environment every container of the image starts with (ENV).

    With root, the image's absolute paths are taken to lie under it, as the replay puts them.
    """
    values = {}
    for instruction, arguments in instructions():
        if instruction == "ENV":
            values |= key_values(arguments)
    if root is not None:
        values = {name: f"{root}{value}" if value.startswith("/") else value for name, value in values.items()}
    return values


def shell_commands(script: str) -> list[str]:
    """A RUN's simple commands: its text split at `&&` and `;` outside quotes."""
    commands, current, quote, i = [], "", None, 0
    while i < len(script):
        char = script[i]
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "\\":
            current, i = current + script[i : i + 2], i + 2
            continue
        elif script.startswith("&&", i) or char == ";":
            commands.append(current)
            current, i = "", i + (2 if char == "&" else 1)
            continue
        current, i = current + char, i + 1
    commands.append(current)
    return [command.strip() for command in commands if command.strip()]


def run_commands() -> list[tuple[int, str]]:
    """(index of its RUN step, simple command) for every command of every RUN."""
    return [
        (index, command)
        for index, (instruction, arguments) in enumerate(instructions())
        if instruction == "RUN"
        for command in shell_commands(arguments)
    ]


def split_assignments(words: list[str]) -> tuple[dict[str, str], list[str]]:
    """`NAME=value ... command args`: the variables set for this one command, and the command."""
    assignments = {}
    while words and re.match(r"[A-Za-z_]\w*=", words[0]):
        name, _, value = words[0].partition("=")
        assignments[name] = value
        words = words[1:]
    return assignments, words


def the_command(predicate) -> tuple[int, str]:
    (found,) = [(index, command) for index, command in run_commands() if predicate(shlex.split(command))]
    return found


def is_project_install(words: list[str]) -> bool:
    return words[:2] == ["pip", "install"] and "-r" not in words


def is_collectstatic(words: list[str]) -> bool:
    return split_assignments(words)[1][:2] == ["django-admin", "collectstatic"]


# ------------------------------------------------------------------------------
# The build context and the COPY steps
# ------------------------------------------------------------------------------
def _glob_regex(pattern: str) -> re.Pattern:
    regex, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex, i = regex + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            regex, i = regex + ".*", i + 2
        elif pattern[i] == "*":
            regex, i = regex + "[^/]*", i + 1
        elif pattern[i] == "?":
            regex, i = regex + "[^/]", i + 1
        else:
            regex, i = regex + re.escape(pattern[i]), i + 1
    return re.compile(regex)


def dockerignore_rules() -> list[tuple[bool, re.Pattern]]:
    """(exception, pattern) per line of .dockerignore, in order."""
    rules = []
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        rules.append((exception, _glob_regex(posixpath.normpath(line.lstrip("!").lstrip("/")))))
    return rules


def ignored(path: str, rules: list[tuple[bool, re.Pattern]]) -> bool:
    """Docker's rule: the last line matching the path or a folder above it decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    excluded = False
    for exception, pattern in rules:
        if any(pattern.fullmatch(candidate) for candidate in candidates):
            excluded = not exception
    return excluded


def context_files(source: str) -> dict[str, Path]:
    """The files of REPO/source that reach the build context, by path relative to source."""
    rules, base = dockerignore_rules(), REPO / source
    if base.is_file():
        return {} if ignored(source, rules) else {"": base}
    files = {}
    for folder, _, names in os.walk(base):
        for name in names:
            path = Path(folder) / name
            if not ignored(path.relative_to(REPO).as_posix(), rules):
                files[path.relative_to(base).as_posix()] = path
    return files


def copy_steps() -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY from the build context."""
    steps = []
    for instruction, arguments in instructions():
        if instruction == "COPY" and "--from" not in arguments:
            *sources, destination = [word for word in shlex.split(arguments) if not word.startswith("--")]
            steps.append((sources, destination))
    return steps


def replay(root: Path) -> dict[int, str]:
    """Carry out the WORKDIR, COPY and chmod steps under root; the working folder of every step."""
    workdir, workdirs = "/", {}
    for index, (instruction, arguments) in enumerate(instructions()):
        if instruction == "WORKDIR":
            workdir = posixpath.join(workdir, arguments)
        workdirs[index] = workdir
        if instruction == "COPY" and "--from" not in arguments:
            *sources, destination = [word for word in shlex.split(arguments) if not word.startswith("--")]
            target = posixpath.join(workdir, destination)
            into_folder = destination.endswith("/") or len(sources) > 1
            for source in sources:
                files = context_files(source)
                assert files, f"COPY {source}: not in the build context, so the build fails"
                for relative, path in files.items():
                    if (REPO / source).is_dir():  # a folder's contents go into the destination
                        copied = posixpath.join(target, relative)
                    else:
                        copied = posixpath.join(target, path.name) if into_folder else target
                    (root / copied.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, root / copied.lstrip("/"))
        if instruction == "RUN":
            for command in shell_commands(arguments):
                words = shlex.split(command)
                if words[0] == "chmod":
                    for path in words[2:]:
                        (root / posixpath.join(workdir, path).lstrip("/")).chmod(int(words[1], 8))
    return workdirs


def stand_ins(folder: Path, *names: str) -> Path:
    """Programs that print their arguments, one a line, instead of running."""
    folder.mkdir(exist_ok=True)
    for name in names:
        (folder / name).write_text("#!/bin/sh\nprintf '%s\\n' \"$(basename \"$0\")\" \"$@\"\n")
        (folder / name).chmod(0o755)
    return folder


def project_install(tmp_path: Path, extras: str) -> list[str]:
    """The arguments the project's `pip install` step gets, its shell run with a stand-in pip."""
    _, command = the_command(is_project_install)
    stubs = stand_ins(tmp_path / "stubs", "pip")
    env = {"PATH": f"{stubs}:/usr/bin:/bin", "EXTRAS": extras}
    result = subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()[1:]


def extras_default() -> str:
    (arg,) = [key_values(a) for i, a in instructions() if i == "ARG" and "EXTRAS" in key_values(a)]
    return arg["EXTRAS"]


def package_names(requirements: list[str]) -> set[str]:
    return {Requirement(requirement).name.lower() for requirement in requirements}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


# ------------------------------------------------------------------------------
# Textual: only a Docker build can pull a base image or switch user
# ------------------------------------------------------------------------------
def test_base_image_runs_the_python_pyproject_needs_and_the_user_is_not_root():
    steps = instructions()
    image = re.fullmatch(r"python:(\d+\.\d+)(?:\.\d+)?-slim", steps[0][1])
    assert steps[0][0] == "FROM" and image, steps[0]
    assert SpecifierSet(PYPROJECT["project"]["requires-python"]).contains(image[1] + ".0")
    users = [arguments for instruction, arguments in steps if instruction == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    # The account exists: made by useradd in an earlier RUN.
    created = [shlex.split(command)[-1] for _, command in run_commands() if shlex.split(command)[0] == "useradd"]
    assert users[-1].split(":")[0] in created


# ------------------------------------------------------------------------------
# The build context
# ------------------------------------------------------------------------------
def test_dockerignore_lets_the_copied_files_through_and_keeps_the_rest_out():
    rules = dockerignore_rules()
    for sources, _ in copy_steps():
        for source in sources:
            files = context_files(source)
            assert files, f"{source} is ignored"
            if (REPO / source).is_dir():
                # Every module and template, not only the folder: a pattern could drop some.
                wanted = {
                    path.relative_to(REPO / source).as_posix()
                    for path in (REPO / source).rglob("*")
                    if path.is_file() and "__pycache__" not in path.parts
                    and (path.suffix == ".py" or {"templates", "static"} & set(path.parts))
                }
                assert wanted <= set(files), f"{source}: {sorted(wanted - set(files))[:5]} ignored"
    # The Dockerfile's promise: the virtualenv, var/ and the tests stay out of the context.
    for outside in (".venv/bin/python", "var/parity.sqlite3", "tests/parity/test_image.py"):
        assert ignored(outside, rules), outside
    assert ignored("generation/__pycache__/tasks.cpython-311.pyc", rules)


# ------------------------------------------------------------------------------
# The dependency and project installs
# ------------------------------------------------------------------------------
def test_dependencies_step_installs_pyprojects_dependencies_plus_the_extras(compose, tmp_path):
    workdirs = replay(tmp_path / "root")
    index, command = the_command(lambda words: words[:2] == ["python", "-c"])
    words = shlex.split(command)
    assert words[3] == ">"
    # The next command installs exactly the file this one writes.
    commands = [c for i, c in run_commands() if i == index]
    following = shlex.split(commands[commands.index(command) + 1])
    assert following[:2] == ["pip", "install"] and following[following.index("-r") + 1] == words[4]

    def requirements(extras: str) -> list[str]:
        env = os.environ | {"EXTRAS": extras}
        cwd = tmp_path / "root" / workdirs[index].lstrip("/")
        result = subprocess.run([sys.executable, "-c", words[2]], cwd=cwd, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return result.stdout.split()

    project = PYPROJECT["project"]
    assert requirements(extras_default()) == project["dependencies"]
    gpu_extras = compose["services"]["gpu-worker"]["build"]["args"]["EXTRAS"]
    assert gpu_extras in project["optional-dependencies"]
    gpu = requirements(gpu_extras)
    assert gpu == project["dependencies"] + project["optional-dependencies"][gpu_extras]
    # The point of the second image: torch in the GPU worker's, never in the web's.
    assert "torch" in package_names(gpu) and "torch" not in package_names(project["dependencies"])


def test_project_install_takes_the_extras_build_argument(compose, tmp_path):
    assert extras_default() == ""  # web and worker build without extras
    assert project_install(tmp_path, "")[-1] == "."
    gpu_extras = compose["services"]["gpu-worker"]["build"]["args"]["EXTRAS"]
    assert project_install(tmp_path, gpu_extras)[-1] == f".[{gpu_extras}]"
    # No .pyc written as root, which the app user could not update.
    assert "--no-compile" in project_install(tmp_path, "")


@pytest.mark.slow
def test_the_copied_sources_install_every_package_and_collect_the_static_files(tmp_path, app_env):
    """The COPY steps replayed, `pip install .` from them, then the image's collectstatic."""
    root = tmp_path / "root"
    workdirs = replay(root)
    index, _ = the_command(is_project_install)
    site = tmp_path / "site"
    # The image's step, offline, with the dependencies (the step before) those installed here.
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(site), *project_install(tmp_path, extras_default())[1:]],
        cwd=root / workdirs[index].lstrip("/"), capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    setuptools = PYPROJECT["tool"]["setuptools"]
    for package in setuptools["packages"]:
        assert (site / package.replace(".", "/") / "__init__.py").is_file(), f"{package} is not installed"
    # Package data: every template and static file of a copied package is installed.
    package_dirs = setuptools.get("package-dir", {})
    tops = {package_dirs.get(top, top): top for top in {package.split(".")[0] for package in setuptools["packages"]}}
    data = [
        (source, relative)
        for sources, _ in copy_steps()
        for source in set(sources) & set(tops)
        for relative in context_files(source)
        if {"templates", "static"} & set(relative.split("/")[:-1])
    ]
    assert data
    for source, relative in data:
        assert (site / tops[source] / relative).is_file(), f"{source}/{relative} is not installed"

    index, command = the_command(is_collectstatic)
    env = app_env | image_env(root) | {"PYTHONPATH": str(site), "HOME": str(tmp_path)}
    cwd = root / workdirs[index].lstrip("/")
    cwd.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["sh", "-c", command], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    static_root = Path(env["DJANGO_STATIC_ROOT"])
    static = [
        Path(*parts[parts.index("static") + 1 :])
        for top in tops.values()
        for parts in (path.relative_to(site).parts for path in (site / top).rglob("*") if path.is_file())
        if "static" in parts[:-1]
    ]
    assert static
    for relative in static:
        assert (static_root / relative).is_file(), f"{relative} was not collected"
    # Nothing else made under the var folder as root (the broker's folders, say): the
    # app user could not write in it.
    assert [p.name for p in Path(env["PARITY_VAR_DIR"]).iterdir()] == [static_root.name]


# ------------------------------------------------------------------------------
# The image's environment
# ------------------------------------------------------------------------------
def test_image_environment_is_production_without_a_secret(run_python):
    values = image_env()
    assert find_spec(values["DJANGO_SETTINGS_MODULE"]).origin == str(SETTINGS_FILE)
    given = {"DJANGO_SECRET_KEY": "x" * 50, "DJANGO_ALLOWED_HOSTS": "parity.example.org"}
    bare, configured = observe(run_python, [SETTINGS_FILE], [values, values | given])
    # A container that is not given a key does not start: the image carries none.
    assert "ImproperlyConfigured" in bare[str(SETTINGS_FILE)]["error"]
    assert "DJANGO_SECRET_KEY" in bare[str(SETTINGS_FILE)]["error"]
    seen = configured[str(SETTINGS_FILE)]
    assert seen["PRODUCTION"] is True and seen["DEBUG"] is False
    # Media and collected static files under the var folder the image makes for the app user
    # (test_compose checks that the media volume is mounted on this MEDIA_ROOT).
    assert Path(seen["MEDIA_ROOT"]).parent == Path(seen["STATIC_ROOT"]).parent == Path(seen["VAR_DIR"])


def test_media_folder_is_made_for_the_app_user(run_python):
    """Textual: ownership needs a Docker build. A named volume takes the owner of the folder it
    is mounted on, so the app user can write media only if the image made that folder its own."""
    seen = observe(run_python, [SETTINGS_FILE], [image_env() | {"DJANGO_SECRET_KEY": "x"}])[0][str(SETTINGS_FILE)]
    user = [arguments for instruction, arguments in instructions() if instruction == "USER"][-1]
    commands = [shlex.split(command) for _, command in run_commands()]
    assert any(words[:2] == ["mkdir", "-p"] and seen["MEDIA_ROOT"] in words for words in commands)
    assert any(words[0] == "chown" and words[1] == user and seen["MEDIA_ROOT"] in words for words in commands)


def test_secret_key_only_for_collectstatic():
    """Textual: that a RUN's variable stays out of the image's layers is Docker's doing. The key
    is set for the collectstatic command alone, never by ENV or ARG, nor anywhere else."""
    for instruction, arguments in instructions():
        if instruction in {"ENV", "ARG"}:
            assert "DJANGO_SECRET_KEY" not in key_values(arguments)
    mentions = [command for _, command in run_commands() if "DJANGO_SECRET_KEY" in command]
    assert len(mentions) == 1
    assignments, words = split_assignments(shlex.split(mentions[0]))
    assert "DJANGO_SECRET_KEY" in assignments and is_collectstatic(shlex.split(mentions[0]))
    assert not any("DJANGO_SECRET_KEY" in word for word in words)


# ------------------------------------------------------------------------------
# The entrypoint
# ------------------------------------------------------------------------------
def test_entrypoint_is_where_compose_expects_it_and_finds_the_gunicorn_conf(compose, tmp_path, app_env):
    root = tmp_path / "root"
    replay(root)
    steps = instructions()
    (entrypoint,) = [json.loads(arguments) for instruction, arguments in steps if instruction == "ENTRYPOINT"]
    (cmd,) = [json.loads(arguments) for instruction, arguments in steps if instruction == "CMD"]
    program = root / entrypoint[0].lstrip("/")
    # Started directly, as Docker starts it: the file must be there and executable.
    assert os.access(program, os.X_OK), f"{entrypoint[0]} is not an executable file of the image"
    stubs = stand_ins(tmp_path / "stubs", "gunicorn", "celery", "django-admin")
    result = subprocess.run(
        [str(program), *entrypoint[1:], *cmd], env=app_env | {"PATH": f"{stubs}:/usr/bin:/bin"},
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    argv = result.stdout.splitlines()
    assert argv[0] == "gunicorn"
    conf = Path(argv[argv.index("-c") + 1])
    assert conf.is_file() and conf.read_bytes() == (REPO / "platform" / "gunicorn.conf.py").read_bytes()
    # compose's health check starts the same program.
    assert compose["services"]["web"]["healthcheck"]["test"][1] == entrypoint[0]


def test_exposed_port_is_the_one_gunicorn_binds(run_python):
    (exposed,) = [arguments for instruction, arguments in instructions() if instruction == "EXPOSE"]
    conf = REPO / "platform" / "gunicorn.conf.py"
    seen = observe(run_python, [conf], [image_env()])[0][str(conf)]
    assert seen["bind"].rsplit(":", 1)[1] == exposed.split("/")[0]
