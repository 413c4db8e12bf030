"""GET /api/v1/studies/<slug>/report/?format=csv-categories and ?by=FIELD: the results per
category of the stored report (the study's report_categories), and a report broken down by
other fields, built during the request and stored nowhere."""

import csv
import io

import pytest

from analysis import api, services
from analysis.category_exports import CATEGORY_CSV_COLUMNS
from analysis.exports import CSV_COLUMNS
from analysis.models import ReportRecord, ReportSnapshot
from analysis.selectors import study_fingerprint
from tests.analysis.builders import GENERATED_ITEMS, planted_study
from tests.api.conftest import member, token_client
from workspaces.models import Membership, Workspace

pytestmark = pytest.mark.usefixtures("cheap_reports")
URL = "/api/v1/studies/ladder/report/"


@pytest.fixture
def planted(workspace):
    planted = planted_study(workspace=workspace, annotators=12)
    for index, item in enumerate(planted.items[:GENERATED_ITEMS]):
        item.meta = {"category": "people" if index % 2 else "landscape", "width": 512}
        item.save(update_fields=["meta"])
    return planted


@pytest.fixture
def researcher(workspace):
    return member(workspace, "rita", Membership.Role.MEMBER)


def _set_categories(study, fields):
    study.report_categories = fields
    study.save(update_fields=["report_categories"])


