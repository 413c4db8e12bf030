"""Sample import: bundles as folder or tar, reruns, conflicts and every bad input."""

import hashlib
from pathlib import Path

import pytest

from generation.errors import IngestError
from generation.models import Corpus, Generator, Item, Sample
from generation.services import corpus_import, imports, samples_import
from tests.generation import builders as b

KEYS = ["k000", "k001", "k002"]


@pytest.fixture
def corpus(workspace, tmp_path):
    corpus, _ = corpus_import(workspace=workspace, name="photos",
                              source=str(b.jsonl_folder(tmp_path / "corpus", b.pairs(3))))
    return corpus


@pytest.fixture
def generator(workspace):
    return Generator.objects.create(workspace=workspace, name="tiny-unet")


@pytest.fixture
def corpus_files(corpus, media_root):
    """The files stored before a sample import: a refused one must leave exactly these."""
    return b.stored_files(media_root)


@pytest.fixture
def small_batches(monkeypatch):
    """Store samples one at a time, so a refused import has really stored some to undo."""
    monkeypatch.setattr(imports, "BATCH", 1)


def entries(seed: int = 0) -> list[b.Entry]:
    """Good samples: one per item, PNGs distinct from the references."""
    return [b.Entry(key, seed, b.png(100 + i + seed)) for i, key in enumerate(KEYS)]


def make_bundle(kind: str, root: Path, items: list[b.Entry], **options) -> Path:
    if kind == "folder":
        return b.bundle_folder(root / "bundle", items, **options)
    return b.bundle_tar(root / "bundle.tar", items, **options)


def manifest_origin(kind: str, bundle: Path) -> str:
    return f"{bundle / 'manifest.jsonl'}" if kind == "folder" else f"{bundle}:manifest.jsonl"


def assert_no_samples_written(media_root: Path, files_before: list[str]) -> None:
    assert Sample.objects.count() == 0
    assert b.stored_files(media_root) == files_before
    assert Corpus.objects.count() == 1 and Item.objects.count() == 3


# ------------------------------------------------------------------------------
# Happy paths
# ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["folder", "tar"])
def test_bundle_imports(tmp_path, corpus, generator, media_root, kind):
    items = entries(seed=7)
    items[0] = b.Entry("k000", 7, b.jpeg(50), file="nested/dir/first.jpg")
    bundle = make_bundle(kind, tmp_path, items)

    result = samples_import(generator=generator, source=str(bundle))

    assert (result.created, result.skipped, result.converted, result.rejected) == (3, 0, 0, [])
    samples = list(Sample.objects.order_by("item__key").select_related("item"))
    for sample, entry in zip(samples, items, strict=True):
        sha = hashlib.sha256(entry.data).hexdigest()
        assert (sample.generator, sample.item.corpus, sample.item.key, sample.seed) == (generator, corpus, entry.key, 7)
        assert (sample.sha256, sample.byte_size, sample.width, sample.height) == (sha, len(entry.data), 16, 12)
        assert sample.image.name.startswith(f"originals/{sha[:2]}/{sha}.")
        assert sample.image.read() == entry.data
    assert [s.format for s in samples] == ["JPEG", "PNG", "PNG"]


@pytest.mark.parametrize("kind", ["folder", "tar"])
def test_rerun_of_the_same_bundle_skips_everything(tmp_path, corpus, generator, media_root, kind):
    bundle = make_bundle(kind, tmp_path, entries())
    samples_import(generator=generator, source=str(bundle))
    ids, files = set(Sample.objects.values_list("id", flat=True)), b.stored_files(media_root)

    result = samples_import(generator=generator, source=str(bundle))

    assert (result.created, result.skipped, result.rejected) == (0, 3, [])
    assert set(Sample.objects.values_list("id", flat=True)) == ids
    assert b.stored_files(media_root) == files


def test_rerun_with_new_seeds_adds_only_those(tmp_path, corpus, generator):
    samples_import(generator=generator, source=str(b.bundle_folder(tmp_path / "one", entries(seed=0))))
    result = samples_import(generator=generator,
                            source=str(b.bundle_folder(tmp_path / "two", entries(seed=0) + entries(seed=1))))
    assert (result.created, result.skipped) == (3, 3)
    assert sorted(Sample.objects.values_list("seed", flat=True)) == [0, 0, 0, 1, 1, 1]


