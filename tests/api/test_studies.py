"""Studies through the researcher API: create with the full configuration, change a draft,
delete, open (trials built, annotator links), close, progress; and who may do what."""

import csv
import io

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from annotate import services
from annotate.models import Annotator, Study, Trial
from generation.models import Corpus, Generator, Item, Sample
from generation.presentation import PresentationPolicy
from tests.annotate.builders import reference_png
from tests.api.conftest import session_client, token_client
from workspaces.models import Workspace

pytestmark = pytest.mark.django_db

PROLIFIC = "PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"


def _facts(name: str) -> dict:
    return {"image": name, "sha256": "0" * 64, "width": 24, "height": 24, "format": "PNG", "mode": "RGB",
            "byte_size": 10}


def make_corpus(workspace: Workspace, *, items: int = 6, generators: int = 2) -> dict:
    """A corpus whose references are real images (controls are cut from them) and generators
    with a sample of every item (placeholders: building trials never opens a sample)."""
    corpus = Corpus.objects.create(workspace=workspace, name=f"{workspace.slug}-corpus")
    made = []
    for i in range(items):
        name = default_storage.save(f"originals/{workspace.slug}-{i}.png", ContentFile(reference_png(i)))
        made.append(Item.objects.create(corpus=corpus, key=f"k{i}", caption=f"caption {i}", **_facts(name)))
    gens = []
    for g in range(generators):
        generator = Generator.objects.create(workspace=workspace, name=f"{workspace.slug}-g{g}")
        Sample.objects.bulk_create(Sample(generator=generator, item=item, seed=0, **_facts("samples/x.png"))
                                   for item in made)
        gens.append(generator)
    return {"corpus": corpus, "generators": gens}


@pytest.fixture
def studio(lab, other):
    return {workspace.slug: make_corpus(workspace) for workspace in (lab, other)}


@pytest.fixture
def api(studio, researcher):
    return token_client(researcher)


def config(studio, **changes) -> dict:
    lab = studio["lab"]
    return {
        "workspace": "lab", "name": "Ladder", "slug": "ladder", "corpus": lab["corpus"].pk,
        "generators": [g.pk for g in lab["generators"]], "question": "realism", "question_text": "",
        "instructions": "Pick the photograph.", "consent_text": "Pseudonymous.", "judgments_per_trial": 2,
        "catch_rate": 0.2, "calibration_rate": 0.2, "seeds_per_item": 1, "quota_per_annotator": 10,
        "assignment_timeout_seconds": 300, "exposure_ms": 1500, "break_every": 5, "practice_trials": 1,
        "presentation_policy": {"size": 256, "aspect": "4:3", "crop": "pad", "format": "PNG", "quality": 80,
                                "resolution": "native"},
        "completion_code": "DONE42", "exclude_catch_accuracy_below": 0.75, "min_catch_trials": 3,
        "exclude_fast_share_above": None,
        "fast_response_ms": 300, "exclude_side_bias": True, "exclude_agreement_below": 0.6,
        "target_half_width": 0.04, "head_to_head_share": 0.0, "head_to_head_pairs": "uncertain",
        "head_to_head_axis": "params", "anchor_generators": [], "anchor_share": 0.0,
        "item_filters": [], "sample_size": None, "sample_seed": 5, "stratify_by": "", "allocation": "equal",
        "report_categories": ["category"], "include_blank_samples": True, **changes,
    }


def other_study(studio) -> Study:
    other = studio["other"]
    return services.study_create(
        workspace=other["corpus"].workspace, name="Theirs", slug="theirs", corpus=other["corpus"],
        generators=other["generators"], practice_trials=0,
    )


def error(response) -> dict:
    return response.json()["error"]


# ------------------------------------------------------------------------------
# Happy paths
# ------------------------------------------------------------------------------
def test_create_with_the_full_configuration(api, studio):
    body = config(studio)
    response = api.post("/api/v1/studies/", body, format="json")
    assert response.status_code == 201, response.json()
    created = response.json()
    assert created == {
        **body, "id": created["id"], "status": "draft", "generators_done": [],
        "trials": {"generated": 0, "catch": 0, "calibration": 0, "practice": 0, "head_to_head": 0},
        "links": {
            "invite_url": "http://testserver/s/ladder/", "prolific_url": f"http://testserver/s/ladder/?{PROLIFIC}",
        },
        "created_at": created["created_at"], "generator_history": [], "head_to_head_active": [],
        "item_selection": {},
    }
    study = Study.objects.get(slug="ladder")
    assert study.workspace.slug == "lab" and study.corpus == studio["lab"]["corpus"]
    assert set(study.generators.all()) == set(studio["lab"]["generators"])
    assert (study.question, study.exposure_ms, study.break_every, study.completion_code) == ("realism", 1500, 5, "DONE42")
    assert study.policy == PresentationPolicy(size=256, aspect="4:3", crop="pad", format="PNG", quality=80)
    assert (study.exclude_catch_accuracy_below, study.min_catch_trials, study.exclude_fast_share_above,
            study.fast_response_ms, study.exclude_side_bias, study.target_half_width) == (0.75, 3, None, 300, True, 0.04)
    assert api.get("/api/v1/studies/ladder/").json() == created


