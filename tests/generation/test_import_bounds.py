"""Imports bounded in memory and time, and text no database stores refused by its field.

A JSONL line past its cap is refused by number as it is read, never held whole; an
archive past PARITY_MAX_ARCHIVE_MEMBERS is refused while its members are counted; a
compressed tar is refused as soon as it expands past PARITY_MAX_UPLOAD_BYTES; tar headers
that tarfile would read whole are capped. A key, caption, file name or metadata string
holding a NUL or a lone surrogate is a rejection naming its file, line and field, through
the services and the CLI, and nothing is written.
"""

import base64
import io
import json
import tarfile
import tracemalloc
import zipfile
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from generation.errors import IngestError
from generation.ingest.archives import zip_member_count
from generation.ingest.lines import inline_line_cap
from generation.models import Corpus, Item, Sample
from generation.services import corpus_import, samples_import
from tests.generation import builders as b
from tests.generation import hostile_files as h

NUL_REASON = "holds a NUL character (U+0000), which cannot be stored as text"


def refused(workspace, source, **options) -> IngestError:
    with pytest.raises(IngestError) as caught:
        corpus_import(workspace=workspace, name="photos", source=str(source), **options)
    return caught.value


def reasons(error: IngestError) -> dict[str, str]:
    return {r.origin: r.reason for r in error.rejections}


def assert_nothing_written(media_root: Path) -> None:
    assert Corpus.objects.count() == 0
    assert Item.objects.count() == 0
    assert Sample.objects.count() == 0
    assert b.stored_files(media_root) == []


@pytest.fixture
def header_reads(monkeypatch):
    """How many tar headers tarfile parses, and how many zip entries zipfile makes objects of."""
    counts = {"tar": 0, "zip": 0}
    frombuf = tarfile.TarInfo.frombuf.__func__

    def counted_frombuf(cls, *args):
        counts["tar"] += 1
        return frombuf(cls, *args)

    zip_init = zipfile.ZipInfo.__init__

    def counted_zip_init(self, *args, **kwargs):
        counts["zip"] += 1
        zip_init(self, *args, **kwargs)

    monkeypatch.setattr(tarfile.TarInfo, "frombuf", classmethod(counted_frombuf))
    monkeypatch.setattr(zipfile.ZipInfo, "__init__", counted_zip_init)
    return counts


# ------------------------------------------------------------------------------
# A JSONL line longer than any image allows
# ------------------------------------------------------------------------------


def test_a_line_over_the_cap_is_refused_by_number_and_never_held_whole(workspace, tmp_path, settings, media_root):
    settings.PARITY_MAX_IMAGE_BYTES = 1000
    cap = inline_line_cap(1000)
    source = h.jsonl_with_a_long_line(tmp_path / "c.jsonl", 10 * cap, fields={"caption": "a photo"})

    tracemalloc.start()
    try:
        error = refused(workspace, source)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert peak < 3 * cap, f"reading a line of {10 * cap:,} bytes allocated {peak:,} bytes at its peak"
    assert reasons(error) == {
        f"{source}:2": f"line is over {cap:,} bytes: more than an image of PARITY_MAX_IMAGE_BYTES in base64 "
                       "and 1,048,576 bytes of other fields",
    }
    assert_nothing_written(media_root)


def test_skip_bad_imports_the_lines_around_a_long_one(workspace, tmp_path, settings):
    settings.PARITY_MAX_IMAGE_BYTES = 1000
    source = h.jsonl_with_a_long_line(tmp_path / "c.jsonl", 2 * inline_line_cap(1000), fields={"caption": "a"})
    corpus, result = corpus_import(workspace=workspace, name="photos", source=str(source), skip_bad=True)
    assert sorted(corpus.items.values_list("key", flat=True)) == ["good-0", "good-1"]
    assert [r.origin for r in result.rejected] == [f"{source}:2"]


def test_a_manifest_line_has_the_cap_of_a_line_without_an_image(workspace, tmp_path):
    corpus_import(workspace=workspace, name="photos", source=str(b.jsonl_folder(tmp_path / "c", b.pairs(1))))
    bundle = b.bundle_folder(tmp_path / "bundle", [b.Entry("k000", 0, b.png(1))],
                             extra_rows=[{"key": "k000", "seed": 1, "file": "x.png", "note": "n" * 1_100_000}])
    generator = workspace.generators.create(name="g")
    with pytest.raises(IngestError) as caught:
        samples_import(generator=generator, source=str(bundle))
    assert reasons(caught.value) == {
        f"{bundle}/manifest.jsonl:2": "line is over 1,048,576 bytes, more than the fields of one record need"
    }


# ------------------------------------------------------------------------------
# Archives: members counted, expansion capped, tar headers bounded
# ------------------------------------------------------------------------------
CAPTIONS = b'{"key": "k", "caption": "c", "file": "m0000000.png"}\n'


