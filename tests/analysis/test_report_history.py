"""Report history and provenance (issue #19, item 6): every built report is kept as a
`ReportRecord` with its content hash; old unfrozen ones lose their content, frozen and
the newest N keep it; the API lists, serves and freezes them; every report carries
its provenance, and the trial seed stored on the study makes a rebuild reproducible."""

import json

import pytest

from analysis import selectors, services
from analysis.models import ReportRecord
from analysis.reports import REPORT_VERSION
from annotate import services as annotate_services
from annotate.models import Annotator, Study, Trial
from tests.analysis.builders import add_annotators, planted_study
from tests.annotate.builders import build_study
from tests.api.conftest import member, token_client
from workspaces.models import Membership, Workspace

pytestmark = pytest.mark.usefixtures("cheap_reports")
LIST = "/api/v1/studies/{}/reports/"
ONE = "/api/v1/studies/{}/reports/{}/"
FREEZE = "/api/v1/studies/{}/reports/{}/freeze/"


@pytest.fixture
def planted(workspace):
    return planted_study(workspace=workspace, annotators=8)


@pytest.fixture
def researcher(workspace):
    return member(workspace, "rita", Membership.Role.MEMBER)


def test_each_build_appends_a_record_with_a_stable_content_hash(planted):
    first = services.report_snapshot_build(study=planted.study)
    second = services.report_snapshot_build(study=planted.study)
    records = list(ReportRecord.objects.filter(study=planted.study).order_by("id"))
    assert len(records) == 2
    a, b = records
    assert a.judgments == b.judgments == first.judgments
    assert a.version == REPORT_VERSION
    assert a.fingerprint == first.fingerprint == second.fingerprint
    # Built twice from the same data: the same content, though built at another time.
    assert a.content_hash == b.content_hash
    assert len(a.content_hash) == 64
    assert a.report_json and a.report_csv and a.report_html.startswith("<!doctype html>")
    assert b.report_json == second.report_json
    assert a.content_hash == services.report_content_hash(a.report_json)
    add_annotators(planted, 2, seed=5)
    services.report_snapshot_build(study=planted.study)
    newest = ReportRecord.objects.filter(study=planted.study).order_by("-id").first()
    assert newest.judgments > a.judgments and newest.content_hash != a.content_hash