def test_create_keeps_defaults_and_fills_the_policy(api, studio):
    body = {"workspace": "lab", "name": "Min", "slug": "min", "corpus": studio["lab"]["corpus"].pk,
            "presentation_policy": {"size": 384}}
    created = api.post("/api/v1/studies/", body, format="json").json()
    assert created["generators"] == [] and created["question"] == "preference"
    assert (created["judgments_per_trial"], created["catch_rate"], created["practice_trials"]) == (3, 0.1, 3)
    assert (created["exclude_catch_accuracy_below"], created["min_catch_trials"], created["exclude_fast_share_above"],
            created["fast_response_ms"], created["exclude_side_bias"], created["target_half_width"]) == (
        0.8, 1, 0.2, 400, False, None)
    assert created["presentation_policy"] == PresentationPolicy(size=384).to_dict()
    custom = api.post("/api/v1/studies/", {**body, "slug": "custom", "question": "custom",
                                           "question_text": "Which looks sharper?"}, format="json")
    assert custom.status_code == 201 and custom.json()["question_text"] == "Which looks sharper?"


def test_list_filters_by_workspace_and_status(api, studio, researcher):
    other_study(studio)
    api.post("/api/v1/studies/", config(studio), format="json")
    api.post("/api/v1/studies/", config(studio, slug="second", name="Second"), format="json")
    assert api.post("/api/v1/studies/second/open/").status_code == 200
    listed = api.get("/api/v1/studies/").json()
    assert listed["count"] == 2 and [s["slug"] for s in listed["results"]] == ["second", "ladder"]
    assert listed["results"][0]["trials"]["generated"] > 0
    lab_id = studio["lab"]["corpus"].workspace_id
    for workspace in ("lab", str(lab_id)):
        assert api.get("/api/v1/studies/", {"workspace": workspace}).json()["count"] == 2
    assert api.get("/api/v1/studies/", {"workspace": "other"}).json()["results"] == []
    assert [s["slug"] for s in api.get("/api/v1/studies/", {"status": "open"}).json()["results"]] == ["second"]
    assert [s["slug"] for s in api.get("/api/v1/studies/", {"status": "draft"}).json()["results"]] == ["ladder"]
    bad = api.get("/api/v1/studies/", {"status": "running"})
    assert bad.status_code == 400 and error(bad)["field"] == "status"


def test_patch_changes_a_draft(api, studio):
    api.post("/api/v1/studies/", config(studio), format="json")
    g0 = studio["lab"]["generators"][0]
    response = api.patch("/api/v1/studies/ladder/", {
        "judgments_per_trial": 5, "generators": [g0.pk], "question": "custom", "question_text": "Sharper?",
        "presentation_policy": {"format": "WEBP"}, "exposure_ms": None,
    }, format="json")
    assert response.status_code == 200, response.json()
    changed = response.json()
    assert (changed["judgments_per_trial"], changed["generators"], changed["question"]) == (5, [g0.pk], "custom")
    assert changed["presentation_policy"] == PresentationPolicy(format="WEBP").to_dict()
    assert changed["exposure_ms"] is None and changed["catch_rate"] == 0.2
    study = Study.objects.get(slug="ladder")
    assert study.judgments_per_trial == 5 and list(study.generators.all()) == [g0]
    # What was read may be sent back: the read-only and unchanged fields are accepted.
    assert api.patch("/api/v1/studies/ladder/", changed, format="json").status_code == 200
    for name, value in [("workspace", "other"), ("slug", "renamed")]:
        response = api.patch("/api/v1/studies/ladder/", {name: value}, format="json")
        assert response.status_code == 400 and error(response)["field"] == name


