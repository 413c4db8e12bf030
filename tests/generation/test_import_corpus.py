"""Corpus import (ingest, path 1): every format, every bad input, all-or-nothing, skip_bad."""

import hashlib
from pathlib import Path

import pytest
import webdataset
from PIL import Image

from generation import services
from generation.errors import IngestError
from generation.models import Corpus, Item, Sample
from generation.services import corpus_import, imports
from tests.generation import builders as b


def run_import(workspace, source, *, name="photos", **options):
    return corpus_import(workspace=workspace, name=name, source=str(source), **options)


def assert_nothing_written(media_root: Path) -> None:
    assert Corpus.objects.count() == 0
    assert Item.objects.count() == 0
    assert Sample.objects.count() == 0
    assert b.stored_files(media_root) == []


def assert_item_matches(item: Item, pair: b.Pair, *, fmt: str, mode: str, size: tuple[int, int]) -> None:
    sha = hashlib.sha256(pair.data).hexdigest()
    assert (item.key, item.caption) == (pair.key, pair.caption)
    assert item.sha256 == sha
    assert (item.width, item.height) == size
    assert (item.format, item.mode, item.byte_size) == (fmt, mode, len(pair.data))
    assert item.image.name.startswith(f"originals/{sha[:2]}/{sha}.")
    with item.image.open("rb") as stored:
        assert stored.read() == pair.data


@pytest.fixture
def small_batches(monkeypatch):
    """Write rows in batches of one, so a refused import has really inserted rows to undo."""
    monkeypatch.setattr(imports, "BATCH", 1)


# ------------------------------------------------------------------------------
# Every format imports
# ------------------------------------------------------------------------------


def test_folder_with_jsonl_keeps_extra_fields_as_meta(workspace, tmp_path, media_root):
    items = [
        b.Pair("a", "a red bus", b.jpeg(1), meta={"url": "http://x/a.jpg", "aesthetic": 6.5, "tags": ["bus"]}),
        b.Pair("b", "a dog on a beach", b.png(2, size=(20, 10)), extension="png"),
        b.Pair("c", "  a lighthouse  ", b.webp(3, size=(8, 9)), extension="webp"),
    ]
    source = b.jsonl_folder(tmp_path / "corpus", items)

    corpus, result = run_import(workspace, source, description="test set")

    assert (result.created, result.skipped, result.converted, result.rejected) == (3, 0, 0, [])
    assert (corpus.workspace, corpus.name, corpus.source, corpus.description) == (
        workspace, "photos", str(source), "test set")
    a, bb, c = corpus.items.order_by("key")
    assert_item_matches(a, items[0], fmt="JPEG", mode="RGB", size=(16, 12))
    assert_item_matches(bb, items[1], fmt="PNG", mode="RGB", size=(20, 10))
    assert c.caption == "a lighthouse"  # surrounding whitespace is trimmed
    assert (c.sha256, c.format, c.width, c.height) == (hashlib.sha256(items[2].data).hexdigest(), "WEBP", 8, 9)
    assert a.meta == {"url": "http://x/a.jpg", "aesthetic": 6.5, "tags": ["bus"]}
    assert bb.meta == {}
    assert len(b.stored_files(media_root)) == 3


def test_folder_with_csv_keeps_extra_columns_as_meta(workspace, tmp_path):
    items = [b.Pair(f"k{i}", f"caption, with a comma {i}", b.jpeg(i), meta={"url": f"u{i}", "license": "cc-by"})
             for i in range(3)]
    source = b.csv_folder(tmp_path / "corpus", items, extra_columns=["url", "license"])

    corpus, result = run_import(workspace, source)

    assert result.created == 3
    for item, pair in zip(corpus.items.order_by("key"), items, strict=True):
        assert_item_matches(item, pair, fmt="JPEG", mode="RGB", size=(16, 12))
        assert item.meta == pair.meta