def _rows(response) -> list[dict]:
    text = response.content.decode()
    assert tuple(next(csv.reader(io.StringIO(text)))) == CATEGORY_CSV_COLUMNS
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_categories_is_stored_with_the_report_of_the_study_setting(planted, researcher):
    _set_categories(planted.study, ["category"])
    client = token_client(researcher)
    response = client.get(URL, {"format": "csv-categories"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="ladder-report-categories.csv"'
    assert response["Cache-Control"] == "no-store"
    rows = _rows(response)
    assert len(rows) == 2 * len(planted.generators) and {row["field"] for row in rows} == {"category"}
    assert {row["value"] for row in rows} == {"landscape", "people"} and {row["study"] for row in rows} == {"ladder"}
    snapshot = ReportSnapshot.objects.get(study=planted.study)
    assert snapshot.report_categories_csv == response.content.decode()
    # The other formats of the same stored report, as before: not rebuilt.
    body = client.get(URL).json()
    assert list(body["categories"]) == ["category"] and body["options"]["category_fields"] == []
    per_generator = client.get(URL, {"format": "csv"})
    assert tuple(next(csv.reader(io.StringIO(per_generator.content.decode())))) == CSV_COLUMNS
    assert ReportSnapshot.objects.get(study=planted.study).built_at == snapshot.built_at


def test_csv_categories_of_a_study_without_a_field_is_a_400_before_any_build(planted, researcher):
    response = token_client(researcher).get(URL, {"format": "csv-categories"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "no_category_field" and error["field"] == "by"
    assert "report_categories" in error["message"] and "by=FIELD" in error["message"]
    assert not ReportSnapshot.objects.filter(study=planted.study, built_at__isnull=False).exists()


def test_a_snapshot_stored_before_the_categories_csv_is_rebuilt_once(planted, researcher):
    _set_categories(planted.study, ["category"])
    client = token_client(researcher)
    assert client.get(URL).status_code == 200
    # As a snapshot stored before this format existed: its old fingerprint, no categories CSV.
    old, _ = study_fingerprint(study=planted.study, extra=services.STORED_OPTIONS.as_dict())
    ReportSnapshot.objects.filter(study=planted.study).update(fingerprint=old, report_categories_csv="")
    response = client.get(URL, {"format": "csv-categories"})
    assert response.status_code == 200 and len(_rows(response)) == 2 * len(planted.generators)
    assert ReportSnapshot.objects.get(study=planted.study).report_categories_csv


def test_by_builds_json_html_and_csv_categories_without_storing_them(planted, researcher):
    client = token_client(researcher)
    response = client.get(URL, {"by": ["category", "width", "category"]})
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    body = response.json()
    assert body["options"]["category_fields"] == ["category", "width"]
    assert list(body["categories"]) == ["category", "width"]
    assert body["categories"]["category"]["values"] == ["landscape", "people"]
    assert body["categories"]["width"]["values"] == ["512"]

    rows = _rows(client.get(URL, {"format": "csv-categories", "by": "category"}))
    assert len(rows) == 2 * len(planted.generators) and {row["field"] for row in rows} == {"category"}

    page = client.get(URL, {"format": "html", "by": "width"})
    assert page.status_code == 200 and page["Content-Security-Policy"] == api.REPORT_HTML_POLICY
    assert page.content.decode().startswith("<!doctype html>") and "width" in page.content.decode()
    # Stored nowhere: no snapshot, no record, the plan left as it was.
    assert not ReportSnapshot.objects.filter(study=planted.study).exclude(report_json="").exists()
    assert not ReportRecord.objects.filter(study=planted.study).exists()


def test_by_the_study_setting_is_the_stored_report(planted, researcher):
    _set_categories(planted.study, ["category"])
    response = token_client(researcher).get(URL, {"format": "csv-categories", "by": "category"})
    assert response.status_code == 200
    assert ReportSnapshot.objects.get(study=planted.study).report_categories_csv == response.content.decode()


def test_by_overrides_the_study_setting(planted, researcher):
    _set_categories(planted.study, ["category"])
    body = token_client(researcher).get(URL, {"by": "width"}).json()
    assert list(body["categories"]) == ["width"]


@pytest.mark.parametrize("by", ["", " category", "category ", "a;b", "meta[0]", "x" * 101, "a\nb", "../x", "-x"])
def test_a_by_that_is_no_plain_field_name_is_a_400_on_by(planted, researcher, by):
    response = token_client(researcher).get(URL, {"by": ["category", by]})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "by"
    assert not ReportSnapshot.objects.filter(study=planted.study).exists()


def test_too_many_by_and_by_with_the_per_generator_csv_are_400s(planted, researcher):
    client = token_client(researcher)
    many = client.get(URL, {"by": [f"f{i}" for i in range(api.MAX_BY + 1)]})
    assert many.status_code == 400 and many.json()["error"]["field"] == "by"
    with_csv = client.get(URL, {"format": "csv", "by": "category"})
    assert with_csv.status_code == 400 and with_csv.json()["error"]["field"] == "by"
    assert "csv-categories" in with_csv.json()["error"]["message"]


def test_by_on_a_study_too_large_for_a_request_is_a_409(planted, researcher, settings):
    settings.PARITY_REPORT_INLINE_MAX = 12 * len(planted.items) - 1
    response = token_client(researcher).get(URL, {"format": "csv-categories", "by": "category"})
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "report_too_large" and error["field"] == "by"
    assert "manage.py report ladder --by category" in error["message"]


def test_a_failed_build_by_a_field_is_a_500_in_the_error_body(planted, researcher, monkeypatch):
    monkeypatch.setattr(services, "report_from_input", lambda *a, **k: (_ for _ in ()).throw(ValueError("bad")))
    response = token_client(researcher).get(URL, {"by": "category"})
    assert response.status_code == 500
    assert response.json()["error"] == {
        "code": "report_failed", "message": "The report could not be built: ValueError: bad", "field": None}


@pytest.mark.parametrize("query", [{"format": "csv-categories"}, {"by": "category"}, {"by": "a;b"}])
def test_a_user_outside_the_workspace_gets_a_404(planted, query):
    _set_categories(planted.study, ["category"])
    outsider = member(Workspace.objects.create(name="Other lab", slug="other"), "otto", Membership.Role.OWNER)
    response = token_client(outsider).get(URL, query)
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    viewer = member(planted.study.workspace, "victor", Membership.Role.VIEWER)
    assert token_client(viewer).get(URL, {"format": "csv-categories"}).status_code == 200


def test_the_schema_documents_csv_categories_and_by(db):
    from drf_spectacular.generators import SchemaGenerator

    assert api.CATEGORIES_CSV_EXAMPLE.split("\r\n")[0].split(",") == list(CATEGORY_CSV_COLUMNS)
    operation = SchemaGenerator().get_schema(request=None, public=True)["paths"]["/api/v1/studies/{slug}/report/"]["get"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert "csv-categories" in parameters["format"]["schema"]["enum"]
    assert parameters["by"]["schema"]["type"] == "array"
    assert {"400", "409"} <= set(operation["responses"])
    examples = operation["responses"]["200"]["content"]["text/csv"]["examples"].values()
    assert {example["summary"] for example in examples} == {"csv", "csv-categories"}
    # A kept record still has the three formats it was built with.
    record = SchemaGenerator().get_schema(request=None, public=True)["paths"][
        "/api/v1/studies/{slug}/reports/{record_id}/"]["get"]
    assert "csv-categories" not in {p["name"]: p for p in record["parameters"]}["format"]["schema"]["enum"]