def test_delete_a_draft(api, studio):
    api.post("/api/v1/studies/", config(studio), format="json")
    assert api.delete("/api/v1/studies/ladder/").status_code == 204
    assert not Study.objects.filter(slug="ladder").exists()
    assert api.get("/api/v1/studies/ladder/").status_code == 404


def test_open_builds_the_trials_and_gives_the_links(api, studio):
    api.post("/api/v1/studies/", config(studio), format="json")
    response = api.post("/api/v1/studies/ladder/open/", {"seed": 3}, format="json")
    assert response.status_code == 200, response.json()
    opened = response.json()
    study = Study.objects.get(slug="ladder")
    assert study.status == "open" and opened["status"] == "open"
    # 6 items, 1 set aside for practice: 5 per generator; controls at 0.2 of 5.
    assert opened["trials"] == {"generated": 10, "catch": 1, "calibration": 1, "practice": 1, "head_to_head": 0}
    assert opened["trials_created"] == 13 == study.trials.count()
    assert opened["links"] == {
        "invite_url": "http://testserver/s/ladder/", "prolific_url": f"http://testserver/s/ladder/?{PROLIFIC}",
    }
    again = api.post("/api/v1/studies/ladder/open/")
    assert again.status_code == 200 and again.json()["trials_created"] == 0
    assert Trial.objects.filter(study=study).count() == 13


def test_open_without_anything_to_judge_is_409(api, studio):
    api.post("/api/v1/studies/", config(studio, generators=[], practice_trials=0, catch_rate=0,
                                        calibration_rate=0), format="json")
    response = api.post("/api/v1/studies/ladder/open/")
    assert response.status_code == 409 and error(response)["code"] == "study_not_ready"
    assert Study.objects.get(slug="ladder").status == "draft"


def test_close_then_open_is_refused(api, studio):
    api.post("/api/v1/studies/", config(studio), format="json")
    api.post("/api/v1/studies/ladder/open/")
    response = api.post("/api/v1/studies/ladder/close/")
    assert response.status_code == 200 and response.json()["status"] == "closed"
    assert response.json()["trials"]["generated"] == 10
    assert Study.objects.get(slug="ladder").status == "closed"
    reopen = api.post("/api/v1/studies/ladder/open/")
    assert reopen.status_code == 409 and error(reopen)["code"] == "study_closed"


def test_progress(api, studio):
    api.post("/api/v1/studies/", config(studio, practice_trials=0, catch_rate=0, calibration_rate=0), format="json")
    empty = api.get("/api/v1/studies/ladder/progress/").json()
    assert empty["generators"] == [] and empty["catch_pass_rate"] is None
    api.post("/api/v1/studies/ladder/open/")
    study = Study.objects.get(slug="ladder")
    annotator = Annotator.objects.create(source=Annotator.Source.SIMULATED)
    assignment = services.assignment_next(study=study, annotator=annotator)
    services.judgment_record(assignment_token=assignment.token, annotator=annotator, choice="left")
    services.assignment_next(study=study, annotator=annotator)
    progress = api.get("/api/v1/studies/ladder/progress/").json()
    g0, g1 = studio["lab"]["generators"]
    assert progress["generators"] == [
        {"generator_id": g.pk, "name": g.name, "trials": 6,
         "done": int(g.pk == assignment.trial.generator_id), "needed": 12, "anchor": False}
        for g in (g0, g1)
    ]
    assert progress["pairs"] == []
    assert (progress["done"], progress["needed"]) == (1, 24)
    assert (progress["catch"], progress["catch_passed"], progress["catch_pass_rate"]) == (0, 0, None)
    assert (progress["calibration"], progress["calibration_left"], progress["calibration_left_rate"]) == (0, 0, None)
    assert progress["active_annotators"] == 1 and progress["open_assignments"] == 1
    assert (progress["participations"], progress["finished"]) == (1, 0)