def test_a_failed_build_appends_nothing(planted, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(services, "study_report", broken)
    with pytest.raises(RuntimeError):
        services.report_snapshot_build(study=planted.study)
    assert not ReportRecord.objects.filter(study=planted.study).exists()


def test_pruning_keeps_the_newest_and_the_frozen(planted, settings):
    settings.PARITY_REPORT_HISTORY_KEEP = 2
    services.report_snapshot_build(study=planted.study)
    oldest = ReportRecord.objects.get(study=planted.study)
    services.report_record_freeze(record=oldest, user=None, note="final")
    for _ in range(4):
        services.report_snapshot_build(study=planted.study)
    records = list(ReportRecord.objects.filter(study=planted.study).order_by("-built_at", "-id"))
    assert len(records) == 5  # every record's metadata stay
    assert [r.has_content for r in records] == [True, True, False, False, True]
    assert records[-1].pk == oldest.pk and records[-1].frozen and records[-1].report_json
    for pruned in records[2:4]:
        assert pruned.report_json == pruned.report_csv == pruned.report_html == ""
        assert pruned.pruned_at is not None and len(pruned.content_hash) == 64
    assert services.report_records_prune(study=planted.study) == 0


def test_the_api_lists_serves_and_freezes(planted, researcher, settings):
    settings.PARITY_REPORT_HISTORY_KEEP = 1
    client = token_client(researcher)
    assert client.get(LIST.format("ladder")).json()["results"] == []
    services.report_snapshot_build(study=planted.study)
    services.report_snapshot_build(study=planted.study)
    listed = client.get(LIST.format("ladder"))
    assert listed.status_code == 200
    rows = listed.json()["results"]
    newest, older = rows
    assert newest["id"] > older["id"]
    assert set(newest) >= {"id", "built_at", "judgments", "content_hash", "version", "frozen", "has_content"}
    assert (newest["has_content"], older["has_content"]) == (True, False)
    assert newest["version"] == REPORT_VERSION and not newest["frozen"]

    got = client.get(ONE.format("ladder", newest["id"]))
    assert got.status_code == 200 and got["Content-Type"] == "application/json"
    assert got["Content-Disposition"] == f'attachment; filename="ladder-report-{newest["id"]}.json"'
    assert services.report_content_hash(got.content.decode()) == newest["content_hash"]
    assert client.get(ONE.format("ladder", newest["id"]), {"format": "csv"}).content.decode().startswith("study,")
    html = client.get(ONE.format("ladder", newest["id"]), {"format": "html"})
    assert html["Content-Security-Policy"].startswith("default-src 'none'")
    assert client.get(ONE.format("ladder", newest["id"]), {"format": "pdf"}).status_code == 400

    gone = client.get(ONE.format("ladder", older["id"]))
    assert gone.status_code == 410
    assert gone.json()["error"]["code"] == "report_pruned"
    assert client.get(ONE.format("ladder", 999999)).status_code == 404

    frozen = client.post(FREEZE.format("ladder", newest["id"]), {"note": "Final for the paper."}, format="json")
    assert frozen.status_code == 200
    body = frozen.json()
    assert body["frozen"] and body["note"] == "Final for the paper." and body["frozen_by"] == "rita"
    again = client.post(FREEZE.format("ladder", newest["id"]), {}, format="json")
    assert again.status_code == 200 and again.json()["frozen_at"] == body["frozen_at"]
    assert again.json()["note"] == "Final for the paper."
    # A newer build would prune it if it were not frozen.
    services.report_snapshot_build(study=planted.study)
    assert client.get(ONE.format("ladder", newest["id"])).status_code == 200


def test_who_may_read_and_freeze(planted, workspace):
    services.report_snapshot_build(study=planted.study)
    record = ReportRecord.objects.get(study=planted.study)
    viewer = member(workspace, "victor", Membership.Role.VIEWER)
    viewing = token_client(viewer)
    assert viewing.get(LIST.format("ladder")).status_code == 200
    assert viewing.get(ONE.format("ladder", record.pk)).status_code == 200
    refused = viewing.post(FREEZE.format("ladder", record.pk), {}, format="json")
    assert refused.status_code == 403
    record.refresh_from_db()
    assert not record.frozen
    other = Workspace.objects.create(name="Other lab", slug="other")
    outsider = token_client(member(other, "otto", Membership.Role.OWNER))
    for response in (outsider.get(LIST.format("ladder")), outsider.get(ONE.format("ladder", record.pk)),
                     outsider.post(FREEZE.format("ladder", record.pk), {}, format="json")):
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    # A record of another study is not found under this one.
    planted_study(workspace=other, slug="elsewhere", annotators=4)
    assert outsider.get(ONE.format("elsewhere", record.pk)).status_code == 404


def test_every_report_records_its_provenance(planted):
    snapshot = services.report_snapshot_build(study=planted.study)
    body = json.loads(snapshot.report_json)
    assert body["version"] == REPORT_VERSION
    provenance = body["provenance"]
    assert provenance["software"] == {"name": "parity", "version": selectors.software_version()}
    assert provenance["software"]["version"]
    assert provenance["trial_seed"] is None  # the planted study's trials were not built by study_build_trials
    corpus = provenance["corpus"]
    used = Trial.objects.filter(study=planted.study).values("item_id").distinct().count()
    assert corpus["items"] == used and len(corpus["items_sha256"]) == 64
    generators = {g["id"]: g for g in provenance["generators"]}
    assert set(generators) == {g.pk for g in planted.generators}
    for entry in generators.values():
        assert entry["backend"] == "upload" and entry["checkpoint"] is None and entry["checkpoint_sha256"] is None
        assert entry["samples"] > 0 and len(entry["samples_sha256"]) == 64
    assert 'id="report-provenance"' in snapshot.report_html
    assert corpus["items_sha256"] in snapshot.report_html


def test_a_builtin_checkpoint_is_hashed(planted, settings, tmp_path):
    settings.PARITY_CHECKPOINT_DIR = tmp_path
    (tmp_path / "m.pt").write_bytes(b"weights")
    generator = planted.generators[0]
    generator.backend, generator.backend_config = "builtin", {"checkpoint": "m.pt"}
    generator.save(update_fields=["backend", "backend_config"])
    provenance = selectors.study_provenance(study=planted.study)
    entry = next(g for g in provenance["generators"] if g["id"] == generator.pk)
    import hashlib

    assert entry["checkpoint"] == "m.pt"
    assert entry["checkpoint_sha256"] == hashlib.sha256(b"weights").hexdigest()


def test_the_trial_seed_is_stored_and_makes_a_rebuild_reproducible(db):
    def trials_of(study):
        return sorted(Trial.objects.filter(study=study).values_list("kind", "item__key", "generator__name",
                                                                    "shuffle", "control_image"))

    drawn = build_study(generators=2, items=6, catch_rate=0.5, practice=1, slug="drawn")
    annotate_services.study_build_trials(study=drawn)
    seed = Study.objects.get(pk=drawn.pk).trial_seed
    assert seed is not None and drawn.trial_seed == seed
    # Built again from scratch with the stored seed: the same trials.
    again = build_study(generators=2, items=6, catch_rate=0.5, practice=1, slug="again")
    annotate_services.study_build_trials(study=again, rng_seed=seed)
    assert Study.objects.get(pk=again.pk).trial_seed == seed
    strip = [(kind, key, (name or "").split("-")[-1], shuffle, bool(image))
             for kind, key, name, shuffle, image in trials_of(drawn)]
    assert strip == [(kind, key, (name or "").split("-")[-1], shuffle, bool(image))
                     for kind, key, name, shuffle, image in trials_of(again)]
    # A later build without a seed keeps the stored one.
    annotate_services.study_build_trials(study=drawn)
    assert Study.objects.get(pk=drawn.pk).trial_seed == seed
    # The report names it.
    provenance = selectors.study_provenance(study=Study.objects.get(pk=drawn.pk))
    assert provenance["trial_seed"] == seed


def test_a_given_seed_is_stored_on_the_first_build(db):
    study = build_study(generators=1, items=3, slug="given")
    annotate_services.study_build_trials(study=study, rng_seed=7)
    assert Study.objects.get(pk=study.pk).trial_seed == 7
    assert Annotator.objects.count() == 0
