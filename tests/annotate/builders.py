"""Builders of small studies for the assignment engine: a corpus whose references are
real (tiny) images in storage, generators with samples, a study over them.

Sample rows point at a placeholder file: the engine never opens a sample's image.
"""

import io

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image

from annotate.models import Annotator, Study
from generation.models import Corpus, Generator, Item, Sample
from workspaces.models import Workspace


def reference_png(index: int, size: int = 24) -> bytes:
    """A gradient with a per-index tint: structured enough that a scramble shows."""
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    pixels = np.stack(
        [np.add.outer(ramp, ramp) / 2, np.tile(ramp, (size, 1)), np.full((size, size), index * 29 % 256)], axis=-1
    )
    out = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(out, "PNG")
    return out.getvalue()


def _facts(name: str) -> dict:
    return {"image": name, "sha256": "0" * 64, "width": 24, "height": 24, "format": "PNG", "mode": "RGB",
            "byte_size": 10}


def build_study(
    *,
    workspace: Workspace | None = None,
    generators: int = 2,
    items: int = 4,
    k: int = 2,
    quota: int = 40,
    catch_rate: float = 0.0,
    calibration_rate: float = 0.0,
    timeout: int = 600,
    slug: str = "s",
    seeds: tuple[int, ...] = (0,),
    practice: int = 0,
    head_to_head_share: float = 0.0,
    anchors: int = 0,
    anchor_share: float = 0.0,
) -> Study:
    """A draft study: `generators` x `items`, every pair with a sample of each seed; its
    first `anchors` generators are anchors."""
    workspace = workspace or Workspace.objects.create(name=f"ws-{slug}", slug=f"ws-{slug}")
    corpus = Corpus.objects.create(workspace=workspace, name=f"corpus-{slug}")
    made = []
    for i in range(items):
        name = default_storage.save(f"originals/{slug}-{i}.png", ContentFile(reference_png(i)))
        made.append(Item.objects.create(corpus=corpus, key=f"k{i}", caption=f"caption {i}", **_facts(name)))
    study = Study.objects.create(
        workspace=workspace, name=slug, slug=slug, corpus=corpus, judgments_per_trial=k,
        quota_per_annotator=quota, catch_rate=catch_rate, calibration_rate=calibration_rate,
        assignment_timeout_seconds=timeout, practice_trials=practice, head_to_head_share=head_to_head_share,
        anchor_share=anchor_share,
    )
    for g in range(generators):
        generator = Generator.objects.create(workspace=workspace, name=f"{slug}-g{g}")
        study.generators.add(generator)
        Sample.objects.bulk_create(
            Sample(generator=generator, item=item, seed=seed, **_facts("samples/x.png"))
            for item in made for seed in seeds
        )
    if anchors:
        study.anchor_generators = list(study.generators.order_by("pk").values_list("pk", flat=True)[:anchors])
        study.save(update_fields=["anchor_generators"])
    return study


def annotators(n: int) -> list[Annotator]:
    return [Annotator.objects.create(source=Annotator.Source.SIMULATED) for _ in range(n)]
