"""The demo of `make run`, built the first time only: a real scaling study on one machine.

Every stage goes through the path a researcher's data takes:

1. corpus — procedural scenes (generation.scenes: shapes with exact captions) drawn
   at the engine's resolution, written as WebDataset shards and imported through the
   real import path;
2. ladder — `train_ladder` trains the built-in engine at sizes S, M and L, each
   checkpointed half-way and at the end: one series of six generators with their
   scale axes (params, train_images, train_flops, train_step) and validation losses;
3. samples — a generation job per generator makes its samples for the held-out
   prompts (the items no size was trained on), here, through the runner a GPU
   worker uses;
4. study — over those prompts, with catch and calibration trials, opened; then
   `simulate_annotators` sends simulated annotators (a few deliberately bad) through
   the real pages over HTTP, choosing by how well each image shows its caption;
5. report — the study's HTML report, written to var/demo/report.html.

A stage whose result exists is skipped, so a second run only reports where things
are. Everything simulated is marked so in the data, the pages and the report.
"""

import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from annotate.models import Judgment, Study
from annotate.services import study_build_trials, study_create, study_open
from generation.management.commands._progress import progress_bar
from generation.models import Corpus, Generator, Membership, Sample, Series, Workspace
from generation.scenes import write_webdataset
from generation.selectors import held_out
from generation.services import corpus_import

DEMO_USER = "researcher"
DEMO_PASSWORD = "parity-demo"
STUDY = "demo"
SERIES = "scenes-ladder"
CORPUS = "scenes"


