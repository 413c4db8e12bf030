"""The Content-Security-Policy header, on pages, the API and images, in production and development.

Settings are read once per process, so each environment runs in a fresh interpreter
(see conftest.py) on a database of its own; the browser side is tests/e2e/test_csp.py.
"""

import json
import secrets

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from analysis import services as analysis_services
from analysis.reports import ReportOptions
from tests.annotate.test_pages import opened
from tests.parity.conftest import REPO
from workspaces.models import Membership

SITE_POLICY = {
    "default-src": {"'self'"},
    "script-src": {"'self'"},
    "style-src": {"'self'"},
    "img-src": {"'self'", "data:"},
    "object-src": {"'none'"},
    "base-uri": {"'none'"},
    "frame-ancestors": {"'none'"},
    "form-action": {"'self'"},
}
REPORT_POLICY = {
    "default-src": {"'none'"},
    "style-src": {"'unsafe-inline'"},
    "base-uri": {"'none'"},
    "form-action": {"'none'"},
    "frame-ancestors": {"'none'"},
}
# Run from the repository, so that the test builders import: an open study, an
# annotator on a trial, a researcher; the responses' status, type and policy.
RESPONSES = """
import json, re, django
django.setup()
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from workspaces.models import Membership
from tests.annotate.test_pages import IMAGES, enter, opened, servable, trial_page

call_command("migrate", verbosity=0)
study = servable(opened(slug="csp"))
annotator = Client()
enter(annotator, study, PROLIFIC_PID="pp-csp")
trial, _ = trial_page(annotator, study)
image = IMAGES.search(trial).group(1)
researcher = Client()
user = get_user_model().objects.create_user("rita", password="a-long-test-password")
Membership.objects.create(workspace=study.workspace, user=user, role=Membership.Role.OWNER)
researcher.force_login(user)
responses = {
    "home": Client().get("/"),
    "login": Client().get("/login/"),
    "entry": Client().get("/s/csp/", {"PROLIFIC_PID": "pp-other"}),
    "trial": annotator.get("/s/csp/trial/"),
    "image": annotator.get(image),
    "study page": researcher.get("/studies/csp/"),
    "api": researcher.get("/api/v1/studies/"),
    "api docs": researcher.get("/api/docs/"),
    "api docs script": researcher.get("/api/docs/", {"script": ""}),
    "admin": Client().get("/admin/login/"),
}
print(json.dumps({name: [r.status_code, r["Content-Type"], r.get("Content-Security-Policy")]
                  for name, r in responses.items()}))
"""


def _directives(header: str) -> dict[str, set[str]]:
    name_values = (part.split() for part in header.split(";") if part.strip())
    return {name: set(values) for name, *values in name_values}


@pytest.fixture(params=["production", "development"])
def env(request, app_env, tmp_path) -> dict[str, str]:
    env = app_env | {"DJANGO_SETTINGS_MODULE": "parity.settings",
                     "DATABASE_URL": f"sqlite:///{tmp_path / 'csp.sqlite3'}"}
    if request.param == "production":
        env |= {
            "PARITY_ENV": "production",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_ALLOWED_HOSTS": "testserver",
            # The test client speaks plain HTTP; production's other settings stay.
            "DJANGO_SECURE_SSL_REDIRECT": "0",
        }
    return env


@pytest.mark.slow
def test_every_response_carries_the_policy(run_python, env):
    result = run_python("-c", RESPONSES, env=env, cwd=REPO)
    assert result.returncode == 0, result.stderr
    responses = json.loads(result.stdout.strip().splitlines()[-1])
    for name, (status, content_type, header) in responses.items():
        assert status == 200, (name, status)
        assert header, f"{name}: no Content-Security-Policy"
        assert _directives(header) == SITE_POLICY, (name, header)
    assert responses["image"][1].startswith("image/")
    assert responses["api"][1] == "application/json"
    assert responses["api docs script"][1].startswith("application/javascript")


def test_the_html_report_has_its_own_policy_and_the_other_formats_the_sites(db, monkeypatch):
    """Its styles are inline and it runs nothing (analysis/api.py: REPORT_HTML_POLICY)."""
    monkeypatch.setattr(analysis_services, "STORED_OPTIONS", ReportOptions(n_boot=50, fit_boot=10))
    study = opened(slug="csp")
    user = get_user_model().objects.create_user("rita")
    Membership.objects.create(workspace=study.workspace, user=user, role=Membership.Role.MEMBER)
    client = Client()
    client.force_login(user)
    policies = {}
    for file_format in ("html", "json", "csv"):
        response = client.get("/api/v1/studies/csp/report/", {"format": file_format})
        assert response.status_code == 200
        policies[file_format] = _directives(response["Content-Security-Policy"])
    assert policies == {"html": REPORT_POLICY, "json": SITE_POLICY, "csv": SITE_POLICY}
