"""Uploads: one sample, a bundle of samples, a corpus archive; the import jobs of large ones.

Every refusal leaves nothing behind: no rows, no stored files, no kept upload.
"""

import base64
import io
import json
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile, TemporaryUploadedFile

from generation import api_uploads
from generation.models import Corpus, ImportJob, Item, Sample
from generation.services import import_jobs, imports
from generation.tasks import import_job_task
from tests.api.conftest import token_client
from tests.generation import builders as b

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(content, researcher):
    return token_client(researcher)


@pytest.fixture
def generator(content):
    return content["lab"]["generator"]


@pytest.fixture(autouse=True)
def small_batches(monkeypatch):
    """Store samples one at a time, so a refused import has really stored some to undo."""
    monkeypatch.setattr(imports, "BATCH", 1)


def image(name="s.png", data=None):
    return SimpleUploadedFile(name, data if data is not None else b.png(1), content_type="image/png")


def tar_bundle(tmp_path, entries, name="ladder-M.tar", **options):
    path = b.bundle_tar(tmp_path / name, entries, **options)
    return SimpleUploadedFile(name, path.read_bytes(), content_type="application/x-tar")


def zip_file(name, members: dict[str, bytes]):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return SimpleUploadedFile(name, out.getvalue(), content_type="application/zip")


def good_entries(count=3, seed=0):
    return [b.Entry(f"{i:04d}", seed, b.png(100 + i)) for i in range(1, count + 1)]


def samples_url(generator, bundle=False):
    return f"/api/v1/generators/{generator.pk}/samples/" + ("bundle/" if bundle else "")


def assert_nothing_written(media_root):
    assert Sample.objects.count() == 0
    assert b.stored_files(media_root) == []


# ------------------------------------------------------------------------------
# One sample
# ------------------------------------------------------------------------------


def test_upload_one_sample(api, generator, media_root):
    response = api.post(samples_url(generator), {"file": image(), "item_key": "0002", "seed": 7}, format="multipart")
    assert response.status_code == 201, response.json()
    body = response.json()
    sample = Sample.objects.get()
    assert (body["id"], body["item_key"], body["seed"], body["generator"]) == (sample.pk, "0002", 7, generator.pk)
    assert (body["width"], body["height"], body["format"]) == (16, 12, "PNG")
    assert b.stored_files(media_root) == [sample.image.name]


def test_duplicate_sample_is_409_with_the_existing_id(api, generator):
    first = api.post(samples_url(generator), {"file": image(), "item_key": "0001", "seed": 0}, format="multipart")
    again = api.post(samples_url(generator), {"file": image(data=b.png(2)), "item_key": "0001", "seed": 0},
                     format="multipart")
    assert again.status_code == 409
    error = again.json()["error"]
    assert error["code"] == "duplicate"
    assert error["details"] == {"existing_id": first.json()["id"]}
    assert Sample.objects.count() == 1


def test_unknown_item_key_names_the_field(api, generator, media_root):
    response = api.post(samples_url(generator), {"file": image(), "item_key": "9999", "seed": 0}, format="multipart")
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("unknown_item", "item_key")
    assert "'9999'" in error["message"]
    assert_nothing_written(media_root)


@pytest.mark.parametrize("data", [b.NOT_AN_IMAGE, b.truncated_jpeg()], ids=["text", "truncated"])
def test_not_an_image_names_the_file(api, generator, media_root, data):
    response = api.post(samples_url(generator), {"file": image("notes.png", data), "item_key": "0001", "seed": 0},
                        format="multipart")
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("import_refused", "file")
    assert error["details"][0]["origin"] == "notes.png"
    assert_nothing_written(media_root)


def test_image_over_the_cap_is_413(api, generator, settings, media_root):
    settings.PARITY_MAX_IMAGE_BYTES = 20_000
    response = api.post(samples_url(generator), {"file": image("big.jpg", b.noisy_jpeg()), "item_key": "0001",
                                                 "seed": 0}, format="multipart")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    assert_nothing_written(media_root)