def test_a_different_image_for_an_existing_sample_is_rejected(tmp_path, corpus, generator, media_root):
    samples_import(generator=generator, source=str(b.bundle_folder(tmp_path / "one", entries())))
    before = {s.id: s.sha256 for s in Sample.objects.all()}
    files = b.stored_files(media_root)
    changed = entries()
    changed[1] = b.Entry("k001", 0, b.png(222), file="other.png")
    bundle = b.bundle_folder(tmp_path / "two", changed)

    with pytest.raises(IngestError) as refused:
        samples_import(generator=generator, source=str(bundle))

    assert (f"{bundle / 'manifest.jsonl'}:2 (other.png): generator 'tiny-unet' already has a different "
            f"sample for key 'k001' with seed 0") in str(refused.value)
    assert {s.id: s.sha256 for s in Sample.objects.all()} == before
    assert b.stored_files(media_root) == files


def test_item_key_is_an_alias_of_key(tmp_path, corpus, generator):
    bundle = tmp_path / "bundle"
    b.write_files(bundle, {"a.png": b.png(101)})
    b.write_jsonl(bundle / "manifest.jsonl", [{"item_key": "k001", "file": "a.png", "seed": 3}])

    result = samples_import(generator=generator, source=str(bundle))

    assert result.created == 1
    assert Sample.objects.get().item.key == "k001"


def test_cmyk_and_16_bit_samples_are_accepted_as_they_are(tmp_path, corpus, generator):
    items = [b.Entry("k000", 0, b.cmyk_jpeg(4), file="a.jpg"), b.Entry("k001", 0, b.grey16_png(), file="b.png")]

    result = samples_import(generator=generator, source=str(b.bundle_folder(tmp_path / "bundle", items)))

    assert (result.created, result.converted) == (2, 2)
    assert dict(Sample.objects.values_list("item__key", "mode")) == {"k000": "CMYK", "k001": "I;16"}
    for sample, entry in zip(Sample.objects.order_by("item__key"), items, strict=True):
        assert sample.image.read() == entry.data


def test_the_corpus_must_be_named_when_the_workspace_has_several(tmp_path, workspace, corpus, generator):
    other, _ = corpus_import(workspace=workspace, name="other",
                             source=str(b.jsonl_folder(tmp_path / "other", b.pairs(1, start=9))))
    bundle = str(b.bundle_folder(tmp_path / "bundle", entries()))

    with pytest.raises(IngestError, match="several corpora"):
        samples_import(generator=generator, source=bundle)
    result = samples_import(generator=generator, source=bundle, corpus=corpus)

    assert result.created == 3
    assert set(Sample.objects.values_list("item__corpus", flat=True)) == {corpus.pk}


def test_skip_bad_imports_the_good_samples(tmp_path, corpus, generator):
    items = entries() + [b.Entry("nope", 0, b.png(130)), b.Entry("k002", 1, b.NOT_AN_IMAGE)]
    bundle = b.bundle_folder(tmp_path / "bundle", items)

    result = samples_import(generator=generator, source=str(bundle), skip_bad=True)

    assert result.created == 3
    index = bundle / "manifest.jsonl"
    assert sorted(r.origin for r in result.rejected) == [
        f"{index}:4 (samples/nope-0.png)", f"{index}:5 (samples/k002-1.png)"]
    assert Sample.objects.count() == 3


# ------------------------------------------------------------------------------
# Bad inputs: refused, named, nothing written
# ------------------------------------------------------------------------------

