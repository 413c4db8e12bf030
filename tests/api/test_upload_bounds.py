"""Uploads bounded in memory and time, and file content no database stores, through the API.

Each is a 400 `import_refused` naming the uploaded file and its line or member (never
the server's temporary file), and writes nothing.
"""

import base64
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from generation.ingest.lines import inline_line_cap
from generation.models import Corpus, ImportJob, Sample
from tests.api.conftest import token_client
from tests.generation import builders as b
from tests.generation import hostile_files as h

pytestmark = pytest.mark.django_db

NUL_REASON = "holds a NUL character (U+0000), which cannot be stored as text"
SURROGATE_REASON = "holds a lone surrogate (U+D800), which is no character; is a JSON escape missing its pair?"


@pytest.fixture
def api(content, researcher):
    return token_client(researcher)


@pytest.fixture
def generator(content):
    return content["lab"]["generator"]


def upload(path) -> SimpleUploadedFile:
    return SimpleUploadedFile(path.name, path.read_bytes())


def post_corpus(api, file):
    return api.post("/api/v1/corpora/", {"workspace": "lab", "name": "photos", "file": file}, format="multipart")


def refusal(response) -> dict:
    assert response.status_code == 400, response.content[:500]
    error = response.json()["error"]
    assert error["code"] == "import_refused"
    assert "/tmp" not in json.dumps(error)
    return error


def assert_nothing_written(media_root, stored=()):
    assert not Corpus.objects.filter(name="photos").exists()
    assert Sample.objects.count() == 0 and ImportJob.objects.count() == 0
    assert b.stored_files(media_root) == list(stored)


@pytest.mark.parametrize(("caption", "reason"), [
    ("a red\u0000bus", f"field 'caption' {NUL_REASON}"),
    ("a red \ud800 bus", f"field 'caption' {SURROGATE_REASON}"),
], ids=["NUL", "lone surrogate"])
def test_a_caption_no_database_stores_is_a_400_naming_file_line_and_field(api, lab, media_root, caption, reason):
    pairs = b.pairs(2)
    rows = [{"key": p.key, "caption": p.caption, "image": base64.b64encode(p.data).decode()} for p in pairs]
    rows[1]["caption"] = caption
    file = SimpleUploadedFile("c.jsonl", "".join(json.dumps(row) + "\n" for row in rows).encode())
    error = refusal(post_corpus(api, file))
    assert error["details"] == [{"origin": "c.jsonl:2", "reason": reason}]
    assert_nothing_written(media_root)


def test_a_manifest_key_with_a_nul_is_a_400(api, generator, tmp_path, media_root):
    stored = b.stored_files(media_root)
    entries = [b.Entry("0001", 0, b.png(1)), b.Entry("00\u000002", 0, b.png(2), file="samples/2.png")]
    bundle = b.bundle_tar(tmp_path / "ladder-M.tar", entries)
    response = api.post(f"/api/v1/generators/{generator.pk}/samples/bundle/", {"file": upload(bundle)},
                        format="multipart")
    assert refusal(response)["details"] == [
        {"origin": "ladder-M.tar:manifest.jsonl:2", "reason": f"field 'key' {NUL_REASON}"}
    ]
    assert_nothing_written(media_root, stored)


def test_a_member_name_that_is_not_utf8_is_a_400_with_the_name_escaped(api, lab, tmp_path, media_root):
    pair = b.pairs(1)[0]
    pair.key = "bad\udcff"  # written to the tar as the byte 0xff, which is no UTF-8
    shard = b.shard(tmp_path / "shard-0000.tar", [pair])
    error = refusal(post_corpus(api, upload(shard)))
    assert error["details"] == [{"origin": "shard-0000.tar:bad\\udcff", "reason": (
        "field 'key' holds a lone surrogate (U+DCFF), which is no character; is a JSON escape missing its pair?")}]
    assert_nothing_written(media_root)


def test_a_jsonl_line_over_the_cap_is_a_400_naming_the_line(api, generator, tmp_path, settings, media_root):
    settings.PARITY_MAX_IMAGE_BYTES = 1000
    stored = b.stored_files(media_root)
    cap = inline_line_cap(1000)
    source = h.jsonl_with_a_long_line(tmp_path / "samples.jsonl", 3 * cap, fields={"seed": 0})
    response = api.post(f"/api/v1/generators/{generator.pk}/samples/bundle/", {"file": upload(source)},
                        format="multipart")
    details = {d["origin"]: d["reason"] for d in refusal(response)["details"]}
    assert details["samples.jsonl:2"] == (
        f"line is over {cap:,} bytes: more than an image of PARITY_MAX_IMAGE_BYTES in base64 "
        "and 1,048,576 bytes of other fields"
    )
    assert_nothing_written(media_root, stored)


def test_an_archive_over_the_member_cap_is_a_400_before_any_import(api, lab, tmp_path, settings, media_root):
    settings.PARITY_MAX_ARCHIVE_MEMBERS = 20
    archive = h.many_members_tar(tmp_path / "many.tar.gz", 500)
    error = refusal(post_corpus(api, upload(archive)))
    assert error["message"] == (
        "many.tar.gz: more than 20 members in the archive, the limit of PARITY_MAX_ARCHIVE_MEMBERS; "
        "nothing was read further"
    )
    assert_nothing_written(media_root)


def test_a_zip_over_the_member_cap_is_a_400(api, generator, tmp_path, settings, media_root):
    settings.PARITY_MAX_ARCHIVE_MEMBERS = 20
    stored = b.stored_files(media_root)
    archive = h.many_members_zip(tmp_path / "bundle.zip", 500, index=b'{"key": "0001", "seed": 0, "file": "x"}\n')
    response = api.post(f"/api/v1/generators/{generator.pk}/samples/bundle/", {"file": upload(archive)},
                        format="multipart")
    assert refusal(response)["message"].startswith("bundle.zip: more than 20 members in the archive")
    assert_nothing_written(media_root, stored)


def test_a_compressed_tar_that_expands_past_the_upload_cap_is_a_400(api, lab, tmp_path, settings, media_root):
    settings.PARITY_MAX_UPLOAD_BYTES = 1024 * 1024
    archive = h.expanding_tar(tmp_path / "bomb.tar.gz", 64 * 1024 * 1024)
    assert archive.stat().st_size < settings.PARITY_MAX_UPLOAD_BYTES // 4
    error = refusal(post_corpus(api, upload(archive)))
    assert error["message"] == (
        "bomb.tar.gz: the archive expands past 1,048,576 bytes (PARITY_MAX_UPLOAD_BYTES); nothing was read further"
    )
    assert_nothing_written(media_root)
