"""Every error has one body, {"error": {"code", "message", "field"}}: malformed JSON,
wrong types, unknown fields, domain errors, and the write rate limit on tokens."""

import pytest
from rest_framework.exceptions import ErrorDetail, ValidationError

from annotate.errors import AssignmentNotYours, StudyClosed
from generation.errors import IngestError, InUse, Rejection
from tests.api.conftest import session_client, token_client
from workspaces.drf import exception_handler, first_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(content, researcher):
    return token_client(researcher)


def error(response) -> dict:
    return response.json()["error"]


def test_malformed_json_is_a_parse_error(api):
    response = api.post("/api/v1/generators/", '{"workspace": "lab", "name": ', content_type="application/json")
    assert response.status_code == 400
    body = error(response)
    assert body["code"] == "parse_error" and body["field"] is None
    assert body["message"].startswith("JSON parse error")


def test_unsupported_media_type(api):
    response = api.post("/api/v1/generators/", "name=x", content_type="text/plain")
    assert response.status_code == 415
    assert error(response)["code"] == "unsupported_media_type"


@pytest.mark.parametrize(
    "body, field, code",
    [
        ({"workspace": "lab", "name": "g", "params": "big"}, "params", "invalid"),
        ({"workspace": "lab", "name": "g", "params": -1}, "params", "min_value"),
        ({"workspace": "lab", "name": "g", "train_flops": -1.0}, "train_flops", "min_value"),
        ({"workspace": "lab", "name": "g", "metrics": {"fid": "12.3"}}, "metrics", "invalid_metric"),
        ({"workspace": "lab", "name": "g", "metrics": {"fid": True}}, "metrics", "invalid_metric"),
        ({"workspace": "lab", "name": "g", "metrics": [12.3]}, "metrics", "not_an_object"),
        ({"workspace": "lab", "name": "g", "settings": "ddim"}, "settings", "not_an_object"),
        ({"workspace": "lab", "name": "g", "backend_config": 3}, "backend_config", "not_an_object"),
        ({"workspace": ["lab"], "name": "g"}, "workspace", "incorrect_type"),
        ({"workspace": "lab", "name": "g", "series": "ladder"}, "series", "incorrect_type"),
        ({"workspace": "lab"}, "name", "required"),
        ({"workspace": "lab", "name": ""}, "name", "blank"),
        ({"name": "g"}, "workspace", "required"),
    ],
)
def test_wrong_values_name_their_field(api, body, field, code):
    response = api.post("/api/v1/generators/", body, format="json")
    assert response.status_code == 400, response.json()
    assert error(response)["field"] == field
    assert error(response)["code"] == code
    assert field in error(response)["details"]


def test_unknown_fields_are_refused_by_name(api, content):
    response = api.post("/api/v1/generators/", {"workspace": "lab", "name": "g", "param": 5, "colour": "red"}, format="json")
    assert response.status_code == 400
    assert error(response) == {
        "code": "unknown_field", "message": "Unknown field.", "field": "param",
        "details": {"param": ["Unknown field."], "colour": ["Unknown field."]},
    }
    patch = api.patch(f"/api/v1/generators/{content['lab']['generator'].pk}/", {"fid": 3}, format="json")
    assert patch.status_code == 400 and error(patch)["field"] == "fid"
    series = api.post("/api/v1/series/", {"workspace": "lab", "name": "s", "generators": []}, format="json")
    assert series.status_code == 400 and error(series)["field"] == "generators"


def test_read_only_fields_sent_back_are_ignored(api, content):
    generator = content["lab"]["generator"]
    read = api.get(f"/api/v1/generators/{generator.pk}/").json()
    response = api.put(f"/api/v1/generators/{generator.pk}/", {**read, "id": 12345, "description": "d"}, format="json")
    assert response.status_code == 200
    assert response.json()["id"] == generator.pk


def test_a_body_that_is_not_an_object(api):
    response = api.post("/api/v1/generators/", [1, 2], format="json")
    assert response.status_code == 400
    assert error(response)["field"] is None and error(response)["code"] == "invalid"


def test_wrong_method_and_unknown_id(api):
    response = api.delete("/api/v1/workspaces/")
    assert response.status_code == 405
    assert error(response) == {"code": "method_not_allowed", "message": 'Method "DELETE" not allowed.', "field": None}
    assert error(api.get("/api/v1/generators/abc/"))["code"] == "not_found"


def test_first_error_follows_nested_details():
    detail = {"metrics": {"fid": [ErrorDetail("A number.", code="invalid")]}}
    assert first_error(detail) == ("metrics.fid", "A number.")
    assert first_error({"non_field_errors": [ErrorDetail("Bad.", code="x")]}) == (None, "Bad.")
    assert first_error([{"name": [ErrorDetail("Required.", code="required")]}]) == ("0.name", "Required.")
    response = exception_handler(ValidationError({"rows": [{}, {"key": ["Empty."]}]}), {})
    assert response.data["error"]["field"] == "rows.1.key"


@pytest.mark.parametrize(
    "exc, status, code",
    [
        (StudyClosed("study 'x' is closed"), 409, "study_closed"),
        (AssignmentNotYours("issued to someone else"), 404, "not_found"),
        (InUse("generator 'g' has trials"), 409, "in_use"),
        (IngestError("refused", rejections=[Rejection("a.jsonl:3", "empty caption")]), 400, "import_refused"),
    ],
)
def test_domain_errors_are_mapped_once(exc, status, code):
    response = exception_handler(exc, {})
    assert response.status_code == status
    assert response.data["error"]["code"] == code
    assert response.data["error"]["message"] == str(exc)
    if isinstance(exc, IngestError):
        assert response.data["error"]["details"] == [{"origin": "a.jsonl:3", "reason": "empty caption"}]


def test_token_writes_are_rate_limited(settings, content, researcher):
    settings.PARITY_API_WRITE_RATE = "2/m"
    api = token_client(researcher)
    generator = content["lab"]["generator"]
    url = f"/api/v1/generators/{generator.pk}/"
    assert api.patch(url, {"description": "1"}, format="json").status_code == 200
    assert api.patch(url, {"description": "2"}, format="json").status_code == 200
    response = api.patch(url, {"description": "3"}, format="json")
    assert response.status_code == 429
    assert error(response)["code"] == "throttled" and error(response)["field"] is None
    assert 0 < int(response["Retry-After"]) <= 60
    generator.refresh_from_db()
    assert generator.description == "2"
    # Reads are not limited, nor is the browser's session.
    assert api.get(url).status_code == 200
    assert session_client(researcher).patch(url, {"description": "4"}, format="json").status_code == 200
    # The count is per user, whichever of their tokens is used.
    assert token_client(researcher).post("/api/v1/series/", {"workspace": "lab", "name": "s"}, format="json").status_code == 429


def test_write_rate_limit_can_be_turned_off(settings, content, researcher):
    settings.PARITY_API_WRITE_RATE = None
    api = token_client(researcher)
    url = f"/api/v1/generators/{content['lab']['generator'].pk}/"
    for index in range(5):
        assert api.patch(url, {"description": str(index)}, format="json").status_code == 200


@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_a_path_no_endpoint_has_is_a_404_in_the_error_body(api, method):
    response = getattr(api, method)("/api/v1/generators/0.5/")
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert error(response)["code"] == "not_found"


def test_a_path_no_endpoint_has_asks_for_credentials_first(client):
    response = client.get("/api/v1/studies/no%20such/judgments/")
    assert response.status_code == 401 and error(response)["code"] == "not_authenticated"


def test_a_path_without_its_slash_is_still_redirected(api):
    assert api.get("/api/v1/generators").status_code == 301