@pytest.mark.parametrize("layout", ["one shard", "folder of shards", "glob of shards"])
def test_webdataset_shards(workspace, tmp_path, layout):
    items = b.pairs(6)
    for pair in items[:2]:
        pair.meta = {"url": f"http://x/{pair.key}", "width": 16}
    shards = tmp_path / "shards"
    if layout == "one shard":
        source = b.shard(shards / "00000.tar", items)
    else:
        b.shard(shards / "00000.tar", items[:3])
        b.shard(shards / "00001.tar", items[3:])
        (shards / "notes.txt").write_text("not a shard, ignored")
        source = shards if layout == "folder of shards" else f"{shards}/0000*.tar"

    corpus, result = run_import(workspace, source)

    assert result.created == 6
    stored = list(corpus.items.order_by("key"))
    for item, pair in zip(stored, items, strict=True):
        assert_item_matches(item, pair, fmt="JPEG", mode="RGB", size=(16, 12))
        assert item.meta == pair.meta


def test_shard_written_by_the_webdataset_library(workspace, tmp_path):
    path = tmp_path / "wds-00000.tar"
    samples = [
        {"__key__": f"{i:09d}", "jpg": b.jpeg(i), "txt": f"caption {i}",
         "json": {"url": f"http://example.com/{i}.jpg", "similarity": 0.31, "caption": f"caption {i}"}}
        for i in range(1, 4)
    ]
    with webdataset.TarWriter(str(path)) as sink:
        for sample in samples:
            sink.write(sample)

    corpus, result = run_import(workspace, path)

    assert result.created == 3
    items = list(corpus.items.order_by("key"))
    assert [i.key for i in items] == ["000000001", "000000002", "000000003"]
    for item, sample in zip(items, samples, strict=True):
        assert item.caption == sample["txt"]
        assert item.sha256 == hashlib.sha256(sample["jpg"]).hexdigest()
        assert item.meta == sample["json"]
        assert item.image.read() == sample["jpg"]


def test_img2dataset_shard_with_the_caption_only_in_json(workspace, tmp_path):
    items = [b.Pair(f"{i:09d}", f"caption {i}", b.jpeg(i), meta={"url": f"u{i}", "status": "success"})
             for i in range(3)]
    source = b.shard(tmp_path / "00000.tar", items, caption_in_json=True)

    corpus, result = run_import(workspace, source)

    assert result.created == 3
    for item, pair in zip(corpus.items.order_by("key"), items, strict=True):
        assert item.caption == pair.caption
        assert item.meta == {**pair.meta, "caption": pair.caption}


def test_identical_images_are_stored_once(workspace, tmp_path, media_root):
    same = b.jpeg(7)
    items = [b.Pair("a", "first", same), b.Pair("b", "second", same), b.Pair("c", "third", b.jpeg(8))]

    corpus, result = run_import(workspace, b.jsonl_folder(tmp_path / "corpus", items))

    assert result.created == 3
    a, bb, c = corpus.items.order_by("key")
    assert a.image.name == bb.image.name != c.image.name
    assert len(b.stored_files(media_root)) == 2


def test_cmyk_and_16_bit_images_are_accepted_as_they_are(workspace, tmp_path):
    items = [
        b.Pair("cmyk", "a print scan", b.cmyk_jpeg(1)),
        b.Pair("grey16", "a medical scan", b.grey16_png(), extension="png"),
        b.Pair("rgb", "a photo", b.jpeg(2)),
    ]

    corpus, result = run_import(workspace, b.jsonl_folder(tmp_path / "corpus", items))

    assert (result.created, result.converted) == (3, 2)
    modes = dict(corpus.items.values_list("key", "mode"))
    assert modes == {"cmyk": "CMYK", "grey16": "I;16", "rgb": "RGB"}
    for item, pair in zip(corpus.items.order_by("key"), items, strict=True):
        assert item.image.read() == pair.data  # stored as is, not converted


# ------------------------------------------------------------------------------
# Every bad input is refused, named, and leaves nothing behind
# ------------------------------------------------------------------------------