@pytest.mark.parametrize("name", ["shard.tar", "corpus.tar.gz", "corpus.zip"])
def test_an_archive_over_the_member_cap_is_refused_while_counting(workspace, tmp_path, settings, media_root,
                                                                  header_reads, name):
    settings.PARITY_MAX_ARCHIVE_MEMBERS = 20
    path = tmp_path / name
    if name.endswith(".zip"):
        h.many_members_zip(path, 500, index=CAPTIONS)
    else:
        h.many_members_tar(path, 500, index=None if name.startswith("shard") else CAPTIONS)
    header_reads.update(tar=0, zip=0)  # writing the zip made its entries
    error = refused(workspace, path)
    assert str(error) == (
        f"{path}: more than 20 members in the archive, the limit of PARITY_MAX_ARCHIVE_MEMBERS; "
        "nothing was read further"
    )
    # Each reader stops one member past the cap; a zip is refused before zipfile reads its entries.
    assert header_reads["tar"] <= 2 * 22 and header_reads["zip"] == 0
    assert_nothing_written(media_root)


@pytest.mark.parametrize("shape", ["plain", "comment", "end record's offset spelling its signature", "zip64"])
def test_zip_entries_are_counted_as_zipfile_reads_them(tmp_path, shape):
    """The count walks the central directory zipfile would read, whatever the end record claims."""
    count = 70_000 if shape == "zip64" else 300  # zip64 records past 65,535 entries
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for number in range(count):
            archive.writestr(f"{number}.png", b"")
        if shape == "comment":
            archive.comment = b"c" * 1000
    if shape.startswith("end record"):
        # zipfile finds the directory from the record's position and size, never its offset.
        data = bytearray(path.read_bytes())
        data[-6:-2] = b"PK\x05\x06"
        path.write_bytes(bytes(data))
    with zipfile.ZipFile(path) as archive:
        assert len(archive.infolist()) == count
    assert zip_member_count(path, stop_after=10**9) == count
    assert zip_member_count(path, stop_after=10) == 11


def test_a_sample_bundle_over_the_member_cap_is_refused(workspace, tmp_path, settings, header_reads):
    settings.PARITY_MAX_ARCHIVE_MEMBERS = 20
    corpus_import(workspace=workspace, name="photos", source=str(b.jsonl_folder(tmp_path / "c", b.pairs(1))))
    bundle = h.many_members_tar(tmp_path / "bundle.tar", 500, index=b'{"key": "k000", "seed": 0, "file": "x"}\n')
    header_reads.update(tar=0, zip=0)
    with pytest.raises(IngestError, match="more than 20 members in the archive"):
        samples_import(generator=workspace.generators.create(name="g"), source=str(bundle))
    assert header_reads["tar"] <= 22


def test_an_archive_at_the_member_cap_imports(workspace, tmp_path, settings):
    pairs = b.pairs(3)
    settings.PARITY_MAX_ARCHIVE_MEMBERS = 6  # three images and three captions
    corpus, result = corpus_import(workspace=workspace, name="photos",
                                   source=str(b.shard(tmp_path / "shard.tar", pairs)))
    assert result.created == 3


@pytest.mark.parametrize("name", ["shard.tar.gz", "corpus.tar.gz", "bundle.tar.gz"])
def test_a_compressed_tar_is_refused_once_it_expands_past_the_cap(workspace, tmp_path, settings, media_root, name):
    settings.PARITY_MAX_UPLOAD_BYTES = 1024 * 1024
    index = None if name.startswith("shard") else CAPTIONS
    path = h.expanding_tar(tmp_path / name, 16 * 1024 * 1024, index=index)
    assert path.stat().st_size < 100_000
    if name.startswith("bundle"):
        corpus_import(workspace=workspace, name="c", source=str(b.jsonl_folder(tmp_path / "c", b.pairs(1))))
    with pytest.raises(IngestError) as caught:
        if name.startswith("bundle"):
            samples_import(generator=workspace.generators.create(name="g"), source=str(path))
        else:
            corpus_import(workspace=workspace, name="photos", source=str(path))
    assert str(caught.value) == (
        f"{path}: the archive expands past 1,048,576 bytes (PARITY_MAX_UPLOAD_BYTES); nothing was read further"
    )
    assert not Corpus.objects.filter(name="photos").exists() and Sample.objects.count() == 0


@pytest.mark.parametrize(("build", "message"), [
    (lambda path: h.long_pax_header_tar(path, 100_000),
     "a long-name or pax header of 100,017 bytes refused (at most 65,536)"),
    (h.pax_sparse_tar, "sparse member 'sparse.png' refused"),
    (lambda path: h.nested_long_names_tar(path, 5000), "tar headers nested too deeply"),
], ids=["long pax header", "pax sparse map", "nested long names"])
def test_tar_headers_tarfile_reads_whole_are_refused(workspace, tmp_path, media_root, build, message):
    path = build(tmp_path / "shard.tar")
    assert str(refused(workspace, path)) == f"{path}: {message}"
    assert_nothing_written(media_root)


# ------------------------------------------------------------------------------
# Text no database stores: NUL, lone surrogates
# ------------------------------------------------------------------------------


