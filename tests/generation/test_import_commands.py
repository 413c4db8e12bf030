"""The CLI of ingest: import_corpus and import_samples, their messages, errors and reports."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from generation.models import Corpus, Generator, Item, Sample
from tests.generation import builders as b
from workspaces.models import Workspace


def run(*args, **options) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err, verbosity=0, **options)
    return out.getvalue(), err.getvalue()


def entries() -> list[b.Entry]:
    return [b.Entry(f"k{i:03d}", 0, b.png(100 + i)) for i in range(3)]


@pytest.fixture
def corpus(workspace, tmp_path):
    run("import_corpus", str(b.jsonl_folder(tmp_path / "corpus", b.pairs(3))), workspace="lab", name="photos")
    return Corpus.objects.get(name="photos")


# ------------------------------------------------------------------------------
# import_corpus
# ------------------------------------------------------------------------------


def test_import_corpus_creates_the_workspace_and_prints_the_count(db, tmp_path):
    source = b.jsonl_folder(tmp_path / "corpus", b.pairs(4))

    out, _ = run("import_corpus", str(source), workspace="Vision Lab", name="photos", description="four")

    workspace = Workspace.objects.get()
    assert (workspace.slug, workspace.name) == ("vision-lab", "Vision Lab")
    corpus = Corpus.objects.get()
    assert (corpus.workspace, corpus.description, corpus.items.count()) == (workspace, "four", 4)
    assert "Created workspace 'vision-lab'." in out
    assert f"Imported corpus 'photos' (id {corpus.pk}): 4 items." in out


def test_import_corpus_uses_an_existing_workspace(workspace, tmp_path):
    out, _ = run("import_corpus", str(b.jsonl_folder(tmp_path / "corpus", b.pairs(2))), workspace="lab", name="c")
    assert Workspace.objects.count() == 1
    assert Corpus.objects.get().workspace == workspace
    assert "Created workspace" not in out and ": 2 items." in out


def test_import_corpus_takes_a_quoted_glob_of_shards(workspace, tmp_path):
    b.shard(tmp_path / "shards" / "00000.tar", b.pairs(2))
    b.shard(tmp_path / "shards" / "00001.tar", b.pairs(3, start=2))

    out, _ = run("import_corpus", f"{tmp_path}/shards/*.tar", workspace="lab", name="wds")

    assert Item.objects.count() == 5 and ": 5 items." in out


def test_import_corpus_mentions_converted_images(workspace, tmp_path):
    items = [b.Pair("a", "cmyk", b.cmyk_jpeg(1)), b.Pair("b", "rgb", b.jpeg(2))]
    out, _ = run("import_corpus", str(b.jsonl_folder(tmp_path / "corpus", items)), workspace="lab", name="c")
    assert "1 images are CMYK, YCbCr or 16-bit" in out


def test_import_corpus_refusal_is_a_command_error_naming_the_line(workspace, tmp_path, media_root):
    items = b.pairs(2) + [b.Pair("bad", "not a picture", b.NOT_AN_IMAGE)]
    source = b.jsonl_folder(tmp_path / "corpus", items)

    with pytest.raises(CommandError) as refused:
        run("import_corpus", str(source), workspace="lab", name="c")

    assert f"{source / 'captions.jsonl'}:3 (bad.jpg): not an image" in str(refused.value)
    assert (Corpus.objects.count(), Item.objects.count()) == (0, 0)
    assert b.stored_files(media_root) == []


def test_import_corpus_skip_bad_writes_a_jsonl_report(workspace, tmp_path):
    items = b.pairs(3) + [b.Pair("bad", "not a picture", b.NOT_AN_IMAGE), b.Pair("blank", " ", b.jpeg(8))]
    source = b.jsonl_folder(tmp_path / "corpus", items)
    report = tmp_path / "rejected.jsonl"

    out, _ = run("import_corpus", str(source), "--skip-bad", "--report", str(report), workspace="lab", name="c")

    assert Item.objects.count() == 3
    assert ": 3 items." in out and f"Rejected 2 records; the report is {report}." in out
    lines = [json.loads(line) for line in report.read_text(encoding="utf-8").splitlines()]
    index = source / "captions.jsonl"
    assert lines == [
        {"origin": f"{index}:4 (bad.jpg)", "reason": "not an image (Pillow cannot identify it)"},
        {"origin": f"{index}:5 (blank.jpg)", "reason": "caption is empty"},
    ]


def test_import_corpus_without_skip_bad_writes_no_report(workspace, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    items = b.pairs(1) + [b.Pair("bad", "x", b.NOT_AN_IMAGE)]
    report = tmp_path / "rejected.jsonl"
    with pytest.raises(CommandError):
        run("import_corpus", str(b.jsonl_folder(tmp_path / "corpus", items)), "--report", str(report),
            workspace="lab", name="c")
    assert not report.exists()
    assert not list(tmp_path.glob("*-rejected.jsonl"))


# ------------------------------------------------------------------------------
# import_samples
# ------------------------------------------------------------------------------


def test_import_samples_into_an_existing_generator(tmp_path, corpus):
    generator = Generator.objects.create(workspace=corpus.workspace, name="tiny-unet")
    bundle = str(b.bundle_folder(tmp_path / "bundle", entries()))

    out, _ = run("import_samples", bundle, generator="tiny-unet")
    again, _ = run("import_samples", bundle, generator="tiny-unet")

    assert generator.samples.count() == 3
    assert "Imported 3 samples for 'tiny-unet'." in out
    assert "Imported 0 samples for 'tiny-unet'; 3 already there were skipped." in again


def test_import_samples_unknown_generator(tmp_path, corpus):
    bundle = str(b.bundle_folder(tmp_path / "bundle", entries()))

    with pytest.raises(CommandError, match=r"no generator named 'nope' \(add --create to make it\)"):
        run("import_samples", bundle, generator="nope")
    with pytest.raises(CommandError, match="--create needs --workspace"):
        run("import_samples", bundle, "--create", generator="nope")
    with pytest.raises(CommandError, match="no workspace 'elsewhere'"):
        run("import_samples", bundle, "--create", generator="nope", workspace="elsewhere")
    assert Generator.objects.count() == 0 and Sample.objects.count() == 0


def test_import_samples_create_makes_the_generator(tmp_path, corpus):
    bundle = str(b.bundle_folder(tmp_path / "bundle", entries()))

    out, _ = run("import_samples", bundle, "--create", generator="new-model", workspace="lab")

    generator = Generator.objects.get()
    assert (generator.name, generator.workspace) == ("new-model", corpus.workspace)
    assert generator.samples.count() == 3 and "Imported 3 samples for 'new-model'." in out


def test_import_samples_ambiguous_generator_name(tmp_path, corpus):
    other = Workspace.objects.create(name="Other", slug="other")
    Generator.objects.create(workspace=corpus.workspace, name="model")
    Generator.objects.create(workspace=other, name="model")
    bundle = str(b.bundle_folder(tmp_path / "bundle", entries()))

    with pytest.raises(CommandError, match="several workspaces have a generator named 'model': add --workspace"):
        run("import_samples", bundle, generator="model")
    assert Sample.objects.count() == 0

    run("import_samples", bundle, generator="model", workspace="lab")
    assert Sample.objects.filter(generator__workspace=corpus.workspace).count() == 3


def test_import_samples_unknown_corpus(tmp_path, corpus):
    Generator.objects.create(workspace=corpus.workspace, name="model")
    bundle = str(b.bundle_folder(tmp_path / "bundle", entries()))

    with pytest.raises(CommandError, match="no corpus named 'nope' in workspace 'lab'"):
        run("import_samples", bundle, generator="model", corpus="nope")

    run("import_samples", bundle, generator="model", corpus="photos")
    assert Sample.objects.count() == 3


def test_import_samples_refusal_names_the_manifest_line(tmp_path, corpus, media_root):
    Generator.objects.create(workspace=corpus.workspace, name="model")
    files = b.stored_files(media_root)
    bundle = b.bundle_folder(tmp_path / "bundle", entries(), extra_rows=[{"key": "k000", "file": "a.png", "seed": "abc"}])

    with pytest.raises(CommandError) as refused:
        run("import_samples", str(bundle), generator="model")

    assert f"{bundle / 'manifest.jsonl'}:4: field 'seed' must be an integer, got 'abc'" in str(refused.value)
    assert Sample.objects.count() == 0 and b.stored_files(media_root) == files


def test_import_samples_skip_bad_writes_a_jsonl_report(tmp_path, corpus):
    Generator.objects.create(workspace=corpus.workspace, name="model")
    bundle = b.bundle_tar(tmp_path / "bundle.tar", entries(), extra_rows=[{"key": "zzz", "file": "samples/k000-0.png", "seed": 1}],
                          extra=[b.symlink("evil.png")])
    report = tmp_path / "report.jsonl"

    out, _ = run("import_samples", str(bundle), "--skip-bad", "--report", str(report), generator="model")

    assert Sample.objects.count() == 3
    assert f"Rejected 2 samples; the report is {report}." in out
    lines = [json.loads(line) for line in report.read_text(encoding="utf-8").splitlines()]
    assert [set(line) for line in lines] == [{"origin", "reason"}] * 2
    assert sorted(line["origin"] for line in lines) == sorted([
        f"{bundle}:evil.png", f"{bundle}:manifest.jsonl:4 (samples/k000-0.png)"])
