"""GET /api/v1/studies/<slug>/report/?format=json|csv|html: formats, who may get it, stored reports,
the 202 of a study built by a worker."""

import csv
import io
import logging

import numpy as np
import pytest
from django.test import Client
from rest_framework.test import APIClient

from analysis import api, services, tasks
from analysis.exports import CSV_COLUMNS
from analysis.models import ReportSnapshot
from annotate.models import Annotator
from tests.analysis.builders import add_annotators, planted_study
from tests.api.conftest import make_user, member, session_client, token_client
from workspaces.models import Membership, Workspace

pytestmark = pytest.mark.usefixtures("cheap_reports")
URL = "/api/v1/studies/{}/report/"


@pytest.fixture
def planted(workspace):
    return planted_study(workspace=workspace, annotators=12)


@pytest.fixture
def researcher(workspace):
    return member(workspace, "rita", Membership.Role.MEMBER)


def test_each_format_with_its_content_type(planted, researcher):
    client = token_client(researcher)
    json_response = client.get(URL.format("ladder"))  # json by default
    assert json_response.status_code == 200
    assert json_response["Content-Type"] == "application/json"
    assert json_response["Content-Disposition"] == 'attachment; filename="ladder-report.json"'
    body = json_response.json()
    assert [g["name"] for g in body["generators"]] == [g.name for g in planted.generators]

    csv_response = client.get(URL.format("ladder"), {"format": "csv"})
    assert csv_response.status_code == 200
    assert csv_response["Content-Type"] == "text/csv; charset=utf-8"
    assert csv_response["Content-Disposition"] == 'attachment; filename="ladder-report.csv"'
    rows = list(csv.DictReader(io.StringIO(csv_response.content.decode())))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 8

    html_response = client.get(URL.format("ladder"), {"format": "html"})
    assert html_response.status_code == 200
    assert html_response["Content-Type"] == "text/html; charset=utf-8"
    assert html_response.content.decode().startswith("<!doctype html>")
    assert "<svg" in html_response.content.decode()


def test_an_unknown_format_is_a_400_in_the_error_body(planted, researcher):
    response = token_client(researcher).get(URL.format("ladder"), {"format": "pdf"})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "format"


def test_every_member_may_read_it_and_others_may_not(planted, workspace, db):
    viewer = member(workspace, "victor", Membership.Role.VIEWER)
    assert session_client(viewer).get(URL.format("ladder")).status_code == 200
    other = Workspace.objects.create(name="Other lab", slug="other")
    outsider = member(other, "otto", Membership.Role.OWNER)
    missing = token_client(outsider).get(URL.format("ladder"))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert token_client(outsider).get(URL.format("no-such-study")).status_code == 404
    assert APIClient().get(URL.format("ladder")).status_code == 401
    annotator = make_user("anna")
    Annotator.objects.create(source=Annotator.Source.ACCOUNT, user=annotator)
    assert session_client(annotator).get(URL.format("ladder")).status_code == 403


def test_the_stored_report_is_served_until_the_data_change(planted, researcher):
    client = token_client(researcher)
    client.get(URL.format("ladder"))
    first = ReportSnapshot.objects.get(study=planted.study)
    again = client.get(URL.format("ladder"), {"format": "csv"})
    assert again.status_code == 200
    assert ReportSnapshot.objects.get(study=planted.study).built_at == first.built_at  # not rebuilt
    add_annotators(planted, 2, seed=5)
    body = client.get(URL.format("ladder")).json()
    rebuilt = ReportSnapshot.objects.get(study=planted.study)
    assert rebuilt.built_at > first.built_at and rebuilt.judgments == first.judgments + 2 * len(planted.items)
    assert body["counts"]["judgments"] == rebuilt.judgments


