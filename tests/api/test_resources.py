"""The happy path of each endpoint: workspaces, corpora, items, series, generators."""

import pytest

from generation.models import Generator, Series
from tests.api.conftest import make_item, token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(content, researcher):
    return token_client(researcher)


def test_workspaces_list_with_the_users_role(api, viewer, other):
    other.memberships.create(user=viewer, role="viewer")
    rows = token_client(viewer).get("/api/v1/workspaces/").json()
    assert rows["count"] == 2
    assert [(w["slug"], w["name"], w["role"]) for w in rows["results"]] == [("lab", "Lab", "viewer"), ("other", "Other lab", "viewer")]
    assert api.get("/api/v1/workspaces/").json()["results"][0]["role"] == "member"


def test_corpora_list_and_detail_with_item_count(api, content):
    corpus = content["lab"]["corpus"]
    listed = api.get("/api/v1/corpora/").json()
    assert listed["count"] == 1
    assert listed["results"][0]["item_count"] == 3
    detail = api.get(f"/api/v1/corpora/{corpus.pk}/").json()
    assert detail == {
        "id": corpus.pk, "workspace": "lab", "name": "lab-corpus", "description": "", "source": "",
        "item_count": 3, "created_at": detail["created_at"],
    }
    assert api.get("/api/v1/corpora/?workspace=lab").json()["count"] == 1
    assert api.get(f"/api/v1/corpora/?workspace={corpus.workspace_id}").json()["count"] == 1


def test_items_filter_by_key_and_search_captions(api, content):
    url = f"/api/v1/corpora/{content['lab']['corpus'].pk}/items/"
    rows = api.get(url).json()["results"]
    assert [row["key"] for row in rows] == ["0001", "0002", "0003"]
    assert rows[0]["caption"] == "a red cube on a blue floor"
    assert rows[0]["image"].endswith("/media/originals/0001.png")
    assert {"sha256", "width", "height", "format", "mode", "meta"} <= set(rows[0])
    assert [row["key"] for row in api.get(url, {"key": "0002"}).json()["results"]] == ["0002"]
    assert api.get(url, {"key": "0002 "}).json()["results"] == []
    assert [row["key"] for row in api.get(url, {"search": "red"}).json()["results"]] == ["0001", "0003"]


def test_items_are_cursor_paginated(api, content):
    corpus = content["lab"]["corpus"]
    for index in range(4, 26):
        make_item(corpus, f"{index:04d}", f"caption {index}")
    url = f"/api/v1/corpora/{corpus.pk}/items/"
    seen, page = [], api.get(url, {"page_size": 10}).json()
    assert set(page) == {"next", "previous", "results"}
    while True:
        seen += [row["key"] for row in page["results"]]
        if not page["next"]:
            break
        assert "cursor=" in page["next"]
        page = api.get(page["next"]).json()
    assert seen == [f"{i:04d}" for i in range(1, 26)]
    bad = api.get(url, {"cursor": "garbage"})
    assert bad.status_code == 404
    assert bad.json()["error"] == {"code": "not_found", "message": "Invalid cursor", "field": None}


def test_series_list_create_retrieve(api, content):
    response = api.post("/api/v1/series/", {"workspace": "lab", "name": "dit", "description": "DiT sizes"}, format="json")
    assert response.status_code == 201
    created = response.json()
    assert created["workspace"] == "lab" and created["name"] == "dit"
    assert Series.objects.get(pk=created["id"]).description == "DiT sizes"
    assert api.get(f"/api/v1/series/{created['id']}/").json() == created
    assert [s["name"] for s in api.get("/api/v1/series/").json()["results"]] == ["dit", "lab-ladder"]
    clash = api.post("/api/v1/series/", {"workspace": "lab", "name": "dit"}, format="json")
    assert clash.status_code == 409
    assert clash.json()["error"]["code"] == "name_taken"
    assert clash.json()["error"]["field"] == "name"