# (extra manifest row or bad entry, words of the reason, settings)
BAD_ENTRIES = {
    "not an image": (b.Entry("k000", 5, b.NOT_AN_IMAGE), "not an image", {}),
    "truncated jpeg": (b.Entry("k000", 5, b.truncated_jpeg()), "truncated or corrupt image", {}),
    "png with damaged pixel data": (b.Entry("k000", 5, b.png_corrupt_idat()), "truncated or corrupt image", {}),
    "pixels over the limit": (b.Entry("k000", 5, b.large_png(400, 300)), "400×300 = 120,000 pixels, over the limit",
                              {"PARITY_MAX_IMAGE_PIXELS": 100_000}),
    "decompression bomb": (b.Entry("k000", 5, b.large_png(12000, 12000)), "decompression bomb",
                           {"PARITY_MAX_IMAGE_PIXELS": 40_000_000}),
    "bytes over the limit": (b.Entry("k000", 5, b.noisy_jpeg()), "over the limit of 20,000 bytes",
                             {"PARITY_MAX_IMAGE_BYTES": 20_000}),
    "animated png": (b.Entry("k000", 5, b.animated("PNG")), "animated image (2 frames)", {}),
    "animated webp": (b.Entry("k000", 5, b.animated("WEBP")), "animated image (2 frames)", {}),
    "animated gif": (b.Entry("k000", 5, b.animated("GIF")), "unsupported format GIF", {}),
    "duplicate (key, seed)": (b.Entry("k001", 0, b.png(140), file="again.png"),
                              "duplicate key 'k001' with seed 0 (first at ", {}),
    "unknown item key": (b.Entry("k999", 0, b.png(141)), "unknown item key 'k999': corpus 'photos' has no such item", {}),
    "malformed json": ('{"key": "k000", "file": ', "malformed JSON", {}),
    "json that is not an object": ('"k000"', "expected a JSON object, got str", {}),
    "missing seed": ({"key": "k000", "file": "samples/k000-0.png"}, "missing field 'seed'", {}),
    "missing file": ({"key": "k000", "seed": 4}, "missing field 'file'", {}),
    "missing key": ({"file": "samples/k000-0.png", "seed": 4}, "missing field 'key'", {}),
    "seed is not an integer": ({"key": "k000", "file": "samples/k000-0.png", "seed": "abc"},
                               "field 'seed' must be an integer, got 'abc'", {}),
    "seed is a float": ({"key": "k000", "file": "samples/k000-0.png", "seed": 1.5},
                        "field 'seed' must be an integer, got 1.5", {}),
    "seed over 64 bits": ({"key": "k000", "file": "samples/k000-0.png", "seed": 2**64},
                          "field 'seed' does not fit in 64 bits", {}),
    "file not in the bundle": ({"key": "k000", "file": "missing.png", "seed": 4}, "'missing.png'", {}),
    "file outside the bundle": ({"key": "k000", "file": "../x.png", "seed": 4}, "'../x.png' points outside", {}),
    "absolute file path": ({"key": "k000", "file": "/etc/passwd", "seed": 4}, "'/etc/passwd'", {}),
}


@pytest.mark.parametrize("case", BAD_ENTRIES)
@pytest.mark.parametrize("kind", ["folder", "tar"])
def test_bad_entry_is_refused_and_nothing_is_written(
    tmp_path, corpus, generator, corpus_files, media_root, settings, small_batches, kind, case
):
    bad, reason, overrides = BAD_ENTRIES[case]
    for name, value in overrides.items():
        setattr(settings, name, value)
    (tmp_path / "x.png").write_bytes(b.png(150))  # what '../x.png' would reach from the folder bundle
    good = entries()
    if isinstance(bad, b.Entry):
        bundle = make_bundle(kind, tmp_path, good + [bad])
    else:
        bundle = make_bundle(kind, tmp_path, good, extra_rows=[bad])
    # The manifest line names the record; a tar member refused on its own (too large) is named itself.
    origins = (f"{manifest_origin(kind, bundle)}:4",)
    if kind == "tar" and isinstance(bad, b.Entry):
        origins += (f"{bundle}:{bad.file}",)

    with pytest.raises(IngestError) as refused:
        samples_import(generator=generator, source=str(bundle))

    message = str(refused.value)
    assert message.startswith("import refused: ") and "nothing was written" in message
    named = [r for r in refused.value.rejections if reason in str(r)]
    assert named, refused.value.rejections
    assert named[0].origin.startswith(origins)
    assert str(named[0]) in message
    assert_no_samples_written(media_root, corpus_files)


