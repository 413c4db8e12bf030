"""The dependency direction of docs/ARCHITECTURE.md holds, as `lint-imports` reads it
from the imports themselves (those inside functions too): the contracts are in
pyproject.toml's [tool.importlinter]."""

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def contracts() -> list[dict]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_every_contract_is_kept():
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    kept = result.stdout.count(" KEPT")
    assert kept == len(contracts()), result.stdout


def test_the_layers_are_those_of_the_architecture():
    (layers,) = [contract for contract in contracts() if contract["type"] == "layers"]
    assert layers["layers"] == ["parity", "demo", "analysis", "annotate", "generation", "workspaces"]


@pytest.mark.parametrize("app", ["generation", "annotate", "analysis"])
def test_each_apps_api_layer_is_its_own(app):
    protected = [
        module
        for contract in contracts()
        if contract["type"] == "protected" and contract["allowed_importers"] == [app, "parity"]
        for module in contract["protected_modules"]
    ]
    layer = {path.stem for path in (REPO / app).glob("*.py")} & {
        "api", "api_imports", "api_generation", "api_urls", "serializers", "uploads", "views", "urls",
        "research_views",
    }
    assert layer and {f"{app}.{name}" for name in layer} <= set(protected)