@pytest.mark.parametrize(("fields", "reason"), [
    ({"caption": "a red\u0000bus"}, f"field 'caption' {NUL_REASON}"),
    ({"caption": "a red \ud800 bus"},
     "field 'caption' holds a lone surrogate (U+D800), which is no character; is a JSON escape missing its pair?"),
    ({"key": "k\u0000"}, f"field 'key' {NUL_REASON}"),
    ({"exif": {"Model": "x\u0000"}}, f"field 'exif.Model' {NUL_REASON}"),
    ({"tags": ["ok", "\udc80"]},
     "field 'tags[1]' holds a lone surrogate (U+DC80), which is no character; is a JSON escape missing its pair?"),
    ({"ta\u0000g": 1}, f"the name of field 'ta\\x00g' {NUL_REASON}"),
], ids=["caption NUL", "caption surrogate", "key NUL", "nested meta NUL", "meta list surrogate", "meta name NUL"])
def test_unstorable_text_in_a_jsonl_corpus_is_a_rejection_naming_the_field(workspace, tmp_path, media_root,
                                                                           fields, reason):
    pairs = b.pairs(2)
    rows = [{"key": p.key, "caption": p.caption, "image": base64.b64encode(p.data).decode()} for p in pairs]
    rows[1].update(fields)
    source = b.write_jsonl(tmp_path / "c.jsonl", rows)  # json.dumps writes \u0000 and \ud800 as escapes
    assert "\\u" in source.read_text()
    assert reasons(refused(workspace, source)) == {f"{source}:2": reason}
    assert_nothing_written(media_root)


def test_json_past_the_parser_limits_is_a_rejection(workspace, tmp_path, media_root):
    good = {"key": "k", "caption": "c", "image": base64.b64encode(b.png(1)).decode()}
    source = b.write_jsonl(tmp_path / "c.jsonl", [
        good,
        '{"key": "a", "caption": "c", "n": ' + "1" * 5000 + "}",
        '{"key": "b", "caption": "c", "deep": ' + "[" * 100_000 + "]" * 100_000 + "}",
    ])
    found = reasons(refused(workspace, source))
    assert found[f"{source}:2"].startswith("malformed JSON: Exceeds the limit (4300 digits) for integer string")
    assert found[f"{source}:3"] == "malformed JSON: nested too deeply"
    assert_nothing_written(media_root)


def test_a_file_name_with_a_nul_is_a_rejection(workspace, tmp_path, media_root):
    pairs = b.pairs(1)
    source = b.jsonl_folder(tmp_path / "corpus", pairs,
                            extra_rows=[{"key": "x", "caption": "c", "file": "k000\u0000.jpg"}])
    assert reasons(refused(workspace, source)) == {f"{source}/captions.jsonl:2": f"field 'file' {NUL_REASON}"}
    assert_nothing_written(media_root)


def test_webdataset_caption_with_a_nul_and_a_name_that_is_not_utf8(workspace, tmp_path, media_root):
    good, nul, named = b.pairs(3)
    nul.caption = "a dog\u0000"
    shard = b.shard(tmp_path / "shard.tar", [good, nul])
    # A member name that is not UTF-8: tarfile hands it over with a lone surrogate for the byte.
    with tarfile.open(shard, "a") as archive:
        for suffix, data in ((".jpg", named.data), (".txt", named.caption.encode())):
            info = tarfile.TarInfo("bad\udcff" + suffix)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    assert reasons(refused(workspace, shard)) == {
        f"{shard}:k001.txt": f"field 'caption' {NUL_REASON}",
        f"{shard}:bad\\udcff": "field 'key' holds a lone surrogate (U+DCFF), which is no character; "
                               "is a JSON escape missing its pair?",
    }
    assert_nothing_written(media_root)


def test_import_corpus_refuses_a_nul_caption_with_a_command_error(workspace, tmp_path, media_root):
    rows = [{"key": "k", "caption": "a\u0000b", "image": base64.b64encode(b.png(1)).decode()}]
    source = b.write_jsonl(tmp_path / "c.jsonl", rows)
    with pytest.raises(CommandError) as caught:
        call_command("import_corpus", str(source), workspace="lab", name="photos", stdout=io.StringIO(),
                     verbosity=0)
    assert f"{source}:1: field 'caption' {NUL_REASON}" in str(caught.value)
    assert_nothing_written(media_root)


def test_import_samples_refuses_a_lone_surrogate_key_with_a_command_error(workspace, tmp_path, media_root):
    call_command("import_corpus", str(b.jsonl_folder(tmp_path / "c", b.pairs(1))), workspace="lab", name="photos",
                 stdout=io.StringIO(), verbosity=0)
    stored = b.stored_files(media_root)
    line = json.dumps({"key": "k000\ud800", "seed": 0, "image": base64.b64encode(b.png(5)).decode()})
    source = tmp_path / "samples.jsonl"
    source.write_text(line + "\n")
    with pytest.raises(CommandError) as caught:
        call_command("import_samples", str(source), generator="g", workspace="lab", create=True,
                     stdout=io.StringIO(), verbosity=0)
    assert f"{source}:1: field 'key' holds a lone surrogate (U+D800)" in str(caught.value)
    assert Sample.objects.count() == 0 and b.stored_files(media_root) == stored
