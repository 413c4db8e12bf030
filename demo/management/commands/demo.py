"""The demo of `make run`, built the first time only: a real scaling study on one machine.

Every stage goes through the path a researcher's data takes:

1. corpus — procedural scenes (demo.scenes: shapes with exact captions) drawn
   at the engine's resolution, written as WebDataset shards and imported through the
   real import path;
2. ladder — `train_ladder` trains the built-in engine at sizes S, M and L, each
   checkpointed half-way and at the end: one series of six generators with their
   scale axes (params, train_images, train_flops, train_step) and validation losses;
3. samples — a generation job per generator makes its samples for the held-out
   prompts (the items no size was trained on), here, through the runner a GPU
   worker uses;
4. study — over those prompts, with catch and calibration trials, opened with the
   half-way checkpoints (the smallest one an anchor generator, kept in rotation for the
   study's whole life); then `simulate_annotators` sends simulated annotators (a few
   deliberately bad) through the real pages over HTTP, choosing by how well each image
   shows its caption;
5. second wave — the final checkpoints join the running study (`study_add_generators`,
   as a lab's later checkpoints do), head-to-head trials of neighbouring generators are
   mixed in (`head_to_head_share`), and a second group of simulated annotators judges;
6. report — the study's HTML report, written to var/demo/report.html: a curve that
   grew, and the ladder ranked on one Bradley-Terry scale.

A stage whose result exists is skipped, so a second run only reports where things
are. A stage left incomplete (stopped during "Training M", say) or built with other
options than those given is said so, and built again with what follows it: the
options each stage was built with are kept in var/demo/build.json, and an option left
out means "as last time" (the default the first time). Judgments are never deleted:
a demo whose study has them is not rebuilt with other options, and a simulation that
was stopped is run again beside the judgments it made. An interrupted generation job
is resumed. On a database not migrated yet, the demo migrates it first.
Everything simulated is marked so in the data, the pages and the report.
"""

import json
import shutil
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils.text import slugify

from annotate.models import Assignment, Judgment, Study
from annotate.services import (
    study_add_generators,
    study_build_trials,
    study_create,
    study_open,
    study_update,
)
from demo.scenes import write_webdataset
from generation.models import Corpus, GenerationJob, Generator, Sample, Series
from generation.selectors import held_out
from generation.services import corpus_import, generation_jobs_interrupt_lost
from workspaces.cli import progress_bar
from workspaces.models import Membership, Workspace

DEMO_USER = "researcher"
DEMO_PASSWORD = "parity-demo"
STUDY = "demo"
SERIES = "scenes-ladder"
CORPUS = "scenes"
DEFAULTS = {
    "items": 2100, "held_out": 100, "sizes": "S,M,L", "steps": 1500, "batch_size": 32, "sample_steps": 20,
    "annotators": 30, "bad": 4, "quota": 40,
}
# The stages whose options are recorded, in order, with the options each is built with
# (a stage rests on those before it as well).
STAGE_OPTIONS = {
    "corpus": ("items",),
    "ladder": ("held_out", "sizes", "steps", "batch_size", "sample_steps"),
    "study": ("quota",),
    "judgments": ("annotators", "bad"),
}
STAGES = tuple(STAGE_OPTIONS)
# The second wave's share of head-to-head trials, and the anchor's share of the vs-real ones.
HEAD_TO_HEAD_SHARE = 0.3
ANCHOR_SHARE = 0.2