def test_image_over_the_cap_is_413_while_streaming(api, generator, settings):
    """Content-Length says nothing wrong (a form overhead); the handler stops the stream itself."""
    settings.PARITY_MAX_IMAGE_BYTES = 20_000
    data = b.noisy_jpeg()
    assert 20_000 < len(data) < 20_000 + api_uploads.FORM_OVERHEAD
    response = api.post(samples_url(generator), {"file": image("big.jpg", data), "item_key": "0001", "seed": 0},
                        format="multipart")
    assert response.status_code == 413


def test_json_body_is_415(api, generator):
    response = api.post(samples_url(generator), {"item_key": "0001", "seed": 0}, format="json")
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_other_workspace_generator_is_404_and_viewer_403(api, content, viewer, media_root):
    theirs = content["other"]["generator"]
    assert api.get(samples_url(theirs)).status_code == 404
    posted = api.post(samples_url(theirs), {"file": image(), "item_key": "0001", "seed": 0}, format="multipart")
    assert posted.status_code == 404
    assert api.post(samples_url(theirs, bundle=True), {}, format="multipart").status_code == 404
    ours = content["lab"]["generator"]
    as_viewer = token_client(viewer)
    assert as_viewer.get(samples_url(ours)).status_code == 200
    refused = as_viewer.post(samples_url(ours), {"file": image(), "item_key": "0001", "seed": 0}, format="multipart")
    assert refused.status_code == 403
    assert as_viewer.post(samples_url(ours, bundle=True), {}, format="multipart").status_code == 403
    assert_nothing_written(media_root)


def test_list_samples_filtered_by_item_key_with_a_cursor(api, generator):
    for seed in range(3):
        for key in ("0001", "0002"):
            api.post(samples_url(generator), {"file": image(data=b.png(seed * 10 + int(key))), "item_key": key,
                                              "seed": seed}, format="multipart")
    page = api.get(samples_url(generator), {"page_size": 4}).json()
    assert len(page["results"]) == 4 and "cursor=" in page["next"]
    rest = api.get(page["next"]).json()
    assert len(rest["results"]) == 2 and rest["next"] is None
    only = api.get(samples_url(generator), {"item_key": "0002"}).json()["results"]
    assert [(row["item_key"], row["seed"]) for row in only] == [("0002", 0), ("0002", 1), ("0002", 2)]


# ------------------------------------------------------------------------------
# Bundles of samples, imported during the request
# ------------------------------------------------------------------------------


def test_bundle_tar_imports(api, generator, tmp_path):
    response = api.post(samples_url(generator, bundle=True), {"file": tar_bundle(tmp_path, good_entries())},
                        format="multipart")
    assert response.status_code == 201, response.json()
    assert response.json() == {"corpus": generator.workspace.corpora.get().pk, "created": 3, "skipped": 0,
                               "converted": 0, "rejected": []}
    assert sorted(Sample.objects.values_list("item__key", flat=True)) == ["0001", "0002", "0003"]


def test_bundle_zip_imports_and_a_rerun_skips(api, generator):
    entries = good_entries()
    members = {"manifest.jsonl": "".join(json.dumps(e.row()) + "\n" for e in entries).encode()}
    members |= {e.file: e.data for e in entries}
    first = api.post(samples_url(generator, bundle=True), {"file": zip_file("s.zip", members)}, format="multipart")
    assert first.status_code == 201 and first.json()["created"] == 3
    again = api.post(samples_url(generator, bundle=True), {"file": zip_file("s.zip", members)}, format="multipart")
    assert (again.json()["created"], again.json()["skipped"]) == (0, 3)