HOSTILE_MEMBERS = {
    "absolute path": (b.regular("/tmp/evil.png", b"x"), "/tmp/evil.png", "absolute path in archive refused"),
    "dot-dot path": (b.regular("../evil.png", b"x"), "../evil.png", "path with '..' in archive refused"),
    "symlink": (b.symlink("evil.png", "/etc/passwd"), "evil.png", "symbolic link refused"),
    "hard link": (b.hardlink("evil.png", "manifest.jsonl"), "evil.png", "hard link refused"),
    "character device": (b.char_device("evil.png"), "evil.png", "device file or FIFO refused"),
    "fifo": (b.fifo("evil.png"), "evil.png", "device file or FIFO refused"),
}


@pytest.mark.parametrize("case", HOSTILE_MEMBERS)
def test_hostile_bundle_member_is_refused_and_nothing_is_written(
    tmp_path, corpus, generator, corpus_files, media_root, small_batches, case
):
    member, name, reason = HOSTILE_MEMBERS[case]
    bundle = b.bundle_tar(tmp_path / "bundle.tar", entries(), extra=[member])

    with pytest.raises(IngestError) as refused:
        samples_import(generator=generator, source=str(bundle))

    assert f"{bundle}:{name}: {reason}" in str(refused.value)
    assert [r.origin for r in refused.value.rejections] == [f"{bundle}:{name}"]
    assert_no_samples_written(media_root, corpus_files)


def test_manifest_pointing_at_a_hostile_member_is_refused(tmp_path, corpus, generator, corpus_files, media_root):
    """The manifest names the symlink: it was refused as a member, so it is 'not in the bundle'."""
    bundle = b.bundle_tar(tmp_path / "bundle.tar", entries(),
                          extra_rows=[{"key": "k000", "file": "evil.png", "seed": 9}],
                          extra=[b.symlink("evil.png", "/etc/passwd")])

    with pytest.raises(IngestError) as refused:
        samples_import(generator=generator, source=str(bundle))

    message = str(refused.value)
    assert f"{bundle}:evil.png: symbolic link refused" in message
    assert f"{bundle}:manifest.jsonl:4: file 'evil.png' is not in the bundle" in message
    assert_no_samples_written(media_root, corpus_files)


@pytest.mark.parametrize("layout, reason", [
    ("folder without manifest", "no manifest.jsonl in this folder"),
    ("tar without manifest", "no manifest.jsonl at the top of the archive"),
    ("missing path", "no such file or folder"),
    ("not a bundle", "not a folder, a .tar or .zip bundle, or a .jsonl bundle"),
])
def test_source_that_is_not_a_bundle(tmp_path, corpus, generator, corpus_files, media_root, layout, reason):
    source = tmp_path / "source"
    if layout == "folder without manifest":
        b.write_files(source, {"a.png": b.png(1)})
    elif layout == "tar without manifest":
        source = b.write_tar(tmp_path / "source.tar", [b.regular("a.png", b.png(1))])
    elif layout == "not a bundle":
        source = tmp_path / "source.rar"
        source.write_bytes(b"Rar!")

    with pytest.raises(IngestError, match=reason):
        samples_import(generator=generator, source=str(source))
    assert_no_samples_written(media_root, corpus_files)


def test_manifest_keys_are_trimmed_like_corpus_keys(tmp_path, corpus, generator):
    """The corpus import trims keys; a manifest key with the same padding finds the item."""
    bundle = tmp_path / "bundle"
    b.write_files(bundle, {"a.png": b.png(101), "b.png": b.png(102)})
    b.write_jsonl(bundle / "manifest.jsonl", [{"key": " k000 ", "file": "a.png", "seed": 1},
                                              {"key": "k000", "file": "b.png", "seed": 1}])

    with pytest.raises(IngestError, match="duplicate key 'k000' with seed 1"):
        samples_import(generator=generator, source=str(bundle))

    b.write_jsonl(bundle / "manifest.jsonl", [{"key": " k000 ", "file": "a.png", "seed": 1}])
    result = samples_import(generator=generator, source=str(bundle))
    assert result.created == 1
    assert Sample.objects.get().item.key == "k000"
