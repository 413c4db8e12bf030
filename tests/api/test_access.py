"""Who reaches what: annotators and accounts without a membership nowhere under /api/;
researchers only their workspaces' objects (others are 404, as if they did not exist);
viewers read but never write."""

import pytest
from django.core.management import call_command

from generation.models import Generator, Series
from tests.api.conftest import session_client, token_client

pytestmark = pytest.mark.django_db


def endpoints(content) -> list[tuple[str, str, dict | None]]:
    lab = content["lab"]
    return [
        ("get", "/api/v1/workspaces/", None),
        ("get", "/api/v1/corpora/", None),
        ("get", f"/api/v1/corpora/{lab['corpus'].pk}/", None),
        ("get", f"/api/v1/corpora/{lab['corpus'].pk}/items/", None),
        ("get", "/api/v1/series/", None),
        ("post", "/api/v1/series/", {"workspace": "lab", "name": "new"}),
        ("get", f"/api/v1/series/{lab['series'].pk}/", None),
        ("get", "/api/v1/generators/", None),
        ("post", "/api/v1/generators/", {"workspace": "lab", "name": "new"}),
        ("get", f"/api/v1/generators/{lab['generator'].pk}/", None),
        ("patch", f"/api/v1/generators/{lab['generator'].pk}/", {"description": "x"}),
        ("put", f"/api/v1/generators/{lab['generator'].pk}/", {"workspace": "lab", "name": "x"}),
        ("delete", f"/api/v1/generators/{lab['generator'].pk}/", None),
        ("get", "/api/v1/generation-jobs/", None),
        ("post", "/api/v1/generation-jobs/", {"generator": lab["generator"].pk, "corpus": lab["corpus"].pk}),
        ("get", "/api/schema/", None),
        ("get", "/api/docs/", None),
    ]


@pytest.mark.parametrize("who", ["annotator_account", "loner"])
@pytest.mark.parametrize("make_client", [session_client, token_client], ids=["session", "token"])
def test_accounts_without_a_membership_get_403_everywhere(request, content, who, make_client):
    client = make_client(request.getfixturevalue(who))
    for method, url, body in endpoints(content):
        response = getattr(client, method)(url, body, format="json")
        assert response.status_code == 403, (method, url, response.status_code)
        if url.startswith("/api/v1/"):
            assert response.json()["error"]["code"] == "permission_denied", url
    assert Generator.objects.count() == 2 and Series.objects.count() == 2


def test_anonymous_gets_401_everywhere(client, content):
    for method, url, body in endpoints(content):
        response = getattr(client, method)(url, body, content_type="application/json")
        assert response.status_code in {401, 403}, (method, url)
        if url.startswith("/api/v1/"):
            assert response.status_code == 401


def test_annotators_never_reach_the_admin(client, annotator_account):
    client.force_login(annotator_account)
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_lists_hold_only_the_users_workspaces(content, researcher):
    client = token_client(researcher)
    assert [w["slug"] for w in client.get("/api/v1/workspaces/").json()["results"]] == ["lab"]
    for url, name in [("corpora", "lab-corpus"), ("series", "lab-ladder"), ("generators", "lab-M")]:
        names = [row["name"] for row in client.get(f"/api/v1/{url}/").json()["results"]]
        assert names == [name], url
    # Filtering by another workspace finds nothing rather than telling it exists.
    assert client.get("/api/v1/generators/?workspace=other").json()["results"] == []


def test_superuser_sees_every_workspace(content, superuser):
    client = token_client(superuser)
    rows = client.get("/api/v1/workspaces/").json()["results"]
    assert [(w["slug"], w["role"]) for w in rows] == [("lab", None), ("other", None)]
    assert len(client.get("/api/v1/generators/").json()["results"]) == 2
    response = client.post("/api/v1/generators/", {"workspace": "other", "name": "root-made"}, format="json")
    assert response.status_code == 201


def test_objects_of_another_workspace_are_404(content, researcher):
    client = token_client(researcher)
    other = content["other"]
    for method, url, body in [
        ("get", f"/api/v1/corpora/{other['corpus'].pk}/", None),
        ("get", f"/api/v1/corpora/{other['corpus'].pk}/items/", None),
        ("get", f"/api/v1/series/{other['series'].pk}/", None),
        ("get", f"/api/v1/generators/{other['generator'].pk}/", None),
        ("patch", f"/api/v1/generators/{other['generator'].pk}/", {"description": "mine now"}),
        ("put", f"/api/v1/generators/{other['generator'].pk}/", {"workspace": "other", "name": "x"}),
        ("delete", f"/api/v1/generators/{other['generator'].pk}/", None),
    ]:
        response = getattr(client, method)(url, body, format="json")
        assert response.status_code == 404, (method, url)
        assert response.json()["error"]["code"] == "not_found"
    # The same answer as for an id that exists nowhere.
    missing = client.get("/api/v1/generators/999999/")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert Generator.objects.get(pk=other["generator"].pk).description == ""