GENERATOR = {
    "workspace": "lab",
    "name": "ladder-M",
    "params": 350_000_000,
    "train_images": 1_200_000_000,
    "train_flops": 2.4e21,
    "train_step": 400_000,
    "settings": {"sampler": "ddim", "steps": 50, "guidance": 4.5},
    "metrics": {"fid": 12.3, "val_loss": 0.41},
}


def test_generator_crud(api, content):
    series = content["lab"]["series"]
    response = api.post("/api/v1/generators/", {**GENERATOR, "series": series.pk}, format="json")
    assert response.status_code == 201, response.json()
    created = response.json()
    assert created == {
        **GENERATOR, "id": created["id"], "series": series.pk, "description": "", "backend": "upload",
        "backend_config": {}, "created_at": created["created_at"],
    }
    generator = Generator.objects.get(pk=created["id"])
    assert generator.workspace.slug == "lab" and generator.metrics == {"fid": 12.3, "val_loss": 0.41}

    url = f"/api/v1/generators/{generator.pk}/"
    assert api.get(url).json() == created
    patched = api.patch(url, {"metrics": {"fid": 11.8}, "series": None}, format="json").json()
    assert patched["metrics"] == {"fid": 11.8} and patched["series"] is None
    assert patched["params"] == 350_000_000

    replaced = api.put(url, {"workspace": "lab", "name": "ladder-M2", "params": 1}, format="json")
    assert replaced.status_code == 200
    assert replaced.json()["name"] == "ladder-M2" and replaced.json()["params"] == 1

    assert api.delete(url).status_code == 204
    assert not Generator.objects.filter(pk=generator.pk).exists()
    assert api.get(url).status_code == 404


def test_generator_by_workspace_id_and_workspace_cannot_change(api, content, researcher, other):
    created = api.post("/api/v1/generators/", {"workspace": content["lab"]["corpus"].workspace_id, "name": "g"}, format="json")
    assert created.status_code == 201 and created.json()["workspace"] == "lab"
    other.memberships.create(user=researcher, role="owner")
    moved = api.patch(f"/api/v1/generators/{created.json()['id']}/", {"workspace": "other"}, format="json")
    assert moved.status_code == 400
    assert moved.json()["error"]["code"] == "immutable" and moved.json()["error"]["field"] == "workspace"
    # Sending back the same workspace, as a client that PUTs what it read does, is fine.
    same = api.patch(f"/api/v1/generators/{created.json()['id']}/", {"workspace": "lab"}, format="json")
    assert same.status_code == 200


def test_generator_filters(api, content):
    lab = content["lab"]
    api.post("/api/v1/generators/", {"workspace": "lab", "name": "solo"}, format="json")

    def names(query: dict) -> list[str]:
        return [g["name"] for g in api.get("/api/v1/generators/", query).json()["results"]]

    assert names({}) == ["lab-M", "solo"]
    assert names({"series": lab["series"].pk}) == ["lab-M"]
    assert names({"workspace": "lab"}) == ["lab-M", "solo"]
    assert names({"series": content["other"]["series"].pk}) == []
    bad = api.get("/api/v1/generators/", {"series": "ladder"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "series"


def test_generator_name_clash_is_409(api, content):
    response = api.post("/api/v1/generators/", {"workspace": "lab", "name": "lab-M"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "name_taken", "message": "the workspace already has a generator named 'lab-M'", "field": "name"
    }
    # Another workspace may use the name.
    content["other"]["generator"].delete()
    assert Generator.objects.filter(name="lab-M").count() == 1


def test_page_number_pagination(api, content):
    for index in range(5):
        api.post("/api/v1/generators/", {"workspace": "lab", "name": f"g{index}"}, format="json")
    page = api.get("/api/v1/generators/", {"page_size": 2, "page": 2}).json()
    assert page["count"] == 6
    assert [g["name"] for g in page["results"]] == ["g2", "g3"]
    assert "page=3" in page["next"]
    assert api.get("/api/v1/generators/", {"page": 9}).json()["error"]["code"] == "not_found"
