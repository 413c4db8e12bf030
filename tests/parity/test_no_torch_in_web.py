"""Web processes never import torch (ARCHITECTURE.md, Dependency direction), and load
the analysis (scipy) only for a report.

The web image is built without torch; only the GPU worker and management commands
reach generation/engine. A fresh interpreter loads what a gunicorn worker loads and
reports every attempt to import torch, with the stack of the first one. scipy, which
the analysis brings (about 55 MB and over a second per worker), must not come with
the URL conf: most requests are annotators' pages and need none of it.
"""

import json

SCRIPT = r"""
import importlib, importlib.util, json, sys, traceback

attempts = []

class Watcher:
    # Records each import of torch or scipy and lets it go on, so the stack shows who asked.
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "scipy"):
            attempts.append({"module": name, "stack": "".join(traceback.format_stack()[:-1])})
        return None

sys.meta_path.insert(0, Watcher())

from parity.wsgi import application  # django.setup(): every app, model and admin module

import django.urls

django.urls.resolve("/")

def touch(patterns):
    for pattern in patterns:
        if hasattr(pattern, "url_patterns"):
            touch(pattern.url_patterns)
        else:
            pattern.callback

touch(django.urls.get_resolver().url_patterns)
with_urls = [a for a in attempts if a["module"].startswith("scipy")]

# Modules a view may reach: services and selectors it calls, tasks it enqueues.
ROLES = ["models", "admin", "views", "api", "serializers", "urls", "selectors", "services", "tasks", "errors"]
imported = []
for app in ["parity", "generation", "annotate", "analysis"]:
    for role in ROLES:
        name = f"{app}.{role}"
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)
            imported.append(name)

print(json.dumps({
    "attempts": [a for a in attempts if a["module"].startswith("torch")],
    "scipy_with_urls": with_urls[:1],
    "loaded": sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")),
    "imported": imported,
}))
"""


def test_web_process_leaves_torch_out(run_python, app_env):
    env = app_env | {"DJANGO_SETTINGS_MODULE": "parity.settings"}
    result = run_python("-c", SCRIPT, env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])

    assert "parity.urls" in report["imported"]
    assert not report["attempts"], "torch imported by:\n" + report["attempts"][0]["stack"]
    assert not report["loaded"], f"{len(report['loaded'])} torch modules loaded, {report['loaded'][:3]}..."
    assert not report["scipy_with_urls"], "scipy imported with the URL conf by:\n" + report["scipy_with_urls"][0]["stack"]