# (bad image bytes, words of the reason, settings to apply)
BAD_IMAGES = {
    "not an image": (lambda: b.NOT_AN_IMAGE, "not an image", {}),
    "empty file": (lambda: b"", "file is empty", {}),
    "truncated jpeg": (b.truncated_jpeg, "truncated or corrupt image", {}),
    "png with damaged pixel data": (b.png_corrupt_idat, "truncated or corrupt image", {}),
    "png with a bad header checksum": (b.png_corrupt_header, "not an image", {}),
    "pixels over the limit": (lambda: b.large_png(7000, 7000), "7000×7000 = 49,000,000 pixels, over the limit of 40,000,000",
                              {"PARITY_MAX_IMAGE_PIXELS": 40_000_000}),
    "decompression bomb": (lambda: b.large_png(12000, 12000), "decompression bomb",
                           {"PARITY_MAX_IMAGE_PIXELS": 40_000_000}),
    "bytes over the limit": (b.noisy_jpeg, "over the limit of 20,000 bytes", {"PARITY_MAX_IMAGE_BYTES": 20_000}),
    "animated png": (lambda: b.animated("PNG"), "animated image (2 frames)", {}),
    "animated webp": (lambda: b.animated("WEBP"), "animated image (2 frames)", {}),
    "animated gif": (lambda: b.animated("GIF"), "unsupported format GIF", {}),
}


@pytest.mark.parametrize("case", BAD_IMAGES)
@pytest.mark.parametrize("container", ["folder", "shard"])
def test_bad_image_is_refused_and_nothing_is_written(
    workspace, tmp_path, media_root, settings, small_batches, case, container
):
    make, reason, overrides = BAD_IMAGES[case]
    for name, value in overrides.items():
        setattr(settings, name, value)
    items = b.pairs(2) + [b.Pair("bad", "a bad image", make())]
    if container == "folder":
        source = b.jsonl_folder(tmp_path / "corpus", items)
        origin = f"{source / 'captions.jsonl'}:3"
    else:
        source = b.shard(tmp_path / "00000.tar", items)
        origin = f"{source}:bad.jpg"

    with pytest.raises(IngestError) as refused:
        run_import(workspace, source)

    message = str(refused.value)
    assert "nothing was written" in message
    # The first rejection names the file and line (or the tar member), and the image file.
    # (An oversized shard member also leaves its key without an image: a second rejection.)
    first = refused.value.rejections[0]
    assert first.origin.startswith(origin)
    assert "bad.jpg" in str(first) and reason in first.reason
    assert str(first) in message
    assert_nothing_written(media_root)


@pytest.mark.parametrize("pillow_limit, size", [(1000, (40, 40)), (1000, (100, 100))],
                         ids=["warning past the limit", "error past twice the limit"])
def test_pillows_own_bomb_check_still_refuses_when_the_setting_is_huge(
    workspace, tmp_path, media_root, settings, monkeypatch, pillow_limit, size
):
    settings.PARITY_MAX_IMAGE_PIXELS = 10**12
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pillow_limit)
    items = [b.Pair("a", "small", b.png(1, size=(20, 20)), extension="png"),
             b.Pair("bomb", "large", b.png(2, size=size), extension="png")]
    source = b.jsonl_folder(tmp_path / "corpus", items)

    with pytest.raises(IngestError) as refused:
        run_import(workspace, source)

    assert "captions.jsonl:2 (bomb.png): decompression bomb refused" in str(refused.value)
    assert_nothing_written(media_root)


# (rows of captions.jsonl after two good ones, line of the bad row, words of the reason)
BAD_JSONL = {
    "duplicate key": ({"key": "k000", "caption": "again", "file": "k001.jpg"}, 3,
                      "duplicate key 'k000' (first at "),
    "empty caption": ({"key": "x", "caption": "", "file": "k001.jpg"}, 3, "caption is empty"),
    "whitespace caption": ({"key": "x", "caption": " \t\n ", "file": "k001.jpg"}, 3, "caption is empty"),
    "malformed json": ('{"key": "x", "caption": "oops", ', 3, "malformed JSON"),
    "json that is not an object": ('["x", "caption", "k001.jpg"]', 3, "expected a JSON object, got list"),
    "missing field": ({"key": "x", "file": "k001.jpg"}, 3, "missing field 'caption'"),
    "wrong-typed field": ({"key": "x", "caption": 42, "file": "k001.jpg"}, 3,
                          "field 'caption' must be a string, got int"),
    "missing file": ({"key": "x", "caption": "c", "file": "nowhere.jpg"}, 3, "file 'nowhere.jpg' not found"),
    "file outside the folder": ({"key": "x", "caption": "c", "file": "../outside.jpg"}, 3,
                                "file '../outside.jpg' points outside"),
    "absolute file path": ({"key": "x", "caption": "c", "file": "/etc/passwd"}, 3,
                           "file '/etc/passwd' is an absolute path"),
}


