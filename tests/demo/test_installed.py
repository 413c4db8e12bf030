"""The demo is an app apart (ARCHITECTURE.md, Layout): development and the tests install
it, production leaves it out, and nothing of the product imports it.

Settings are read once per process, so each case of settings runs in a fresh interpreter.
"""

import ast
import io
import json
import signal
from pathlib import Path

import pytest
from django.core.management import call_command

from tests.parity.test_settings import production_env

REPO = Path(__file__).resolve().parents[2]
MANAGE = str(REPO / "manage.py")
COMMANDS = ("demo", "screenshots", "simulate_annotators")
PRODUCT = ["platform/parity", "generation", "annotate", "analysis"]

# What a gunicorn worker loads, then what the command line would offer.
SCRIPT = f"""
import json, sys
from parity.wsgi import application
from django.conf import settings
from django.core.management import get_commands
commands = get_commands()
print(json.dumps({{
    "installed": "demo" in settings.INSTALLED_APPS,
    "commands": {{name: commands.get(name) for name in {COMMANDS!r}}},
    "loaded": sorted(m for m in sys.modules if m == "demo" or m.startswith("demo.")),
}}))
"""


def loaded(run_python, env: dict[str, str]) -> dict:
    result = run_python("-c", SCRIPT, env=env | {"DJANGO_SETTINGS_MODULE": "parity.settings"})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_production_leaves_the_demo_out(run_python, app_env, tmp_path):
    env = production_env(app_env, tmp_path)
    assert loaded(run_python, env) == {
        "installed": False, "commands": dict.fromkeys(COMMANDS), "loaded": [],
    }
    result = run_python(MANAGE, "demo", env=env)
    assert result.returncode != 0 and "Unknown command: 'demo'" in result.stderr


def test_development_installs_the_demo_and_its_commands(run_python, app_env):
    found = loaded(run_python, app_env)
    assert found["installed"] is True
    assert found["commands"] == dict.fromkeys(COMMANDS, "demo")


@pytest.mark.parametrize("production, value, installed", [(False, "0", False), (True, "1", True)])
def test_parity_demo_overrides_the_default(run_python, app_env, tmp_path, production, value, installed):
    env = production_env(app_env, tmp_path) if production else app_env
    found = loaded(run_python, env | {"PARITY_DEMO": value})
    assert found["installed"] is installed
    assert (found["commands"]["demo"] == "demo") is installed


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_nothing_of_the_product_imports_the_demo():
    offenders = {
        str(path.relative_to(REPO)): sorted(name for name in _imports(path) if name.split(".")[0] == "demo")
        for folder in PRODUCT
        for path in (REPO / folder).rglob("*.py")
    }
    offenders = {path: names for path, names in offenders.items() if names}
    assert not offenders, f"the product must not import the demo (demo -> product only): {offenders}"


@pytest.fixture
def serve_calls(monkeypatch):
    """`serve` in this process, with the commands it calls recorded instead of run."""
    from parity.management.commands import serve

    calls = []
    monkeypatch.setattr(serve, "call_command", lambda name, *args, **kwargs: calls.append(name))
    # serve takes over the signals for its worker; this process keeps its own.
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    yield calls
    for signum, handler in saved.items():
        signal.signal(signum, handler)


@pytest.mark.parametrize("installed", [True, False])
def test_serve_setup_builds_the_demo_only_where_it_is_installed(db, settings, serve_calls, installed):
    if not installed:
        settings.INSTALLED_APPS = [app for app in settings.INSTALLED_APPS if app != "demo"]
    out = io.StringIO()
    call_command("serve", "--setup", "--no-worker", stdout=out)
    assert serve_calls == (["migrate", "demo", "runserver"] if installed else ["migrate", "runserver"])
    assert ("the demo app is not installed" in out.getvalue()) is not installed