def test_bundle_with_a_non_image_member_writes_nothing(api, generator, tmp_path, media_root):
    entries = good_entries()
    entries[1].data = b.NOT_AN_IMAGE
    response = api.post(samples_url(generator, bundle=True), {"file": tar_bundle(tmp_path, entries)},
                        format="multipart")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "import_refused"
    assert error["details"] == [{"origin": "ladder-M.tar:manifest.jsonl:2 (samples/0002-0.png)",
                                 "reason": "not an image (Pillow cannot identify it)"}]
    assert str(tmp_path) not in error["message"] and "/tmp" not in json.dumps(error)
    assert_nothing_written(media_root)


def test_bundle_with_a_key_matching_no_item_names_file_and_line(api, generator, tmp_path, media_root):
    entries = [*good_entries(2), b.Entry("nope", 0, b.png(50))]
    response = api.post(samples_url(generator, bundle=True), {"file": tar_bundle(tmp_path, entries)},
                        format="multipart")
    assert response.status_code == 400
    [rejection] = response.json()["error"]["details"]
    assert rejection["origin"] == "ladder-M.tar:manifest.jsonl:3 (samples/nope-0.png)"
    assert "unknown item key 'nope'" in rejection["reason"]
    assert_nothing_written(media_root)


def test_bundle_skip_bad_imports_the_good_ones(api, generator, tmp_path):
    entries = [*good_entries(2), b.Entry("nope", 0, b.png(50))]
    response = api.post(samples_url(generator, bundle=True) + "?skip_bad=true",
                        {"file": tar_bundle(tmp_path, entries)}, format="multipart")
    assert response.status_code == 201
    assert response.json()["created"] == 2
    assert [r["origin"] for r in response.json()["rejected"]] == ["ladder-M.tar:manifest.jsonl:3 (samples/nope-0.png)"]


def test_hostile_zip_members_are_refused(api, generator, media_root):
    entry = good_entries(1)[0]
    link = zipfile.ZipInfo("samples/link.png")
    link.external_attr = 0o120777 << 16  # a symbolic link
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("manifest.jsonl", json.dumps(entry.row()) + "\n")
        archive.writestr(entry.file, entry.data)
        archive.writestr("../evil.png", b.png(3))
        archive.writestr(link, "/etc/passwd")
    upload = SimpleUploadedFile("hostile.zip", out.getvalue())
    response = api.post(samples_url(generator, bundle=True), {"file": upload}, format="multipart")
    assert response.status_code == 400
    reasons = {r["origin"]: r["reason"] for r in response.json()["error"]["details"]}
    assert reasons == {"hostile.zip:../evil.png": "path with '..' in archive refused",
                       "hostile.zip:samples/link.png": "symbolic link refused"}
    assert_nothing_written(media_root)


def test_bundle_that_is_no_archive_is_415(api, generator):
    upload = SimpleUploadedFile("bundle.tar", b"just some text")
    response = api.post(samples_url(generator, bundle=True), {"file": upload}, format="multipart")
    assert response.status_code == 415
    assert response.json()["error"]["message"] == "bundle.tar: not a tar or zip archive, nor a JSONL bundle."


def test_bundle_over_the_upload_cap_is_413(api, generator, tmp_path, settings, media_root):
    settings.PARITY_MAX_UPLOAD_BYTES = 1000
    response = api.post(samples_url(generator, bundle=True), {"file": tar_bundle(tmp_path, good_entries())},
                        format="multipart")
    assert response.status_code == 413
    assert_nothing_written(media_root)


def test_uploads_are_streamed_to_disk(api, generator, tmp_path, settings, monkeypatch):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1000
    seen = []
    received = api_uploads.received_archive
    monkeypatch.setattr(api_uploads, "received_archive", lambda upload: seen.append(upload) or received(upload))
    bundle = tar_bundle(tmp_path, good_entries())
    assert bundle.size > settings.FILE_UPLOAD_MAX_MEMORY_SIZE
    assert api.post(samples_url(generator, bundle=True), {"file": bundle}, format="multipart").status_code == 201
    [upload] = seen
    assert isinstance(upload, TemporaryUploadedFile)