class Command(BaseCommand):
    help = "Build the demo (once): scenes corpus, trained ladder, samples, a study with simulated judgments, a report."

    def add_arguments(self, parser):
        parser.add_argument("--items", type=int, default=2100, help="scenes in the corpus (default 2100)")
        parser.add_argument("--held-out", type=int, default=100,
                            help="prompts held out of training, the study's prompts (default 100)")
        parser.add_argument("--sizes", default="S,M,L", help="ladder sizes (default S,M,L)")
        parser.add_argument("--steps", type=int, default=1500, help="training steps per size (default 1500)")
        parser.add_argument("--batch-size", type=int, default=32)
        parser.add_argument("--sample-steps", type=int, default=20, help="sampling steps of the generators")
        parser.add_argument("--annotators", type=int, default=30, help="simulated annotators (default 30)")
        parser.add_argument("--bad", type=int, default=4, help="of them deliberately bad (default 4)")
        parser.add_argument("--quota", type=int, default=40, help="judgments per annotator (default 40)")

    def handle(self, *args, **options):
        started = time.monotonic()
        workspace = self._workspace()
        corpus = self._corpus(workspace, options["items"])
        series = self._ladder(corpus, options)
        keys = self._held_out_keys(corpus, options)
        generators = list(Generator.objects.filter(series=series).order_by("params", "train_step"))
        for generator in generators:
            # A job that would find every sample made is left out: each `make run` would add one per generator.
            if Sample.objects.filter(generator=generator, item__corpus=corpus, item__key__in=keys).count() >= len(keys):
                continue
            call_command("generate", generator=generator.name, workspace=workspace.slug, corpus=CORPUS,
                         items=sorted(keys), verbosity=1 if options["verbosity"] else 0, stdout=self.stdout)
        study = self._study(workspace, corpus, generators, options)
        if not Judgment.objects.filter(assignment__study=study).exists():
            call_command("simulate_annotators", STUDY, annotators=options["annotators"], bad=options["bad"],
                         seed=0, report=settings.VAR_DIR / "demo" / "simulated.json", stdout=self.stdout)
        report = settings.VAR_DIR / "demo" / "report.html"
        if not report.exists():
            call_command("report", STUDY, format="html", out=report, stdout=self.stdout)
        self.stdout.write(f"Demo ready ({time.monotonic() - started:.0f} s). Report: {report}")
        self.stdout.write(f"Researcher login: {DEMO_USER} / {DEMO_PASSWORD}")

    def _workspace(self) -> Workspace:
        with transaction.atomic():
            workspace, _ = Workspace.objects.get_or_create(slug="demo", defaults={"name": "Demo"})
            user = get_user_model().objects.filter(username=DEMO_USER).first()
            if user is None:
                user = get_user_model().objects.create_superuser(DEMO_USER, password=DEMO_PASSWORD)
            Membership.objects.get_or_create(workspace=workspace, user=user, defaults={"role": Membership.Role.OWNER})
        return workspace

    def _corpus(self, workspace: Workspace, items: int) -> Corpus:
        corpus = Corpus.objects.filter(workspace=workspace, name=CORPUS).first()
        if corpus is not None:
            return corpus
        from generation.engine import LADDER  # torch: only when the demo is built

        shards = settings.VAR_DIR / "demo" / "scenes"
        shards.mkdir(parents=True, exist_ok=True)
        # Drawn at the engine's resolution: references and samples are compared as equals.
        size = max(config.image_size for config in LADDER.values())
        with progress_bar("Drawing demo scenes", total=items, unit=" scenes") as on_progress:
            write_webdataset(shards, items, size=size, shard_size=500, seed=0, image_format="png",
                             progress=on_progress)
        with progress_bar("Importing demo corpus", total=items, unit=" items") as on_progress:
            corpus, result = corpus_import(
                workspace=workspace, name=CORPUS, source=str(shards),
                description="Procedurally drawn shapes with exact compositional captions.", on_progress=on_progress,
            )
        self.stdout.write(f"Demo corpus {CORPUS!r}: {result.created} items.")
        return corpus

    def _ladder(self, corpus: Corpus, options) -> Series:
        series = Series.objects.filter(workspace=corpus.workspace, name=SERIES).first()
        if series is not None:
            return series
        steps = options["steps"]
        call_command(
            "train_ladder", corpus=CORPUS, workspace=corpus.workspace.slug, sizes=options["sizes"], steps=steps,
            checkpoints=f"{steps // 2},{steps}", batch_size=options["batch_size"], lr=2e-3, series=SERIES,
            val_fraction=self._val_fraction(corpus, options), sample_steps=options["sample_steps"],
            stdout=self.stdout,
        )
        return Series.objects.get(workspace=corpus.workspace, name=SERIES)

    def _val_fraction(self, corpus: Corpus, options) -> float:
        return options["held_out"] / max(1, corpus.items.count())

    def _held_out_keys(self, corpus: Corpus, options) -> set[str]:
        keys = list(corpus.items.values_list("key", flat=True))
        return held_out(keys, self._val_fraction(corpus, options))

    def _study(self, workspace: Workspace, corpus: Corpus, generators: list[Generator], options) -> Study:
        study = Study.objects.filter(slug=STUDY).first()
        if study is not None:
            return study
        study = study_create(
            workspace=workspace, name="Demo: the built-in ladder against real scenes", slug=STUDY, corpus=corpus,
            generators=generators, judgments_per_trial=3, catch_rate=0.15, calibration_rate=0.02,
            quota_per_annotator=options["quota"], break_every=20, practice_trials=2,
            consent_text="This is a demo study: your choices are stored in this local Parity only.",
            instructions="Each trial shows a caption and two images. Pick the one that better shows the caption.",
            completion_code="DEMO-DONE",
            # A left-presser passes catch trials as often as it is dealt them on the left.
            exclude_side_bias=True,
            # Catch trials come at random, so some annotators see few: at 8 % one good
            # annotator in 30 drew a single catch trial and slipped on it. At 15 % nearly
            # everyone sees several (about six in 40); one slip must not exclude a good
            # annotator (80 % would), fewer than half right is no better than guessing,
            # and an annotator dealt fewer than three is not judged on them.
            exclude_catch_accuracy_below=0.5,
            min_catch_trials=3,
            # The engine draws 32 px images: shown at twice that, losslessly, so that neither
            # kind is smeared by a JPEG of a tiny image (the page scales them up for people).
            presentation_policy={"size": 64, "format": "PNG"},
        )
        study_build_trials(study=study, rng_seed=0)
        study_open(study=study)
        return study