class Command(BaseCommand):
    help = "Build the demo (once): scenes corpus, trained ladder, samples, a study with simulated judgments, a report."

    def add_arguments(self, parser):
        def option(name: str, help: str, **kwargs) -> None:
            default = DEFAULTS[name.removeprefix("--").replace("-", "_")]
            parser.add_argument(name, help=f"{help} (default {default}, or as the demo was last built)", **kwargs)

        option("--items", "scenes in the corpus", type=int)
        option("--held-out", "prompts held out of training, the study's prompts", type=int)
        option("--sizes", "ladder sizes")
        option("--steps", "training steps per size", type=int)
        option("--batch-size", "training batch size", type=int)
        option("--sample-steps", "sampling steps of the generators", type=int)
        option("--annotators", "simulated annotators", type=int)
        option("--bad", "of them deliberately bad", type=int)
        option("--quota", "judgments per annotator", type=int)

    def handle(self, *args, **options):
        started = time.monotonic()
        self._migrate()
        built = self._built()
        given = {name: options[name] for name in DEFAULTS if options[name] is not None}
        options = {**options, **DEFAULTS, **built.get("last", {}), **given}
        self._check(options)
        workspace = self._workspace()
        if stale := self._stale_stage(workspace, options, built):
            self._redo(workspace, *stale, built)
        # Kept once the options are taken, for a run stopped half-way to be picked up without them.
        built["last"] = {name: options[name] for name in DEFAULTS}
        self._save(built)
        corpus = self._corpus(workspace, options["items"])
        self._record(built, "corpus", options)
        series = self._ladder(corpus, options)
        self._record(built, "ladder", options)
        keys = self._held_out_keys(corpus, options)
        generators = list(Generator.objects.filter(series=series).order_by("params", "train_step"))
        for generator in generators:
            # A job that would find every sample made is left out: each `make run` would add one per generator.
            if Sample.objects.filter(generator=generator, item__corpus=corpus, item__key__in=keys).count() >= len(keys):
                continue
            self._generate(workspace, generator, sorted(keys), options)
        self._study(workspace, corpus, generators, options)
        self._record(built, "study", options)
        simulated = settings.VAR_DIR / "demo" / "simulated.json"
        report = settings.VAR_DIR / "demo" / "report.html"
        if not simulated.exists():
            call_command("simulate_annotators", STUDY, annotators=options["annotators"], bad=options["bad"],
                         seed=0, report=simulated, stdout=self.stdout)
        second = settings.VAR_DIR / "demo" / "simulated-wave2.json"
        if not second.exists():
            self._second_wave(generators)
            call_command("simulate_annotators", STUDY, annotators=options["annotators"], bad=options["bad"],
                         seed=1, report=second, stdout=self.stdout)
            report.unlink(missing_ok=True)
        self._record(built, "judgments", options)
        if not report.exists():
            call_command("report", STUDY, format="html", out=report, stdout=self.stdout)
        self.stdout.write(f"Demo ready ({time.monotonic() - started:.0f} s). Report: {report}")
        self.stdout.write(f"Researcher login: {DEMO_USER} / {DEMO_PASSWORD}")

    # -- before building -----------------------------------------------------------
    def _migrate(self) -> None:
        executor = MigrationExecutor(connection)
        if executor.migration_plan(executor.loader.graph.leaf_nodes()):
            self.stdout.write("The database is not migrated: migrating it first.")
            call_command("migrate", interactive=False, verbosity=0)

    def _check(self, options) -> None:
        for name in ("items", "held_out", "steps", "batch_size", "sample_steps", "annotators", "quota"):
            if options[name] < 1:
                raise CommandError(f"--{name.replace('_', '-')} is at least 1")
        if options["held_out"] >= options["items"]:
            raise CommandError("--held-out must be below --items: the ladder trains on the other items")
        if not 0 <= options["bad"] <= options["annotators"]:
            raise CommandError("--bad is between 0 and --annotators")
        if options["steps"] < 2:
            raise CommandError("--steps is at least 2: each size is checkpointed half-way and at the end")

    def _built(self) -> dict:
        """The options of the last run and of each stage built (var/demo/build.json)."""
        try:
            return json.loads(self._build_file().read_text())
        except (OSError, ValueError):
            return {}

    def _save(self, built: dict) -> None:
        self._build_file().parent.mkdir(parents=True, exist_ok=True)
        self._build_file().write_text(json.dumps(built, indent=2) + "\n")

    def _record(self, built: dict, stage: str, options) -> None:
        built[stage] = {name: options[name] for name in STAGE_OPTIONS[stage]}
        self._save(built)

    def _build_file(self) -> Path:
        return settings.VAR_DIR / "demo" / "build.json"

    def _stale_stage(self, workspace: Workspace, options, built: dict) -> tuple[str, str, bool] | None:
        """The first stage left incomplete or built with other options: (stage, why, incomplete)."""
        for stage in STAGES:
            changed = [
                f"--{name.replace('_', '-')} {built[stage].get(name)} (now {options[name]})"
                for name in STAGE_OPTIONS[stage] if stage in built and built[stage].get(name) != options[name]
            ]
            if changed:
                return stage, f"was built with {', '.join(changed)}", False
            if incomplete := getattr(self, f"_{stage}_incomplete")(workspace, options):
                return stage, incomplete, True
        return None

    def _corpus_incomplete(self, workspace: Workspace, options) -> str:
        corpus = Corpus.objects.filter(workspace=workspace, name=CORPUS).first()
        count = corpus.items.count() if corpus else options["items"]
        return f"has {count} items (now --items {options['items']})" if count != options["items"] else ""

    def _ladder_incomplete(self, workspace: Workspace, options) -> str:
        series = Series.objects.filter(workspace=workspace, name=SERIES).first()
        if series is None:
            return ""
        steps = options["steps"]
        expected = {
            f"{SERIES}-{size.strip()}-step{step}"
            for size in options["sizes"].split(",") if size.strip() for step in {steps // 2, steps}
        }
        generators = {generator.name: generator for generator in Generator.objects.filter(series=series)}
        if missing := sorted(expected - set(generators)):
            return f"is incomplete (it lacks {', '.join(missing)})"
        if extra := sorted(set(generators) - expected):
            return f"has {', '.join(extra)}, which --sizes {options['sizes']} --steps {steps} would not make"
        for name, generator in sorted(generators.items()):
            checkpoint = Path(settings.PARITY_CHECKPOINT_DIR) / generator.backend_config.get("checkpoint", "")
            if not checkpoint.is_file():
                return f"is incomplete (the checkpoint of {name} is missing: {checkpoint})"
            if (sample_steps := generator.settings.get("steps")) != options["sample_steps"]:
                return f"samples in {sample_steps} steps (now --sample-steps {options['sample_steps']})"
        return ""

    def _study_incomplete(self, workspace: Workspace, options) -> str:
        study = Study.objects.filter(slug=STUDY).first()
        if study is None:
            return ""
        if study.status == Study.Status.DRAFT:
            return "is incomplete (it was never opened)"
        if study.quota_per_annotator != options["quota"]:
            return f"gives {study.quota_per_annotator} judgments per annotator (now --quota {options['quota']})"
        return ""

    def _judgments_incomplete(self, workspace: Workspace, options) -> str:
        simulated = settings.VAR_DIR / "demo" / "simulated.json"
        if not simulated.exists() and Judgment.objects.filter(assignment__study__slug=STUDY).exists():
            return "are incomplete (the simulated annotators were stopped before the end)"
        return ""

    def _redo(self, workspace: Workspace, stage: str, why: str, incomplete: bool, built: dict) -> None:
        """Remove `stage` and what follows, to be built again; judgments are kept (append-only)."""
        judged = Assignment.objects.filter(study__slug=STUDY).exists()
        if judged and not (stage == "judgments" and incomplete):
            raise CommandError(
                f"The demo's {stage} {why}, and its study has judgments, which are never deleted: the demo is "
                "kept as it is. Leave those options out to keep it, or start from an empty database for a new "
                "one (`make clean` removes var/ with its SQLite database)."
            )
        again = (
            "running the simulated annotators again beside the judgments made" if stage == "judgments"
            else "building it again, and what follows"
        )
        self.stdout.write(self.style.WARNING(f"Demo: the {stage} {why}; {again}."))
        folder = settings.VAR_DIR / "demo"
        for name in ("report.html", "simulated.json", "simulated-wave2.json"):
            (folder / name).unlink(missing_ok=True)
        later = STAGES[STAGES.index(stage):]
        if "study" in later:
            Study.objects.filter(slug=STUDY).delete()
        if "ladder" in later:
            Generator.objects.filter(workspace=workspace, series__name=SERIES).delete()
            Series.objects.filter(workspace=workspace, name=SERIES).delete()
            shutil.rmtree(Path(settings.PARITY_CHECKPOINT_DIR) / slugify(workspace.slug) / slugify(SERIES),
                          ignore_errors=True)
        if "corpus" in later:
            GenerationJob.objects.filter(corpus__workspace=workspace, corpus__name=CORPUS).delete()
            Corpus.objects.filter(workspace=workspace, name=CORPUS).delete()
            shutil.rmtree(folder / "scenes", ignore_errors=True)
        for name in later:
            built.pop(name, None)
        self._save(built)

    # -- the stages ----------------------------------------------------------------
    def _generate(self, workspace: Workspace, generator: Generator, keys: list[str], options) -> None:
        """Make the generator's missing samples: resume its interrupted job for these items, else start one."""
        verbosity = 1 if options["verbosity"] else 0
        generation_jobs_interrupt_lost(jobs=generator.jobs.all())
        interrupted = generator.jobs.filter(status=GenerationJob.Status.INTERRUPTED).order_by("-created_at", "-pk")
        job = next((job for job in interrupted if sorted(job.item_keys) == keys), None)
        if job is not None:
            self.stdout.write(f"Demo: resuming generation job {job.pk} of {generator.name}, which was interrupted.")
            call_command("generate", resume=str(job.pk), verbosity=verbosity, stdout=self.stdout)
            return
        call_command("generate", generator=generator.name, workspace=workspace.slug, corpus=CORPUS,
                     items=keys, verbosity=verbosity, stdout=self.stdout)

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
        # The first wave: each size's half-way checkpoint; the final ones join later.
        first = [g for g in generators if g.train_step == options["steps"] // 2]
        study = study_create(
            workspace=workspace, name="Demo: the built-in ladder against real scenes", slug=STUDY, corpus=corpus,
            generators=first, anchor_generators=[first[0].pk], anchor_share=ANCHOR_SHARE, judgments_per_trial=3, catch_rate=0.15, calibration_rate=0.02,
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

    def _second_wave(self, generators: list[Generator]) -> None:
        """The later checkpoints join the running study, and head-to-head trials are mixed in."""
        study = Study.objects.get(slug=STUDY)
        study, created = study_add_generators(study=study, generators=generators)
        if study.head_to_head_share != HEAD_TO_HEAD_SHARE:
            study = study_update(study=study, head_to_head_share=HEAD_TO_HEAD_SHARE)
        self.stdout.write(
            f"Demo: second wave: the final checkpoints join the running study ({created} new trials) and "
            f"{HEAD_TO_HEAD_SHARE:.0%} of the judged trials meet neighbouring generators head to head "
            f"({study.trials.filter(kind='head_to_head').count()} head-to-head trials).")