# ------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "field", "code"),
    [
        ({"colour": "red"}, "colour", "unknown_field"),
        ({"corpus": "OTHER"}, "corpus", "does_not_exist"),
        ({"generators": ["OTHER"]}, "generators", "does_not_exist"),
        ({"corpus": 999999}, "corpus", "does_not_exist"),
        ({"question": "custom", "question_text": "  "}, "question_text", "required"),
        ({"question": "beauty"}, "question", "invalid_choice"),
        ({"presentation_policy": {"size": 5}}, "presentation_policy.size", "invalid"),
        ({"presentation_policy": {"aspect": "wide"}}, "presentation_policy.aspect", "invalid"),
        ({"presentation_policy": {"colour": "red"}}, "presentation_policy.colour", "unknown_field"),
        ({"presentation_policy": [512]}, "presentation_policy", "not_an_object"),
        ({"catch_rate": 1.5}, "catch_rate", "max_value"),
        ({"calibration_rate": -0.1}, "calibration_rate", "min_value"),
        ({"judgments_per_trial": 0}, "judgments_per_trial", "min_value"),
        ({"slug": "not a slug"}, "slug", "invalid"),
        ({"exclude_catch_accuracy_below": 80}, "exclude_catch_accuracy_below", "max_value"),
        ({"min_catch_trials": 0}, "min_catch_trials", "min_value"),
        ({"target_half_width": 0}, "target_half_width", "min_value"),
        ({"workspace": "other"}, "workspace", "does_not_exist"),
    ],
)
def test_bad_input_is_400_naming_the_field(api, studio, changes, field, code):
    other = studio["other"]
    changes = {
        name: other["corpus"].pk if value == "OTHER" else [other["generators"][0].pk] if value == ["OTHER"] else value
        for name, value in changes.items()
    }
    response = api.post("/api/v1/studies/", config(studio, **changes), format="json")
    assert response.status_code == 400, response.json()
    assert (error(response)["field"], error(response)["code"]) == (field, code)
    # Nothing of the other workspace is named.
    assert "other-" not in str(response.json()) and "Other lab" not in str(response.json())
    assert not Study.objects.exists()


def test_another_of_ones_workspaces_is_refused_by_name(api, studio, researcher, other):
    other.memberships.create(user=researcher, role="member")
    for changes, field in [({"corpus": studio["other"]["corpus"].pk}, "corpus"),
                           ({"generators": [studio["other"]["generators"][1].pk]}, "generators")]:
        response = api.post("/api/v1/studies/", config(studio, **changes), format="json")
        assert response.status_code == 400
        assert (error(response)["field"], error(response)["code"]) == (field, "wrong_workspace")


def test_a_taken_slug_is_409_in_any_workspace(api, studio):
    other_study(studio)
    response = api.post("/api/v1/studies/", config(studio, slug="theirs"), format="json")
    assert response.status_code == 409
    assert (error(response)["code"], error(response)["field"]) == ("name_taken", "slug")


# ------------------------------------------------------------------------------
# Conflicts
# ------------------------------------------------------------------------------
def test_an_opened_study_keeps_its_configuration(api, studio):
    api.post("/api/v1/studies/", config(studio), format="json")
    api.post("/api/v1/studies/ladder/open/")
    for path in ["open", "close"]:
        response = api.patch("/api/v1/studies/ladder/", {"judgments_per_trial": 9}, format="json")
        assert response.status_code == 409, path
        assert error(response)["code"] == "study_not_draft"
        deleted = api.delete("/api/v1/studies/ladder/")
        assert deleted.status_code == 409 and error(deleted)["code"] == "study_not_draft"
        api.post("/api/v1/studies/ladder/close/")
    assert Study.objects.get(slug="ladder").judgments_per_trial == 2


def test_a_draft_with_trials_is_not_deleted(api, studio):
    api.post("/api/v1/studies/", config(studio), format="json")
    services.study_build_trials(study=Study.objects.get(slug="ladder"))
    response = api.delete("/api/v1/studies/ladder/")
    assert response.status_code == 409 and error(response)["code"] == "in_use"
    assert Study.objects.filter(slug="ladder").exists()


# ------------------------------------------------------------------------------
# Who may do what
# ------------------------------------------------------------------------------
def endpoints(studio, slug: str = "ladder") -> list[tuple[str, str, dict | None]]:
    return [
        ("get", "/api/v1/studies/", None),
        ("post", "/api/v1/studies/", config(studio, slug="new")),
        ("get", f"/api/v1/studies/{slug}/", None),
        ("patch", f"/api/v1/studies/{slug}/", {"name": "x"}),
        ("delete", f"/api/v1/studies/{slug}/", None),
        ("post", f"/api/v1/studies/{slug}/open/", None),
        ("post", f"/api/v1/studies/{slug}/close/", None),
        ("get", f"/api/v1/studies/{slug}/progress/", None),
        ("get", f"/api/v1/studies/{slug}/judgments/", None),
    ]


