"""The demo of `make run`, reduced (tiny sizes, few steps), from an empty database to the
HTML report: corpus import, training, generation jobs, simulated annotators over HTTP,
analysis."""

import json

import pytest
from django.core.management import call_command

from annotate.models import Annotator, Judgment, Study
from generation.models import Corpus, GenerationJob, Generator, Item, Sample

pytestmark = pytest.mark.slow

ARGS = ["--items", "240", "--held-out", "24", "--sizes", "XS,S", "--steps", "40", "--sample-steps", "8",
        "--annotators", "8", "--bad", "2", "--quota", "24"]


@pytest.fixture
def demo(transactional_db, settings, tmp_path, capsys):
    # A real server thread serves the simulated annotators: it must see committed data.
    settings.VAR_DIR = tmp_path / "var"
    settings.PARITY_CHECKPOINT_DIR = tmp_path / "var" / "checkpoints"
    call_command("demo", *ARGS)
    return settings.VAR_DIR / "demo", capsys.readouterr().out


def test_the_reduced_demo_runs_from_an_empty_database_to_the_report(demo):
    folder, out = demo
    corpus = Corpus.objects.get(name="scenes")
    assert corpus.items.count() == 240
    # The ladder: two sizes, each checkpointed half-way and at the end, on every axis.
    generators = list(Generator.objects.filter(series__name="scenes-ladder").order_by("params", "train_step"))
    assert [(g.train_step) for g in generators] == [20, 40, 20, 40]
    assert generators[0].params < generators[2].params
    assert all(g.train_images and g.train_flops and "val_loss" in g.metrics for g in generators)
    # Samples come from generation jobs, for the held-out prompts only.
    assert GenerationJob.objects.filter(status="succeeded").count() == 4
    held = set(Sample.objects.filter(generator=generators[0]).values_list("item__key", flat=True))
    assert len(held) == 24
    assert all(set(Sample.objects.filter(generator=g).values_list("item__key", flat=True)) == held
               for g in generators)
    # Judged over HTTP by simulated annotators only, every one marked.
    study = Study.objects.get(slug="demo")
    judgments = Judgment.objects.filter(assignment__study=study)
    assert judgments.count() > 100
    assert not judgments.exclude(assignment__annotator__source=Annotator.Source.SIMULATED).exists()
    # The report: self-contained HTML, and the analysis excludes exactly the bad annotators.
    html = (folder / "report.html").read_text()
    assert "<svg" in html and "scenes-ladder-S-step40" in html
    simulated = json.loads((folder / "simulated.json").read_text())
    bad = {a["pseudonym"] for a in simulated["annotators"] if a["profile"] != "good"}
    assert len(bad) == 2
    call_command("report", "demo", "--format", "json", "--out", str(folder / "report.json"))
    report = json.loads((folder / "report.json").read_text())
    assert {a["pseudonym"] for a in report["annotators"] if a["excluded"]} == bad
    assert len(report["fits"]) >= 1
    assert "Demo ready" in out

    # A second run builds nothing again.
    counts = (Item.objects.count(), Generator.objects.count(), Sample.objects.count(), Judgment.objects.count())
    call_command("demo", *ARGS)
    assert (Item.objects.count(), Generator.objects.count(), Sample.objects.count(),
            Judgment.objects.count()) == counts