@pytest.mark.parametrize("case", BAD_JSONL)
def test_bad_jsonl_record_is_refused_and_nothing_is_written(workspace, tmp_path, media_root, small_batches, case):
    row, line, reason = BAD_JSONL[case]
    (tmp_path / "outside.jpg").write_bytes(b.jpeg(9))
    source = b.jsonl_folder(tmp_path / "corpus", b.pairs(2), extra_rows=[row])

    with pytest.raises(IngestError) as refused:
        run_import(workspace, source)

    origin = f"{source / 'captions.jsonl'}:{line}"
    assert f"{origin}" in str(refused.value)
    assert reason in str(refused.value)
    assert len(refused.value.rejections) == 1
    assert refused.value.rejections[0].origin.startswith(origin)
    assert_nothing_written(media_root)


def test_caption_over_the_length_limit(workspace, tmp_path, media_root, settings):
    settings.PARITY_MAX_CAPTION_CHARS = 20
    items = [b.Pair("ok", "x" * 20, b.jpeg(1)), b.Pair("long", "y" * 21, b.jpeg(2))]
    source = b.jsonl_folder(tmp_path / "corpus", items)

    with pytest.raises(IngestError) as refused:
        run_import(workspace, source)

    assert "captions.jsonl:2 (long.jpg): caption has 21 characters, over the limit of 20" in str(refused.value)
    assert_nothing_written(media_root)


def test_csv_row_with_the_wrong_column_count(workspace, tmp_path, media_root):
    source = b.csv_folder(tmp_path / "corpus", b.pairs(2))
    with (source / "captions.csv").open("a", encoding="utf-8") as index:
        index.write("k009,a caption,k001.jpg,surplus\n")

    with pytest.raises(IngestError) as refused:
        run_import(workspace, source)

    assert f"{source / 'captions.csv'}:4: expected 3 columns (key,caption,file), found 4" in str(refused.value)
    assert_nothing_written(media_root)


def test_csv_header_missing_a_column(workspace, tmp_path, media_root):
    source = tmp_path / "corpus"
    b.write_files(source, {"a.jpg": b.jpeg(1)})
    b.write_csv(source / "captions.csv", ["key", "file"], [["a", "a.jpg"]])

    with pytest.raises(IngestError, match="header lacks column") as refused:
        run_import(workspace, source)

    assert f"{source / 'captions.csv'}:1: header lacks column(s) caption" in str(refused.value)
    assert_nothing_written(media_root)


def test_duplicate_key_across_two_shards(workspace, tmp_path, media_root):
    first, second = b.pairs(2), b.pairs(2, start=2)
    second[1].key = first[0].key
    shards = tmp_path / "shards"
    b.shard(shards / "00000.tar", first)
    b.shard(shards / "00001.tar", second)

    with pytest.raises(IngestError) as refused:
        run_import(workspace, shards)

    message = str(refused.value)
    assert f"{shards / '00001.tar'}:k000.jpg: duplicate key 'k000' (first at {shards / '00000.tar'}:k000.jpg)" in message
    assert_nothing_written(media_root)