# ------------------------------------------------------------------------------
# Import jobs
# ------------------------------------------------------------------------------


@pytest.fixture
def inline_max(settings):
    settings.PARITY_API_INLINE_IMPORT_MAX = 2
    return 2


def queue_bundle(api, generator, tmp_path, entries, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as queued:
        response = api.post(samples_url(generator, bundle=True), {"file": tar_bundle(tmp_path, entries)},
                            format="multipart")
    assert response.status_code == 202, response.json()
    assert len(queued) == 1  # the task, enqueued on commit
    return response


def test_large_bundle_is_a_job_that_runs_to_the_end(api, generator, tmp_path, inline_max, media_root,
                                                     django_capture_on_commit_callbacks):
    response = queue_bundle(api, generator, tmp_path, good_entries(), django_capture_on_commit_callbacks)
    job = response.json()
    assert response["Location"].endswith(f"/api/v1/jobs/{job['id']}/")
    assert (job["status"], job["kind"], job["total"], job["progress"]) == ("queued", "samples", 3, 0.0)
    stored = ImportJob.objects.get().upload
    assert stored in b.stored_files(media_root)

    assert import_job_task(job["id"]) == "succeeded"

    done = api.get(response["Location"]).json()
    assert (done["status"], done["progress"], done["created"], done["done"]) == ("succeeded", 1.0, 3, 3)
    assert Sample.objects.count() == 3
    assert stored not in b.stored_files(media_root)
    assert [row["id"] for row in api.get("/api/v1/jobs/").json()["results"]] == [job["id"]]


def test_refused_job_reports_the_rejections(api, generator, tmp_path, inline_max, media_root,
                                            django_capture_on_commit_callbacks):
    entries = [*good_entries(2), b.Entry("nope", 0, b.png(50))]
    job = queue_bundle(api, generator, tmp_path, entries, django_capture_on_commit_callbacks).json()
    assert import_job_task(job["id"]) == "failed"
    failed = api.get(f"/api/v1/jobs/{job['id']}/").json()
    assert [r["origin"] for r in failed["rejections"]] == ["ladder-M.tar:manifest.jsonl:3 (samples/nope-0.png)"]
    assert "import refused" in failed["error"]
    assert failed["rejection_count"] == 1
    assert_nothing_written(media_root)


def test_a_job_keeps_the_first_rejections_and_their_count(api, generator, tmp_path, inline_max, monkeypatch,
                                                           django_capture_on_commit_callbacks):
    monkeypatch.setattr(import_jobs, "MAX_STORED_REJECTIONS", 2)
    entries = [b.Entry(f"nope-{i}", 0, b.png(50 + i)) for i in range(4)]
    job = queue_bundle(api, generator, tmp_path, entries, django_capture_on_commit_callbacks).json()
    assert import_job_task(job["id"]) == "failed"
    failed = api.get(f"/api/v1/jobs/{job['id']}/").json()
    assert failed["rejection_count"] == 4
    assert [r["origin"] for r in failed["rejections"]] == [
        "ladder-M.tar:manifest.jsonl:1 (samples/nope-0-0.png)", "ladder-M.tar:manifest.jsonl:2 (samples/nope-1-0.png)"
    ]


def test_cancel_a_queued_job(api, generator, tmp_path, inline_max, media_root, django_capture_on_commit_callbacks):
    job = queue_bundle(api, generator, tmp_path, good_entries(), django_capture_on_commit_callbacks).json()
    cancelled = api.post(f"/api/v1/jobs/{job['id']}/cancel/")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert import_job_task(job["id"]) == "cancelled"  # the worker finds it cancelled and does nothing
    assert_nothing_written(media_root)
    again = api.post(f"/api/v1/jobs/{job['id']}/cancel/")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "not_cancellable"


def test_cancel_a_running_job_rolls_it_back(api, generator, tmp_path, inline_max, media_root, monkeypatch,
                                            django_capture_on_commit_callbacks):
    """The cancel arrives while the import runs: it stops at the next tick and writes nothing."""
    job = queue_bundle(api, generator, tmp_path, good_entries(), django_capture_on_commit_callbacks).json()
    monkeypatch.setattr(import_jobs, "PROGRESS_EVERY", 1)
    ticks = []

    def cancel_on_second_tick(work):
        ticks.append(1)
        if len(ticks) == 2:
            ImportJob.objects.filter(pk=job["id"]).update(cancel_requested=True)
        return work()

    monkeypatch.setattr(import_jobs, "_outside_import", cancel_on_second_tick)
    assert import_job_task(job["id"]) == "cancelled"
    assert len(ticks) == 2
    assert_nothing_written(media_root)
    ended = api.get(f"/api/v1/jobs/{job['id']}/").json()
    assert (ended["status"], ended["done"], ended["created"]) == ("cancelled", 2, 0)


def test_jobs_of_another_workspace_are_404_and_viewers_cannot_cancel(
    api, content, generator, outsider, viewer, tmp_path, inline_max, django_capture_on_commit_callbacks
):
    job = queue_bundle(api, generator, tmp_path, good_entries(), django_capture_on_commit_callbacks).json()
    stranger = token_client(outsider)
    assert stranger.get(f"/api/v1/jobs/{job['id']}/").status_code == 404
    assert stranger.post(f"/api/v1/jobs/{job['id']}/cancel/").status_code == 404
    assert stranger.get("/api/v1/jobs/").json()["count"] == 0
    assert token_client(viewer).post(f"/api/v1/jobs/{job['id']}/cancel/").status_code == 403


# ------------------------------------------------------------------------------
# Corpora
# ------------------------------------------------------------------------------


def corpus_zip(pairs, name="photos.zip"):
    rows = "".join(json.dumps({"key": p.key, "caption": p.caption, "file": f"images/{p.file}"}) + "\n" for p in pairs)
    return zip_file(name, {"captions.jsonl": rows.encode(), **{f"images/{p.file}": p.data for p in pairs}})


def test_create_a_corpus_from_a_zip(api, lab):
    response = api.post("/api/v1/corpora/", {"workspace": "lab", "name": "photos", "file": corpus_zip(b.pairs(3))},
                        format="multipart")
    assert response.status_code == 201, response.json()
    corpus = Corpus.objects.get(name="photos")
    assert response.json() == {"corpus": corpus.pk, "created": 3, "skipped": 0, "converted": 0, "rejected": []}
    assert (corpus.source, corpus.items.count()) == ("photos.zip", 3)
    clash = api.post("/api/v1/corpora/", {"workspace": "lab", "name": "photos", "file": corpus_zip(b.pairs(3))},
                     format="multipart")
    assert clash.status_code == 409 and clash.json()["error"]["code"] == "name_taken"


def test_create_a_corpus_from_a_webdataset_shard(api, lab, tmp_path):
    shard = b.shard(tmp_path / "shard-0000.tar", b.pairs(2))
    upload = SimpleUploadedFile("shard-0000.tar", shard.read_bytes())
    response = api.post("/api/v1/corpora/", {"workspace": "lab", "name": "wds", "file": upload}, format="multipart")
    assert response.status_code == 201, response.json()
    assert sorted(Item.objects.filter(corpus__name="wds").values_list("key", flat=True)) == ["k000", "k001"]


def test_corpus_with_a_bad_image_writes_nothing(api, lab, media_root):
    pairs = b.pairs(3)
    pairs[2].data = b.NOT_AN_IMAGE
    response = api.post("/api/v1/corpora/", {"workspace": "lab", "name": "photos", "file": corpus_zip(pairs)},
                        format="multipart")
    assert response.status_code == 400
    assert response.json()["error"]["details"] == [
        {"origin": "photos.zip:captions.jsonl:3 (images/k002.jpg)", "reason": "not an image (Pillow cannot identify it)"}
    ]
    assert not Corpus.objects.filter(name="photos").exists()
    assert b.stored_files(media_root) == []


def test_corpus_upload_refusals(api, content, viewer, other):
    def form(workspace):
        return {"workspace": workspace, "name": "photos", "file": corpus_zip(b.pairs(1))}

    outside = api.post("/api/v1/corpora/", form("other"), format="multipart")
    assert (outside.status_code, outside.json()["error"]["field"]) == (400, "workspace")
    assert token_client(viewer).post("/api/v1/corpora/", form("lab"), format="multipart").status_code == 403
    assert api.post("/api/v1/corpora/", {"workspace": "lab", "name": "x"}, format="json").status_code == 415
    assert not Corpus.objects.filter(name="photos").exists()


def test_large_corpus_is_a_job(api, lab, inline_max, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks():
        response = api.post("/api/v1/corpora/", {"workspace": "lab", "name": "photos",
                                                 "file": corpus_zip(b.pairs(3))}, format="multipart")
    assert response.status_code == 202
    assert import_job_task(response.json()["id"]) == "succeeded"
    job = api.get(response["Location"]).json()
    corpus = Corpus.objects.get(name="photos")
    assert (job["kind"], job["corpus"], job["created"]) == ("corpus", corpus.pk, 3)
    assert corpus.source == "photos.zip"


# ------------------------------------------------------------------------------
# JSONL bundles: images inline, one line each
# ------------------------------------------------------------------------------


def jsonl_file(name, rows):
    return SimpleUploadedFile(name, "".join(json.dumps(row) + "\n" for row in rows).encode(),
                              content_type="application/jsonl")


def inline(data, uri=False):
    encoded = base64.b64encode(data).decode()
    return f"data:image/png;base64,{encoded}" if uri else encoded


def test_create_a_corpus_from_a_jsonl_bundle(api, lab):
    pairs = b.pairs(3)
    rows = [{"key": p.key, "caption": p.caption, "image": inline(p.data, uri=i == 0), "licence": "CC0"}
            for i, p in enumerate(pairs)]
    response = api.post("/api/v1/corpora/", {"workspace": "lab", "name": "inline", "file": jsonl_file("c.jsonl", rows)},
                        format="multipart")
    assert response.status_code == 201, response.json()
    items = {i.key: i for i in Item.objects.filter(corpus__name="inline")}
    assert sorted(items) == [p.key for p in pairs]
    assert items[pairs[1].key].caption == pairs[1].caption and items[pairs[1].key].meta == {"licence": "CC0"}
    with items[pairs[0].key].image.open("rb") as stored:
        assert stored.read() == pairs[0].data


def test_jsonl_corpus_with_bad_lines_names_each_and_writes_nothing(api, lab, media_root):
    pairs = b.pairs(4)
    rows = [
        {"key": pairs[0].key, "caption": pairs[0].caption, "image": inline(pairs[0].data)},
        {"key": pairs[1].key, "caption": pairs[1].caption, "image": "not base64!"},
        {"key": pairs[2].key, "image": inline(pairs[2].data)},
        {"key": pairs[3].key, "caption": pairs[3].caption, "image": inline(b.NOT_AN_IMAGE)},
    ]
    response = api.post("/api/v1/corpora/", {"workspace": "lab", "name": "inline", "file": jsonl_file("c.jsonl", rows)},
                        format="multipart")
    assert response.status_code == 400
    details = {d["origin"]: d["reason"] for d in response.json()["error"]["details"]}
    assert details["c.jsonl:2"].startswith("field 'image' is not valid base64")
    assert details["c.jsonl:3"] == "missing field 'caption'"
    assert details["c.jsonl:4"] == "not an image (Pillow cannot identify it)"
    assert "c.jsonl:1" not in details
    assert not Corpus.objects.filter(name="inline").exists()
    assert b.stored_files(media_root) == []


def test_jsonl_image_over_the_cap_is_refused_before_decoding(api, lab, settings, media_root):
    settings.PARITY_MAX_IMAGE_BYTES = 1000
    rows = [{"key": "big", "caption": "c", "image": base64.b64encode(b"x" * 4000).decode()}]
    response = api.post("/api/v1/corpora/", {"workspace": "lab", "name": "inline", "file": jsonl_file("c.jsonl", rows)},
                        format="multipart")
    assert response.status_code == 400
    [detail] = response.json()["error"]["details"]
    assert detail == {"origin": "c.jsonl:1", "reason": "field 'image' holds about 4,000 bytes, over the limit of 1,000 bytes"}


def test_sample_bundle_as_jsonl(api, generator):
    rows = [{"key": e.key, "seed": e.seed, "image": inline(e.data)} for e in good_entries(3)]
    response = api.post(samples_url(generator, bundle=True), {"file": jsonl_file("samples.jsonl", rows)},
                        format="multipart")
    assert response.status_code == 201, response.json()
    assert response.json()["created"] == 3
    assert sorted(Sample.objects.filter(generator=generator).values_list("item__key", "seed")) == [
        ("0001", 0), ("0002", 0), ("0003", 0)]


def test_large_jsonl_corpus_is_a_job(api, lab, inline_max, django_capture_on_commit_callbacks):
    rows = [{"key": p.key, "caption": p.caption, "image": inline(p.data)} for p in b.pairs(3)]
    with django_capture_on_commit_callbacks():
        response = api.post("/api/v1/corpora/", {"workspace": "lab", "name": "inline",
                                                 "file": jsonl_file("c.jsonl", rows)}, format="multipart")
    assert response.status_code == 202
    assert response.json()["total"] == 3
    assert import_job_task(response.json()["id"]) == "succeeded"
    assert Item.objects.filter(corpus__name="inline").count() == 3


def sized_pairs(count: int) -> list:
    """Pairs whose images alternate between 16 and 40 px wide."""
    return [b.Pair(f"k{i:03d}", f"a photo of thing number {i}", b.jpeg(i, size=(40, 30) if i % 2 else (16, 12)))
            for i in range(count)]


def test_a_corpus_upload_takes_filters_and_a_sample(api, lab, media_root):
    form = {"workspace": "lab", "name": "wide", "file": corpus_zip(sized_pairs(8)), "where": ["width>=40"],
            "sample": 3, "seed": 1}
    response = api.post("/api/v1/corpora/", form, format="multipart")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["created"], body["sampled"], body["filtered"]) == (3, 3, [{"where": "width>=40", "removed": 4}])
    corpus = Corpus.objects.get(name="wide")
    assert {int(key[1:]) % 2 for key in corpus.items.values_list("key", flat=True)} == {1}
    assert corpus.selection["where"] == ["width>=40"] and corpus.selection["seed"] == 1
    bad = api.post("/api/v1/corpora/", {**form, "name": "bad", "file": corpus_zip(sized_pairs(2)),
                                        "where": ["resolution>=40"]}, format="multipart")
    assert (bad.status_code, bad.json()["error"]["field"]) == (400, "where")
    nothing = api.post("/api/v1/corpora/", {**form, "name": "none", "file": corpus_zip(sized_pairs(2)),
                                            "where": ["width>=4000"], "sample": ""}, format="multipart")
    assert nothing.status_code == 400 and "leave no item" in nothing.content.decode()
    assert not Corpus.objects.filter(name__in=["bad", "none"]).exists()


def test_a_queued_corpus_upload_keeps_its_selection(api, lab, inline_max, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks():
        response = api.post("/api/v1/corpora/", {"workspace": "lab", "name": "wide", "file": corpus_zip(sized_pairs(6)),
                                                 "where": ["width>=40"]}, format="multipart")
    assert response.status_code == 202 and response.json()["selection"]["where"] == ["width>=40"]
    assert import_job_task(response.json()["id"]) == "succeeded"
    assert Corpus.objects.get(name="wide").items.count() == 3