def test_references_to_another_workspace_are_refused_without_revealing_it(content, researcher):
    client = token_client(researcher)
    for workspace in ["other", content["other"]["series"].workspace_id, "nowhere", 999999]:
        response = client.post("/api/v1/generators/", {"workspace": workspace, "name": "g"}, format="json")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "does_not_exist"
        assert response.json()["error"]["field"] == "workspace"
    response = client.post(
        "/api/v1/generators/",
        {"workspace": "lab", "name": "g", "series": content["other"]["series"].pk},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "series"
    assert response.json()["error"]["code"] == "does_not_exist"


def test_series_of_another_of_ones_workspaces_is_refused(content, researcher):
    content["other"]["series"].workspace.memberships.create(user=researcher, role="member")
    response = token_client(researcher).post(
        "/api/v1/generators/",
        {"workspace": "lab", "name": "g", "series": content["other"]["series"].pk},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "wrong_workspace",
        "message": "Series 'other-ladder' belongs to another workspace.",
        "field": "series",
        "details": {"series": ["Series 'other-ladder' belongs to another workspace."]},
    }


def test_viewer_reads_but_cannot_write(content, viewer):
    client = token_client(viewer)
    generator = content["lab"]["generator"]
    assert client.get("/api/v1/generators/").status_code == 200
    assert client.get(f"/api/v1/generators/{generator.pk}/").status_code == 200
    assert client.get(f"/api/v1/corpora/{content['lab']['corpus'].pk}/items/").status_code == 200
    for method, url, body in [
        ("post", "/api/v1/generators/", {"workspace": "lab", "name": "new"}),
        ("post", "/api/v1/series/", {"workspace": "lab", "name": "new"}),
        ("patch", f"/api/v1/generators/{generator.pk}/", {"description": "x"}),
        ("put", f"/api/v1/generators/{generator.pk}/", {"workspace": "lab", "name": "x"}),
        ("delete", f"/api/v1/generators/{generator.pk}/", None),
    ]:
        response = getattr(client, method)(url, body, format="json")
        assert response.status_code == 403, (method, url)
        assert response.json()["error"] == {
            "code": "permission_denied", "message": "Viewers of this workspace cannot change it.", "field": None
        }
    assert Generator.objects.filter(workspace__slug="lab").count() == 1
    assert Series.objects.filter(workspace__slug="lab").count() == 1


@pytest.mark.parametrize("role_user", ["owner", "researcher"])
def test_owners_and_members_write(request, content, role_user):
    client = token_client(request.getfixturevalue(role_user))
    generator = content["lab"]["generator"]
    assert client.post("/api/v1/series/", {"workspace": "lab", "name": "s2"}, format="json").status_code == 201
    assert client.patch(f"/api/v1/generators/{generator.pk}/", {"description": "x"}, format="json").status_code == 200
    assert client.delete(f"/api/v1/generators/{generator.pk}/").status_code == 204


def test_the_workspace_role_adds_to_the_default_permissions_as_they_are_set_now(content, researcher, settings):
    """Views that add the role to DEFAULT_PERMISSION_CLASSES read it per request, not at import."""
    client = session_client(researcher)
    urls = ["/api/v1/series/", "/api/v1/generators/", "/api/v1/studies/"]
    assert [client.get(url).status_code for url in urls] == [200, 200, 200]
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK, "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    }
    assert [client.get(url).status_code for url in urls] == [403, 403, 403]


def test_schema_is_served_to_researchers(content, researcher):
    client = session_client(researcher)
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["components"]["securitySchemes"]["tokenAuth"] == {
        "type": "http", "scheme": "bearer", "description": schema["components"]["securitySchemes"]["tokenAuth"]["description"],
    }
    create = schema["paths"]["/api/v1/generators/"]["post"]
    assert {"201", "400", "401", "403", "409", "429"} <= set(create["responses"])
    assert create["responses"]["400"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert create["requestBody"]["content"]["application/json"]["examples"]
    assert client.get("/api/docs/").status_code == 200


def test_schema_generates_without_warnings(tmp_path):
    # --fail-on-warn turns any drf-spectacular warning or error into a failure.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert "tokenAuth" in (tmp_path / "schema.yaml").read_text()
