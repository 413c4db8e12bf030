"""`python manage.py train_ladder`: train the built-in engine's size ladder on a corpus.

One series comes out, with one generator per (size, checkpoint): backend `builtin`,
its scale axes (`params`, `train_images`, `train_flops`, `train_step`) and its
validation loss (`metrics.val_loss`) filled in, ready for a generation job.

Validation split: the items whose keys hash lowest (sha256) are held out, a share
`--val-fraction` of the corpus (at least one when the corpus has two items or more).
The split depends on the keys only, so every size of the ladder sees the same one.

Checkpoints are written under PARITY_CHECKPOINT_DIR (by default var/checkpoints), in
`<workspace>/<series>/<size>/`, and each generator's `backend_config.checkpoint` is
that file's path relative to PARITY_CHECKPOINT_DIR, so a GPU worker that mounts the
folder elsewhere still finds it.
"""

import math
from pathlib import Path

from django.conf import settings as django_settings
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils.text import slugify
from PIL import Image

from generation import services
from generation.models import Corpus, Generator, Item, Series
from generation.selectors import held_out
from workspaces.cli import progress_bar
from workspaces.errors import ParityError

from ._progress import one_named


def comma_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class Command(BaseCommand):
    help = (
        "Train the built-in engine at several sizes on a corpus and create one series of generators, "
        "one per (size, checkpoint), with their scale axes and validation losses."
    )

    def add_arguments(self, parser):
        parser.add_argument("--corpus", required=True, help="corpus name")
        parser.add_argument("--workspace", help="workspace slug, when the corpus name is in several")
        parser.add_argument("--sizes", default="S,M,L", help="ladder sizes, comma-separated (default S,M,L)")
        parser.add_argument("--steps", type=int, default=1000, help="training steps of each size (default 1000)")
        parser.add_argument("--checkpoints", default="",
                            help="steps to checkpoint at, comma-separated (default: the last step only)")
        parser.add_argument("--batch-size", type=int, default=64)
        parser.add_argument("--lr", type=float, default=1e-3)
        parser.add_argument("--seed", type=int, default=0, help="fixes initial weights and every draw of training")
        parser.add_argument("--val-fraction", type=float, default=0.1, help="share of items held out (default 0.1)")
        parser.add_argument("--series", help="name of the new series (default: <corpus>-ladder)")
        parser.add_argument("--device", help="cuda, cpu… (default: a GPU if there is one)")
        parser.add_argument("--sample-steps", type=int, default=30, help="the generators' sampling steps (default 30)")
        parser.add_argument("--guidance", type=float, default=3.0, help="the generators' guidance scale (default 3.0)")

    def handle(self, *args, **options):
        from generation.engine import LADDER, TrainConfig, pick_device  # torch: commands and workers only

        corpus = self._corpus(options["corpus"], options["workspace"])
        sizes = comma_list(options["sizes"])
        unknown = [size for size in sizes if size not in LADDER]
        if not sizes or unknown:
            raise CommandError(f"--sizes takes {', '.join(LADDER)}; {', '.join(unknown) or 'none'} given")
        try:
            checkpoints = tuple(int(step) for step in comma_list(options["checkpoints"]))
            train_config = TrainConfig(
                steps=options["steps"], batch_size=options["batch_size"], lr=options["lr"],
                checkpoint_steps=checkpoints, seed=options["seed"],
            )
        except ValueError as exc:
            raise CommandError(f"bad training options: {exc}") from None
        series_name = options["series"] or f"{corpus.name}-ladder"
        names = {size: [f"{series_name}-{size}-step{step}" for step in train_config.save_steps] for size in sizes}
        self._refuse_taken(corpus, series_name, [name for group in names.values() for name in group])
        try:
            device = pick_device(options["device"])
        except RuntimeError as exc:
            raise CommandError(str(exc)) from None
        quiet = options["verbosity"] == 0

        keys, captions, files = self._items(corpus)
        validation = held_out(keys, options["val_fraction"])
        self.stdout.write(
            f"Corpus {corpus.name!r}: {len(keys) - len(validation)} items to train on, "
            f"{len(validation)} held out; device {device}."
        )
        images_by_size: dict[int, list[Image.Image]] = {}
        folder = Path(slugify(corpus.workspace.slug)) / (slugify(series_name) or "series")
        series = None
        created = 0
        for size in sizes:
            image_size = LADDER[size].image_size
            if image_size not in images_by_size:
                images_by_size[image_size] = self._images(files, image_size, quiet)
            images = images_by_size[image_size]
            train_set = [i for i, key in enumerate(keys) if key not in validation]
            val_set = [i for i, key in enumerate(keys) if key in validation]
            with progress_bar(f"Training {size}", total=train_config.steps, unit=" steps", disable=quiet) as bar:
                infos = self._train(
                    size, LADDER[size], train_config, device, bar,
                    captions=[captions[i] for i in train_set], images=[images[i] for i in train_set],
                    val_captions=[captions[i] for i in val_set], val_images=[images[i] for i in val_set],
                    out_dir=Path(django_settings.PARITY_CHECKPOINT_DIR) / folder / size,
                )
            if series is None:
                series = self._create_series(corpus, series_name, sizes, train_config, len(keys), len(validation))
            created += self._create_generators(series, corpus, infos, options)
            best = min((info.val_loss for info in infos), default=math.nan)
            self.stdout.write(f"  {size}: {infos[0].params:,} parameters, validation loss {best:.4f}")
        self.stdout.write(self.style.SUCCESS(f"Series {series_name!r}: {created} generators."))

    def _train(self, size, config, train_config, device, bar, **data):
        from generation.engine import train

        try:
            return train(config, settings=train_config, size=size, device=device,
                         progress=lambda step, total: bar(step), **data)
        except ValueError as exc:
            raise CommandError(f"training {size} refused: {exc}") from None

    def _corpus(self, name: str, workspace: str | None) -> Corpus:
        return one_named(Corpus.objects.all(), what="corpus", name=name, workspace=workspace)

    def _refuse_taken(self, corpus: Corpus, series: str, names: list[str]) -> None:
        if Series.objects.filter(workspace=corpus.workspace, name=series).exists():
            raise CommandError(f"workspace {corpus.workspace.slug!r} already has a series named {series!r}: "
                               "give another with --series")
        taken = Generator.objects.filter(workspace=corpus.workspace, name__in=names).values_list("name", flat=True)
        if taken:
            raise CommandError(f"workspace {corpus.workspace.slug!r} already has a generator named {taken[0]!r}")

    def _items(self, corpus: Corpus) -> tuple[list[str], list[str], list[str]]:
        rows = list(Item.objects.filter(corpus=corpus).order_by("key").values_list("key", "caption", "image"))
        if not rows:
            raise CommandError(f"corpus {corpus.name!r} has no items")
        keys, captions, files = (list(column) for column in zip(*rows))
        return keys, captions, files

    def _images(self, files: list[str], image_size: int, quiet: bool) -> list[Image.Image]:
        """The references, centre-cropped and resized to `image_size` as they are read (memory stays small)."""
        from generation.engine.imaging import square

        images = []
        with progress_bar(f"Reading references at {image_size} px", total=len(files), unit=" images",
                          disable=quiet) as bar:
            for count, name in enumerate(files, start=1):
                with default_storage.open(name, "rb") as stored, Image.open(stored) as image:
                    images.append(square(image, image_size))
                bar(count)
        return images

    def _create_series(self, corpus, name, sizes, train_config, items, held) -> Series:
        description = (
            f"Built-in engine, sizes {', '.join(sizes)}, trained on corpus {corpus.name!r} "
            f"({items - held} items, {held} held out) for {train_config.steps} steps of "
            f"{train_config.batch_size} images, lr {train_config.lr}, seed {train_config.seed}."
        )
        try:
            return services.series_create(workspace=corpus.workspace, name=name, description=description)
        except ParityError as exc:
            raise CommandError(str(exc)) from None

    def _create_generators(self, series: Series, corpus: Corpus, infos, options) -> int:
        root = Path(django_settings.PARITY_CHECKPOINT_DIR)
        with transaction.atomic():
            for info in infos:
                path = Path(info.path)
                checkpoint = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
                services.generator_create(
                    workspace=corpus.workspace, name=f"{series.name}-{info.size}-step{info.step}", series=series,
                    description=f"Built-in engine, size {info.size}, after {info.step} training steps.",
                    params=info.params, train_images=info.train_images, train_flops=info.train_flops,
                    train_step=info.step,
                    metrics={"val_loss": info.val_loss} if math.isfinite(info.val_loss) else {},
                    settings={"steps": options["sample_steps"], "guidance": options["guidance"]},
                    backend="builtin", backend_config={"checkpoint": checkpoint},
                )
        return len(infos)