@pytest.mark.parametrize("who", ["annotator_account", "loner"])
@pytest.mark.parametrize("make_client", [session_client, token_client], ids=["session", "token"])
def test_accounts_without_a_membership_get_403_everywhere(request, studio, who, make_client):
    services.study_create(workspace=studio["lab"]["corpus"].workspace, name="L", slug="ladder",
                          corpus=studio["lab"]["corpus"])
    client = make_client(request.getfixturevalue(who))
    for method, url, body in endpoints(studio):
        response = getattr(client, method)(url, body, format="json")
        assert response.status_code == 403, (method, url, response.status_code)
        assert error(response)["code"] == "permission_denied", url
    assert list(Study.objects.values_list("slug", "status", "name")) == [("ladder", "draft", "L")]


def test_viewer_reads_but_cannot_write(studio, viewer, researcher):
    token_client(researcher).post("/api/v1/studies/", config(studio), format="json")
    client = token_client(viewer)
    for method, url, body in endpoints(studio):
        response = getattr(client, method)(url, body, format="json")
        if method == "get":
            assert response.status_code == 200, url
        else:
            assert response.status_code == 403, (method, url)
            assert error(response) == {
                "code": "permission_denied", "message": "Viewers of this workspace cannot change it.", "field": None,
            }
    study = Study.objects.get()
    assert (study.slug, study.status, study.name) == ("ladder", "draft", "Ladder")


@pytest.mark.parametrize("role_user", ["owner", "researcher", "superuser"])
def test_owners_members_and_superusers_write(request, studio, role_user):
    client = token_client(request.getfixturevalue(role_user))
    assert client.post("/api/v1/studies/", config(studio), format="json").status_code == 201
    assert client.patch("/api/v1/studies/ladder/", {"name": "L2"}, format="json").status_code == 200
    assert client.post("/api/v1/studies/ladder/open/").status_code == 200
    assert client.post("/api/v1/studies/ladder/close/").status_code == 200


def test_another_workspaces_study_is_404(api, studio):
    other_study(studio)
    for method, url, body in endpoints(studio, slug="theirs")[2:]:
        response = getattr(api, method)(url, body, format="json")
        assert response.status_code == 404, (method, url)
        assert error(response)["code"] == "not_found"
    missing = api.get("/api/v1/studies/nowhere/")
    assert missing.status_code == 404 and error(missing) == error(api.get("/api/v1/studies/theirs/"))
    assert api.get("/api/v1/studies/").json()["results"] == []
    assert Study.objects.get(slug="theirs").status == "draft"


# ------------------------------------------------------------------------------
# End to end: create, open, judge, export
# ------------------------------------------------------------------------------
def test_create_open_judge_and_export_with_a_token(api, studio):
    body = config(studio, practice_trials=0, catch_rate=0, calibration_rate=0)
    assert api.post("/api/v1/studies/", body, format="json").status_code == 201
    assert api.post("/api/v1/studies/ladder/open/").json()["trials"]["generated"] == 12
    study = Study.objects.get(slug="ladder")
    annotator = Annotator.objects.create(source=Annotator.Source.PROLIFIC, external_id="PID-1")
    assignment = services.assignment_next(study=study, annotator=annotator)
    judgment = services.judgment_record(assignment_token=assignment.token, annotator=annotator, choice="right")
    response = api.get("/api/v1/studies/ladder/judgments/", {"format": "csv"})
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="ladder-judgments.csv"'
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 1
    row = rows[0]
    assert (row["judgment"], row["study"], row["trial"], row["kind"]) == (
        str(judgment.pk), "ladder", str(assignment.trial_id), "generated",
    )
    assert row["generator"] == assignment.trial.generator.name
    assert row["choice"] == "right"
    assert row["chose_generated"] == ("true" if assignment.reference_side == "left" else "false")
    assert row["annotator"] == str(annotator.pseudonym) and "PID-1" not in ",".join(row.values())


def test_the_schema_describes_the_study_endpoints(studio, researcher):
    schema = session_client(researcher).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = schema["paths"]
    create = paths["/api/v1/studies/"]["post"]
    assert create["requestBody"]["content"]["application/json"]["examples"]
    assert {"201", "400", "403", "409"} <= set(create["responses"])
    assert "draft" in paths["/api/v1/studies/{slug}/"]["patch"]["description"]
    assert "put" not in paths["/api/v1/studies/{slug}/"]
    for path, method in [("/api/v1/studies/{slug}/open/", "post"), ("/api/v1/studies/{slug}/close/", "post"),
                         ("/api/v1/studies/{slug}/progress/", "get"), ("/api/v1/studies/", "get"),
                         ("/api/v1/studies/{slug}/", "get")]:
        assert paths[path][method]["responses"]["200"]["content"]["application/json"]["examples"], path
