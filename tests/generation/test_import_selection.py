"""An import's filters and seeded sample (`import_corpus --where --sample --seed`): only
the records they keep become items, each filter's removals are reported and recorded,
and a filter that cannot apply writes nothing."""

from collections import Counter

import pytest
from django.core.management import CommandError, call_command

from generation.models import Corpus, Item
from generation.selection import parse_where
from generation.services import ImportSelection, corpus_import
from tests.generation import builders as b


def laion_like(n: int) -> list[b.Pair]:
    """Pairs of three sizes with img2dataset-like metadata: every 5th watermarked."""
    made = []
    for i in range(n):
        size = [(16, 12), (40, 30), (64, 64)][i % 3]
        meta = {"pwatermark": 0.9 if i % 5 == 0 else 0.1, "category": "abcd"[i % 4]}
        made.append(b.Pair(f"k{i:03d}", f"a photo of thing {i}", b.jpeg(i, size=size), meta=meta))
    return made


def test_filters_and_a_stratified_sample_keep_the_same_items_for_the_same_seed(workspace, tmp_path):
    source = b.jsonl_folder(tmp_path / "corpus", laion_like(60))
    selection = ImportSelection(wheres=(parse_where("width>=40"), parse_where("meta.pwatermark<0.5")), sample=12,
                                seed=4, stratify_by="category", allocation="equal")
    corpus, result = corpus_import(workspace=workspace, name="one", source=str(source), selection=selection)
    keys = set(corpus.items.values_list("key", flat=True))
    passing = {f"k{i:03d}" for i in range(60) if i % 3 and i % 5}
    assert keys <= passing and len(keys) == result.created == result.sampled == 12
    assert result.filtered == [("width>=40", 20), ("meta.pwatermark<0.5", 40 - len(passing))]
    assert Counter(m["category"] for m in corpus.items.values_list("meta", flat=True)) == dict.fromkeys("abcd", 3)
    assert corpus.selection["filters"][0] == {"where": "width>=40", "removed": 20} and corpus.selection["seed"] == 4
    again, _ = corpus_import(workspace=workspace, name="two", source=str(source), selection=selection)
    assert set(again.items.values_list("key", flat=True)) == keys


def test_filters_alone_import_what_passes_in_one_pass(workspace, tmp_path):
    source = b.jsonl_folder(tmp_path / "corpus", laion_like(30))
    corpus, result = corpus_import(workspace=workspace, name="c", source=str(source),
                                   selection=ImportSelection(wheres=(parse_where("aspect==1"),)))
    assert sorted(corpus.items.values_list("key", flat=True)) == [f"k{i:03d}" for i in range(2, 30, 3)]
    assert result.filtered == [("aspect==1", 20)] and result.sampled is None


@pytest.mark.parametrize("where, says", [
    ("meta.nsfw<0.5", "no item has the field meta.nsfw"),
    ("meta.category<3", "compares meta.category with a number"),
    ("width>4000", "leave no item"),
])
def test_a_filter_that_cannot_apply_writes_nothing(workspace, tmp_path, media_root, where, says):
    source = b.jsonl_folder(tmp_path / "corpus", laion_like(12))
    for sample in (None, 5):
        with pytest.raises(CommandError, match=says):
            call_command("import_corpus", str(source), "--where", where, *(["--sample", str(sample)] if sample else []),
                         workspace="lab", name="c")
        assert not Corpus.objects.exists() and not Item.objects.exists()
        assert b.stored_files(media_root) == []


def test_the_command_reports_each_filter_and_refuses_a_bad_one(workspace, tmp_path, capsys):
    source = b.jsonl_folder(tmp_path / "corpus", laion_like(30))
    call_command("import_corpus", str(source), "--where", "width>=40", "--sample", "5", "--seed", "2",
                 workspace="lab", name="c")
    out = capsys.readouterr().out
    assert "--where width>=40: removed 10 items." in out and "--sample 5 --seed 2: 5 items drawn." in out
    with pytest.raises(CommandError, match="is no field"):
        call_command("import_corpus", str(source), "--where", "resolution>=40", workspace="lab", name="d")
    with pytest.raises(CommandError, match="needs --sample"):
        call_command("import_corpus", str(source), "--stratify-by", "category", workspace="lab", name="d")
