"""The demo of `make run`, reduced, from an empty database to the HTML report: corpus
import, training, generation jobs, simulated annotators over HTTP, analysis.

Reduced to two sizes far apart (XS, 13k parameters, and L, 742k), half the corpus, and
fewer annotators; not to few steps. Generators far from real are all chosen a few
per cent of the time, so the larger one is told apart only once it has learned to draw
most of what captions say: at 2,000 steps L's caption recognition is about 0.57
against XS's 0.31 (references 0.95), chosen about 15 % of the time against 6 %, which
some 250 valid judgments each separate (z about 3; a Monte Carlo of the annotator model
over these samples never ranked them the other way in 2,000 studies). At 40 steps every
size scores the same and the ranking is a coin toss. About three minutes on two cores.
"""

import json

import pytest
from django.core.management import call_command

from annotate.models import Annotator, Judgment, Study
from generation.models import Corpus, GenerationJob, Generator, Item, Sample

# `first`: the suite's longest test; under xdist it starts at once on one worker.
pytestmark = [pytest.mark.slow, pytest.mark.first]

ARGS = ["--items", "1100", "--held-out", "100", "--sizes", "XS,L", "--steps", "2000",
        "--annotators", "24", "--bad", "4", "--quota", "64"]


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
    assert corpus.items.count() == 1100
    # The ladder: two sizes, each checkpointed half-way and at the end, on every axis.
    generators = list(Generator.objects.filter(series__name="scenes-ladder").order_by("params", "train_step"))
    assert [g.train_step for g in generators] == [1000, 2000, 1000, 2000]
    assert generators[0].params < generators[2].params
    assert all(g.train_images and g.train_flops and "val_loss" in g.metrics for g in generators)
    # Samples come from generation jobs, for the held-out prompts only.
    assert GenerationJob.objects.filter(status="succeeded").count() == 4
    held = set(Sample.objects.filter(generator=generators[0]).values_list("item__key", flat=True))
    assert len(held) == 100
    assert all(set(Sample.objects.filter(generator=g).values_list("item__key", flat=True)) == held
               for g in generators)
    # Judged over HTTP by simulated annotators only, every one marked.
    study = Study.objects.get(slug="demo")
    judgments = Judgment.objects.filter(assignment__study=study)
    assert judgments.count() > 1200
    assert not judgments.exclude(assignment__annotator__source=Annotator.Source.SIMULATED).exists()
    # The report: self-contained HTML, and the analysis excludes exactly the bad annotators.
    html = (folder / "report.html").read_text()
    assert "<svg" in html and "scenes-ladder-L-step2000" in html
    # Both waves' simulated annotators, a few of each deliberately bad.
    waves = [json.loads((folder / name).read_text()) for name in ("simulated.json", "simulated-wave2.json")]
    bad = {a["pseudonym"] for wave in waves for a in wave["annotators"] if a["profile"] != "good"}
    assert len(bad) == 8
    call_command("report", "demo", "--format", "json", "--out", str(folder / "report.json"))
    report = json.loads((folder / "report.json").read_text())
    assert {a["pseudonym"] for a in report["annotators"] if a["excluded"]} == bad
    # The larger generator wins more often, and the fitted curve rises with compute.
    rates = {g["name"]: g["rate"]["rate"] for g in report["generators"]}
    assert rates["scenes-ladder-L-step2000"] > rates["scenes-ladder-XS-step2000"], rates
    fit = next(f for f in report["fits"] if f["axis"] == "train_flops")
    assert fit["forms"]["saturating"]["params"]["alpha"] > 0, fit["forms"]["saturating"]
    assert "Demo ready" in out
    # The second wave: the final checkpoints joined the running study, head-to-head trials
    # of neighbours were mixed in and judged, and the report ranks the ladder on one scale.
    finals = {g.pk for g in generators if g.train_step == 2000}
    assert {e["generator"] for e in study.generator_history if e["event"] == "added"} == finals
    assert study.anchor_generators == [generators[0].pk]
    assert judgments.filter(assignment__trial__kind="head_to_head").count() > 100
    assert json.loads((folder / "simulated-wave2.json").read_text())["head_to_head"]
    one_scale = report["bradley_terry"]
    assert one_scale["source"] == "vs-real and head-to-head" and one_scale["head_to_head"] > 100
    pooled = {g["name"]: g["pooled_rate"] for g in one_scale["generators"]}
    assert pooled["scenes-ladder-L-step2000"] > pooled["scenes-ladder-XS-step2000"], pooled
    assert report["timeline"]["anchors"] == [generators[0].pk]

    # A second run builds nothing again, not even a generation job that would find its work done.
    def counts():
        return tuple(model.objects.count() for model in (Item, Generator, Sample, GenerationJob, Judgment))

    before = counts()
    call_command("demo", *ARGS)
    assert counts() == before