HOSTILE_MEMBERS = {
    "absolute path": (b.regular("/etc/evil.jpg", b"x"), "/etc/evil.jpg", "absolute path in archive refused"),
    "dot-dot path": (b.regular("../evil.jpg", b"x"), "../evil.jpg", "path with '..' in archive refused"),
    "nested dot-dot path": (b.regular("a/../../evil.jpg", b"x"), "a/../../evil.jpg", "path with '..'"),
    "symlink": (b.symlink("evil.jpg", "/etc/passwd"), "evil.jpg", "symbolic link refused (to '/etc/passwd')"),
    "hard link": (b.hardlink("evil.jpg", "k000.jpg"), "evil.jpg", "hard link refused (to 'k000.jpg')"),
    "character device": (b.char_device("evil.jpg"), "evil.jpg", "device file or FIFO refused"),
    "fifo": (b.fifo("evil.jpg"), "evil.jpg", "device file or FIFO refused"),
}


@pytest.mark.parametrize("case", HOSTILE_MEMBERS)
def test_hostile_shard_member_is_refused_and_nothing_is_written(workspace, tmp_path, media_root, case):
    member, name, reason = HOSTILE_MEMBERS[case]
    source = b.shard(tmp_path / "00000.tar", b.pairs(2), extra=[member])

    with pytest.raises(IngestError) as refused:
        run_import(workspace, source)

    assert f"{source}:{name}: {reason}" in str(refused.value)
    assert [r.origin for r in refused.value.rejections] == [f"{source}:{name}"]
    assert_nothing_written(media_root)


def test_shard_key_without_caption(workspace, tmp_path, media_root):
    source = b.shard(tmp_path / "00000.tar", b.pairs(1), extra=[b.regular("lonely.jpg", b.jpeg(5))])

    with pytest.raises(IngestError) as refused:
        run_import(workspace, source)

    assert f"{source}:lonely: no caption for key 'lonely'" in str(refused.value)
    assert_nothing_written(media_root)


@pytest.mark.parametrize("source, reason", [
    ("missing-folder/", "no such file or folder"),
    ("empty/", "no captions.jsonl, captions.csv or .tar shards"),
    ("nothing-*.tar", "no file matches this pattern"),
])
def test_source_that_is_not_a_corpus(workspace, tmp_path, media_root, source, reason):
    (tmp_path / "empty").mkdir()
    with pytest.raises(IngestError, match=reason):
        run_import(workspace, str(tmp_path / source).rstrip("/"))
    assert_nothing_written(media_root)


# ------------------------------------------------------------------------------
# All or nothing
# ------------------------------------------------------------------------------


def test_five_good_and_one_bad_writes_nothing_and_names_the_bad_one(workspace, tmp_path, media_root, small_batches):
    items = b.pairs(5)
    items.insert(3, b.Pair("broken", "half a picture", b.truncated_jpeg()))
    source = b.jsonl_folder(tmp_path / "corpus", items)

    with pytest.raises(IngestError) as refused:
        run_import(workspace, source)

    message = str(refused.value)
    assert message.startswith("import refused: 1 bad item; nothing was written")
    assert f"{source / 'captions.jsonl'}:4 (broken.jpg): truncated or corrupt image" in message
    assert "k000" not in message and "k004" not in message
    assert_nothing_written(media_root)


def test_every_bad_record_is_listed(workspace, tmp_path):
    items = b.pairs(2) + [b.Pair("x", "", b.jpeg(3)), b.Pair("y", "fine", b.NOT_AN_IMAGE)]
    with pytest.raises(IngestError) as refused:
        run_import(workspace, b.jsonl_folder(tmp_path / "corpus", items))
    assert str(refused.value).startswith("import refused: 2 bad items")
    assert [r.reason.split(" (")[0] for r in refused.value.rejections] == ["caption is empty", "not an image"]


def test_failed_import_removes_its_files_but_keeps_files_that_were_there(workspace, tmp_path, media_root):
    shared = b.jpeg(1)
    corpus_a, _ = run_import(workspace, b.jsonl_folder(tmp_path / "a", [b.Pair("a1", "kept", shared)]), name="A")
    before = b.stored_files(media_root)
    items_b = [b.Pair("b1", "same image as A", shared), b.Pair("b2", "a new image", b.jpeg(2)),
               b.Pair("b3", "a bad one", b.NOT_AN_IMAGE)]

    with pytest.raises(IngestError):
        run_import(workspace, b.jsonl_folder(tmp_path / "b", items_b), name="B")

    assert b.stored_files(media_root) == before
    assert list(Corpus.objects.all()) == [corpus_a]
    assert corpus_a.items.get().image.read() == shared