def test_a_failed_build_is_a_json_error_logged_with_its_traceback_and_not_retried_on_the_same_data(
        planted, researcher, monkeypatch, caplog):
    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        raise np.linalg.LinAlgError("Singular matrix\nin the fit")

    monkeypatch.setattr(services, "report_from_input", broken)
    client = token_client(researcher)
    with caplog.at_level(logging.ERROR, logger="analysis.api"):
        response = client.get(URL.format("ladder"), {"format": "html"})
    assert response.status_code == 500 and response["Content-Type"] == "application/json"
    message = "The report could not be built: LinAlgError: Singular matrix in the fit"
    assert response.json() == {"error": {"code": "report_failed", "message": message, "field": None}}
    (record,) = [r for r in caplog.records if r.name == "analysis.api"]
    assert "ladder" in record.getMessage() and record.exc_info[0] is np.linalg.LinAlgError
    # The same data fail the same way: answered from the stored error, without building.
    again = client.get(URL.format("ladder"))
    assert again.status_code == 500 and again.json()["error"]["message"] == message
    assert len(calls) == 1
    add_annotators(planted, 1, seed=9)
    assert client.get(URL.format("ladder")).status_code == 500 and len(calls) == 2


def test_a_large_study_is_accepted_while_a_worker_builds_it_then_served(
        planted, researcher, settings, sent_tasks, django_capture_on_commit_callbacks):
    settings.PARITY_REPORT_INLINE_MAX = 12 * len(planted.items) - 1
    client = token_client(researcher)
    with django_capture_on_commit_callbacks(execute=True):
        accepted = client.get(URL.format("ladder"), {"format": "csv"})
        again = client.get(URL.format("ladder"))
    for response in (accepted, again):
        assert response.status_code == 202 and response["Content-Type"] == "application/json"
        assert response.json() == api.BUILDING and "error" not in response.json()
        assert int(response["Retry-After"]) > 0 and response["Cache-Control"] == "no-store"
    assert sent_tasks == [("analysis.tasks.report_snapshot_task", (planted.study.pk,))]  # once
    assert not ReportSnapshot.objects.get(study=planted.study).report_json  # nothing built in the request
    assert tasks.report_snapshot_task(planted.study.pk) == "built"
    served = client.get(URL.format("ladder"), {"format": "csv"})
    assert served.status_code == 200 and served["Content-Type"] == "text/csv; charset=utf-8"
    assert len(list(csv.DictReader(io.StringIO(served.content.decode())))) == 8


def test_a_study_of_inline_max_judgments_is_built_in_the_request(planted, researcher, settings, sent_tasks):
    settings.PARITY_REPORT_INLINE_MAX = 12 * len(planted.items)
    response = token_client(researcher).get(URL.format("ladder"))
    assert response.status_code == 200 and response.json()["counts"]["judgments"] == 12 * len(planted.items)
    assert sent_tasks == []


def test_a_failed_worker_build_is_a_500_with_its_error(planted, researcher, settings, sent_tasks, monkeypatch,
                                                         django_capture_on_commit_callbacks):
    settings.PARITY_REPORT_INLINE_MAX = 0
    monkeypatch.setattr(services, "study_report", lambda **kwargs: (_ for _ in ()).throw(ValueError("bad data")))
    client = token_client(researcher)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.get(URL.format("ladder")).status_code == 202
    assert tasks.report_snapshot_task(planted.study.pk) == "failed"
    response = client.get(URL.format("ladder"))
    assert response.status_code == 500
    assert response.json()["error"] == {
        "code": "report_failed", "message": "The report could not be built: ValueError: bad data", "field": None,
    }
    assert len(sent_tasks) == 1  # the same data are not tried again


@pytest.mark.parametrize("page_first", [True, False])
@pytest.mark.parametrize("inline_max", [0, 10_000])
def test_the_page_and_the_api_deliver_a_report_by_one_rule(planted, researcher, settings, sent_tasks, inline_max,
                                                          page_first, django_capture_on_commit_callbacks):
    settings.PARITY_REPORT_INLINE_MAX = inline_max
    page = Client()
    page.force_login(researcher)
    answers = {}
    asks = {"page": lambda: page.get("/studies/ladder/analysis/panel/").content.decode(),
            "api": lambda: token_client(researcher).get(URL.format("ladder"))}
    with django_capture_on_commit_callbacks(execute=True):
        for asker in ("page", "api") if page_first else ("api", "page"):
            answers[asker] = asks[asker]()
    panel, response = answers["page"], answers["api"]
    on_worker = 'id="analysis-building"' in panel
    assert on_worker == (inline_max == 0) == (response.status_code == 202)
    assert ("<svg" in panel) == (response.status_code == 200) == (not on_worker)
    assert len(sent_tasks) == int(on_worker)  # whichever asks second finds the first one's build
