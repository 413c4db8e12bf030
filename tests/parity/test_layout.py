"""The layout that packaging and the standard library rely on (ARCHITECTURE.md, Layout).

`platform/` is a plain folder: a package importable as `platform` would shadow the
standard-library module that uuid, Django, Celery and torch import. pyproject.toml
maps `parity` to `platform/parity` and lists every package, so that a non-editable
install (the Docker image) ships them all.
"""

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Folders that are not shipped: tests, benchmarks, environments and build output.
NOT_SHIPPED = {"tests", "bench", "var", "build", "dist", "node_modules"}


def setuptools_config() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def package_folder(name: str) -> Path:
    """The folder a listed package is built from, following `package-dir`."""
    package_dir = setuptools_config().get("package-dir", {})
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix in package_dir:
            return REPO / package_dir[prefix] / Path(*parts[cut:])
    return REPO / Path(*parts)


def package_name(folder: Path) -> str:
    """The import name of a folder with an __init__.py, following `package-dir`."""
    relative = folder.relative_to(REPO)
    for name, path in setuptools_config().get("package-dir", {}).items():
        try:
            rest = relative.relative_to(path)
        except ValueError:
            continue
        return ".".join([name, *rest.parts])
    return ".".join(relative.parts)


def folders_with_init() -> list[Path]:
    found = []
    for root, dirs, files in os.walk(REPO):
        here = Path(root)
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith((".", "__"))
            and not d.endswith(".egg-info")
            and not (here == REPO and d in NOT_SHIPPED)
        )
        if "__init__.py" in files and here != REPO:
            found.append(here)
    return found


def test_platform_is_a_plain_folder():
    assert (REPO / "platform" / "parity").is_dir()
    assert not (REPO / "platform" / "__init__.py").exists(), (
        "platform/__init__.py makes `platform` a package that shadows the standard library"
    )


@pytest.mark.parametrize("where", ["elsewhere", "repository"])
def test_platform_is_the_standard_library_and_parity_imports(run_python, tmp_path, where):
    code = (
        "import sysconfig, platform, parity\n"
        "print(platform.__file__.startswith(sysconfig.get_path('stdlib')))\n"
        "print(platform.system())\n"
        "print(parity.__file__)\n"
    )
    result = run_python("-c", code, cwd=REPO if where == "repository" else tmp_path)
    assert result.returncode == 0, result.stderr
    from_stdlib, system, parity_file = result.stdout.splitlines()
    assert from_stdlib == "True"
    assert system
    assert Path(parity_file).parent.name == "parity"


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(setuptools_config()["packages"])
    missing = {package_name(folder): str(folder.relative_to(REPO)) for folder in folders_with_init()}
    missing = {name: path for name, path in missing.items() if name not in listed}
    assert not missing, f"add to [tool.setuptools] packages, or a non-editable install lacks them: {missing}"


def test_every_listed_package_exists():
    for name in setuptools_config()["packages"]:
        assert (package_folder(name) / "__init__.py").is_file(), f"{name}: no {package_folder(name)}/__init__.py"


def test_no_top_level_name_shadows_the_standard_library():
    top_level = {name.split(".")[0] for name in setuptools_config()["packages"]}
    assert not top_level & set(sys.stdlib_module_names)


def shipped_files() -> set[str]:
    """Every file the packages should bring: code, templates, static files, data."""
    expected = set()
    for name in setuptools_config()["packages"]:
        folder = package_folder(name)
        base = "/".join(name.split("."))
        for root, dirs, files in os.walk(folder):
            here = Path(root)
            # Sub-packages are listed on their own; plain folders (templates/) belong here.
            dirs[:] = [d for d in dirs if d != "__pycache__" and not (here / d / "__init__.py").exists()]
            for file in files:
                if not file.endswith(".pyc"):
                    expected.add(f"{base}/{(here / file).relative_to(folder).as_posix()}")
    return expected


@pytest.mark.slow
def test_non_editable_wheel_ships_every_file(tmp_path):
    # Build from a copy holding what the Docker build copies, so the repository
    # gets no build/ folder.
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(REPO / "pyproject.toml", source)
    for name in {name.split(".")[0] for name in setuptools_config()["packages"]}:
        folder = package_folder(name)
        shutil.copytree(
            folder, source / folder.relative_to(REPO), ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--quiet", "--wheel-dir", str(tmp_path / "wheels"), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = (tmp_path / "wheels").glob("*.whl")
    in_wheel = set(zipfile.ZipFile(wheel).namelist())

    missing = shipped_files() - in_wheel
    assert not missing, f"not in the wheel (package-data in pyproject.toml?): {sorted(missing)}"
    for path in [
        "parity/settings.py",
        "parity/templates/parity/base.html",
        "generation/migrations/0001_initial.py",
        "annotate/migrations/0001_initial.py",
    ]:
        assert path in in_wheel