def test_failure_while_storing_cleans_up(workspace, tmp_path, media_root, monkeypatch):
    """Not only refusals: any error after files were stored removes them and the rows."""
    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Item.objects, "bulk_create", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        run_import(workspace, b.jsonl_folder(tmp_path / "corpus", b.pairs(3)))
    assert_nothing_written(media_root)


def test_a_corpus_name_is_used_once_per_workspace(workspace, tmp_path):
    run_import(workspace, b.jsonl_folder(tmp_path / "a", b.pairs(1)))
    with pytest.raises(IngestError, match="already has a corpus named 'photos'"):
        run_import(workspace, b.jsonl_folder(tmp_path / "b", b.pairs(1, start=5)))
    assert Item.objects.count() == 1


# ------------------------------------------------------------------------------
# skip_bad
# ------------------------------------------------------------------------------


def test_skip_bad_imports_the_good_ones_and_returns_the_rejections(workspace, tmp_path, media_root):
    items = b.pairs(5)
    items.insert(1, b.Pair("broken", "half a picture", b.truncated_jpeg()))
    items.append(b.Pair("blank", "   ", b.jpeg(9)))
    source = b.jsonl_folder(tmp_path / "corpus", items, extra_rows=["not json"])

    corpus, result = run_import(workspace, source, skip_bad=True)

    assert result.created == 5
    assert sorted(corpus.items.values_list("key", flat=True)) == [p.key for p in b.pairs(5)]
    index = source / "captions.jsonl"
    assert [r.origin for r in result.rejected] == [
        f"{index}:2 (broken.jpg)", f"{index}:7 (blank.jpg)", f"{index}:8"]
    assert [r.as_dict()["reason"].split(":")[0] for r in result.rejected] == [
        "truncated or corrupt image", "caption is empty", "malformed JSON"]
    assert len(b.stored_files(media_root)) == 5


def test_skip_bad_with_nothing_good_refuses(workspace, tmp_path, media_root):
    items = [b.Pair("a", "c", b.NOT_AN_IMAGE)]
    with pytest.raises(IngestError, match="no item to import") as refused:
        run_import(workspace, b.jsonl_folder(tmp_path / "corpus", items), skip_bad=True)
    assert len(refused.value.rejections) == 1
    assert_nothing_written(media_root)


def test_progress_is_reported_per_record(workspace, tmp_path):
    seen = []
    run_import(workspace, b.jsonl_folder(tmp_path / "corpus", b.pairs(3)), on_progress=seen.append)
    assert seen == [1, 2, 3]


@pytest.mark.parametrize("index", ["captions.csv", "captions.jsonl"])
def test_an_index_saved_with_a_byte_order_mark_imports(workspace, tmp_path, index):
    # Spreadsheet programs save UTF-8 with a BOM; it must not hide the first column.
    items = b.pairs(2)
    folder = b.csv_folder(tmp_path / "c", items) if index.endswith("csv") else b.jsonl_folder(tmp_path / "c", items)
    path = folder / index
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    _, result = run_import(workspace, folder)
    assert result.created == 2
    assert sorted(Item.objects.values_list("key", flat=True)) == sorted(p.key for p in items)


def test_a_jsonl_bundle_imports_from_the_cli_path(tmp_path, workspace, media_root):
    """The CLI reads a .jsonl bundle through the same reader as the API upload."""
    import base64
    import json

    pairs = b.pairs(2)
    path = tmp_path / "inline.jsonl"
    path.write_text("".join(
        json.dumps({"key": p.key, "caption": p.caption, "image": base64.b64encode(p.data).decode()}) + "\n"
        for p in pairs
    ) + "\n")
    corpus, result = services.corpus_import(workspace=workspace, name="inline", source=str(path))
    assert result.created == 2
    assert sorted(corpus.items.values_list("key", "caption")) == sorted((p.key, p.caption) for p in pairs)
