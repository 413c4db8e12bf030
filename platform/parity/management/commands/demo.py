"""The demo content of `make run`, built the first time only.

The corpus is drawn by the project itself (generation.scenes: shapes with exact
captions), written as WebDataset shards and imported through the same path as any
researcher's corpus, so the demo exercises the real ingest. Until the built-in model
ladder exists, the demo's generators are degraded re-renderings of each item's
scene (blurred, then JPEG-compressed), imported as sample bundles; a study over them
is opened so that the annotator pages have something to show.
"""

import io
import json

from django.conf import settings
from PIL import ImageFilter
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from annotate.models import Study
from annotate.services import study_build_trials, study_open
from generation.models import Corpus, Generator, Membership, Series, Workspace
from generation.scenes import draw_scene, write_webdataset
from generation.services import corpus_import, samples_import

from generation.management.commands._progress import progress_bar

DEMO_USER = "researcher"
DEMO_PASSWORD = "parity-demo"
# (name, blur radius in pixels, JPEG quality): stronger degradation, lower quality.
DEGRADED = [("redraw-blur-3", 3.0, 30), ("redraw-blur-1", 1.0, 60), ("redraw-sharp", 0.0, 85)]


class Command(BaseCommand):
    help = "Create the demo workspace, researcher login and procedural scenes corpus (once)."

    def add_arguments(self, parser):
        parser.add_argument("--items", type=int, default=300)
        parser.add_argument("--size", type=int, default=256)

    def handle(self, *args, items, size, **options):
        with transaction.atomic():
            workspace, _ = Workspace.objects.get_or_create(slug="demo", defaults={"name": "Demo"})
            user = get_user_model().objects.filter(username=DEMO_USER).first()
            if user is None:
                user = get_user_model().objects.create_superuser(DEMO_USER, password=DEMO_PASSWORD)
            Membership.objects.get_or_create(
                workspace=workspace, user=user, defaults={"role": Membership.Role.OWNER}
            )
        if not Corpus.objects.filter(workspace=workspace, name="scenes").exists():
            shards_dir = settings.VAR_DIR / "demo" / "scenes"
            shards_dir.mkdir(parents=True, exist_ok=True)
            with progress_bar("Drawing demo scenes") as on_progress:
                write_webdataset(shards_dir, items, size=size, shard_size=100, seed=0, progress=on_progress)
            with progress_bar("Importing demo corpus") as on_progress:
                corpus, result = corpus_import(
                    workspace=workspace, name="scenes", source=str(shards_dir),
                    description="Procedurally drawn shapes with exact compositional captions.",
                    on_progress=on_progress,
                )
            self.stdout.write(f"Demo corpus 'scenes': {result.created} items.")
        corpus = Corpus.objects.get(workspace=workspace, name="scenes")
        if not Study.objects.filter(slug="demo").exists():
            self._study(workspace, corpus, size)
        self.stdout.write(f"Researcher login: {DEMO_USER} / {DEMO_PASSWORD}")
        self.stdout.write("Annotator link: /s/demo/ (a demo study over the degraded re-renderings)")

    def _study(self, workspace, corpus, size):
        series, _ = Series.objects.get_or_create(workspace=workspace, name="demo-degradation")
        generators = []
        for name, radius, quality in DEGRADED:
            generator, _ = Generator.objects.get_or_create(
                workspace=workspace, name=name,
                defaults={"series": series, "backend": "upload",
                          "settings": {"blur_radius": radius, "jpeg_quality": quality},
                          "description": "Demo: the item's scene redrawn, blurred and JPEG-compressed."},
            )
            bundle = settings.VAR_DIR / "demo" / name
            self._write_bundle(bundle, corpus, size, radius, quality)
            with progress_bar(f"Importing samples of {name}") as on_progress:
                samples_import(generator=generator, source=str(bundle), corpus=corpus, on_progress=on_progress)
            generators.append(generator)
        study = Study.objects.create(
            workspace=workspace, name="Demo: degraded re-renderings", slug="demo", corpus=corpus,
            judgments_per_trial=3, catch_rate=0.1, calibration_rate=0.05, quota_per_annotator=20,
            consent_text="This is a demo study: your choices are stored in this local Parity only.",
            instructions="Each trial shows a caption and two images. Pick the one you prefer for the caption.",
            completion_code="DEMO-DONE",
        )
        study.generators.set(generators)
        study_build_trials(study=study, rng_seed=0)
        study_open(study=study)

    def _write_bundle(self, bundle, corpus, size, radius, quality):
        bundle.mkdir(parents=True, exist_ok=True)
        with open(bundle / "manifest.jsonl", "w", encoding="utf-8") as manifest:
            for key, meta in corpus.items.values_list("key", "meta"):
                image = draw_scene(meta["seed"], size).image
                if radius:
                    image = image.filter(ImageFilter.GaussianBlur(radius))
                out = io.BytesIO()
                image.save(out, "JPEG", quality=quality)
                (bundle / f"{key}.jpg").write_bytes(out.getvalue())
                manifest.write(json.dumps({"key": key, "file": f"{key}.jpg", "seed": 0}) + "\n")
