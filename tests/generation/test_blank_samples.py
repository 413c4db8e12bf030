"""Blank or near-constant samples (what a safety filter returns): flagged at upload and at
generation, left out of trials unless a study includes them, counted per generator in
the report; a bundle of nothing but blank images is refused with its count."""

import numpy as np
import pytest
from PIL import Image

from annotate import services as annotate_services
from annotate.models import Trial
from generation.engine.pipeline import encode_png, near_constant
from generation.errors import IngestError
from generation.models import Generator, Sample
from generation.services import corpus_import, samples_import
from tests.generation import builders as b


def test_near_constant_means_one_colour_not_a_dark_picture():
    assert near_constant(Image.new("RGB", (512, 512), (0, 0, 0)))
    assert near_constant(Image.new("RGB", (64, 64), (200, 30, 90)))
    rng = np.random.default_rng(0)
    faint = (128 + rng.normal(0, 0.8, (256, 256))).clip(0, 255).astype(np.uint8)
    assert near_constant(Image.fromarray(faint))
    # A dark night scene: little light, but shapes in it.
    dark = np.tile(np.linspace(0, 30, 256), (256, 1)).astype(np.uint8)
    assert not near_constant(Image.fromarray(np.stack([dark] * 3, axis=-1)))
    assert not near_constant(Image.open(__import__("io").BytesIO(b.jpeg(3, size=(300, 200)))))
    sixteen = Image.new("I;16", (32, 32))
    sixteen.putdata([int(v) for v in rng.integers(0, 65535, 32 * 32)])
    assert not near_constant(sixteen)
    flat = Image.new("I;16", (32, 32))
    flat.putdata([40000] * (32 * 32))
    assert near_constant(flat)
    assert encode_png(Image.new("L", (32, 32), 0)).blank and not encode_png(b.striped(1, (32, 32))).blank


@pytest.fixture
def corpus(workspace, tmp_path):
    made, _ = corpus_import(workspace=workspace, name="c", source=str(b.jsonl_folder(tmp_path / "c", b.pairs(4))))
    return made


def test_blank_samples_are_flagged_and_kept_out_of_trials_unless_included(workspace, corpus, tmp_path):
    generator = Generator.objects.create(workspace=workspace, name="g")
    entries = [b.Entry(f"k{i:03d}", 0, b.blank() if i < 2 else b.png(i)) for i in range(4)]
    result = samples_import(generator=generator, corpus=corpus, source=str(b.bundle_folder(tmp_path / "s", entries)))
    assert (result.created, result.blank) == (4, 2)
    assert sorted(Sample.objects.filter(blank=True).values_list("item__key", flat=True)) == ["k000", "k001"]
    study = annotate_services.study_create(workspace=workspace, name="s", slug="s", corpus=corpus,
                                           generators=[generator], practice_trials=0, catch_rate=0,
                                           calibration_rate=0)
    annotate_services.study_build_trials(study=study)
    assert sorted(Trial.objects.filter(study=study).values_list("item__key", flat=True)) == ["k002", "k003"]
    annotate_services.study_update(study=study, include_blank_samples=True)
    assert annotate_services.study_build_trials(study=study) == 2


def test_a_bundle_of_nothing_but_blank_images_is_refused_with_its_count(workspace, corpus, tmp_path, media_root):
    generator = Generator.objects.create(workspace=workspace, name="g")
    entries = [b.Entry(f"k{i:03d}", 0, b.blank(fill=(i, i, i))) for i in range(3)]
    with pytest.raises(IngestError, match="all 3 samples are blank"):
        samples_import(generator=generator, corpus=corpus, source=str(b.bundle_folder(tmp_path / "s", entries)))
    assert not Sample.objects.exists()


def test_the_report_counts_each_generators_blank_samples(workspace, corpus, tmp_path):
    import csv
    import io
    import json

    from analysis.exports import report_csv, report_json_text
    from analysis.report_html import report_html
    from analysis.services import study_report

    generator = Generator.objects.create(workspace=workspace, name="filtered")
    entries = [b.Entry(f"k{i:03d}", 0, b.blank() if i < 3 else b.png(i)) for i in range(4)]
    samples_import(generator=generator, corpus=corpus, source=str(b.bundle_folder(tmp_path / "s", entries)))
    study = annotate_services.study_create(workspace=workspace, name="s", slug="s", corpus=corpus,
                                           generators=[generator], practice_trials=0)
    report = study_report(study=study)
    assert [g["blank_samples"] for g in json.loads(report_json_text(report))["generators"]] == [3]
    rows = list(csv.DictReader(io.StringIO(report_csv(report))))
    assert {row["blank_samples"] for row in rows} == {"3"}
    assert 'id="blank-samples"' in report_html(report) and "filtered</bdi> 3" in report_html(report)
