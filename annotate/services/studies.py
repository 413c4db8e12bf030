"""Studies: building their trials (practice set aside, generated, controls), opening, closing."""

import random

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from PIL import Image

from annotate.controls import control_name, corrupted_png
from annotate.errors import (
    StudyClosed,
    StudyNotReady,
)
from annotate.models import CONTROL_KINDS, Study, Trial
from generation.models import Item, Sample

SHUFFLE_RANGE = 2**31 - 1


def study_build_trials(*, study: Study, rng_seed: int | None = None) -> int:
    """Create the study's trials; return how many were created.

    The first build sets aside ``practice_trials`` random items of the corpus for
    practice (a catch pair each, shown with feedback before the study); no trial of
    the study ever shows them. Then one generated trial per (generator, item) that
    has a sample of that generator, using its lowest seed; plus ``round(catch_rate *
    n)`` catch and ``round(calibration_rate * n)`` calibration trials on random items
    (n: the items left after practice). Calling it again creates only what is
    missing: generated trials of new generators or samples; control trials only if
    the study has none.
    """
    if Study.objects.filter(pk=study.pk, status=Study.Status.CLOSED).exists():
        raise StudyClosed(f"study {study.slug!r} is closed: its trials can no longer change")
    rng = random.Random(rng_seed)
    trials = []
    if not Trial.objects.filter(study=study).exists():
        trials += _practice_trials(study, rng)
    set_aside = {t.item_id for t in trials} | set(
        Trial.objects.filter(study=study, kind=Trial.Kind.PRACTICE).values_list("item_id", flat=True)
    )
    existing = set(
        Trial.objects.filter(study=study, kind=Trial.Kind.GENERATED).values_list("generator_id", "item_id")
    )
    samples = (
        Sample.objects.filter(item__corpus_id=study.corpus_id, generator__in=study.generators.all())
        .order_by("generator_id", "item_id", "seed")
        .only("id", "generator_id", "item_id")
    )
    for sample in samples.iterator():
        pair = (sample.generator_id, sample.item_id)
        if pair in existing or sample.item_id in set_aside:
            continue
        existing.add(pair)
        trials.append(Trial(study=study, kind=Trial.Kind.GENERATED, item_id=sample.item_id, sample_id=sample.id,
                            generator_id=sample.generator_id))
    if not Trial.objects.filter(study=study, kind__in=CONTROL_KINDS).exists():
        trials += _control_trials(study, rng, exclude=set_aside)
    for trial in trials:
        trial.shuffle = rng.randrange(SHUFFLE_RANGE)
    with transaction.atomic():
        Trial.objects.bulk_create(trials, batch_size=1000)
    return len(trials)


def _practice_trials(study: Study, rng: random.Random) -> list[Trial]:
    items = list(Item.objects.filter(corpus_id=study.corpus_id).order_by("id"))
    chosen = rng.sample(items, min(len(items), study.practice_trials))
    return [
        Trial(study=study, kind=Trial.Kind.PRACTICE, item=item,
              control_image=_catch_image(item, seed=rng.randrange(SHUFFLE_RANGE)))
        for item in chosen
    ]


def _control_trials(study: Study, rng: random.Random, *, exclude: set[int]) -> list[Trial]:
    items = [item for item in Item.objects.filter(corpus_id=study.corpus_id).order_by("id") if item.pk not in exclude]
    trials = []
    for kind, rate in ((Trial.Kind.CATCH, study.catch_rate), (Trial.Kind.CALIBRATION, study.calibration_rate)):
        for item in rng.sample(items, min(len(items), round(rate * len(items)))):
            image = _catch_image(item, seed=rng.randrange(SHUFFLE_RANGE)) if kind == Trial.Kind.CATCH else ""
            trials.append(Trial(study=study, kind=kind, item=item, control_image=image))
    return trials


def _catch_image(item: Item, *, seed: int) -> str:
    """Store a corrupted copy of the item's reference; return its storage name."""
    with default_storage.open(item.image.name, "rb") as handle, Image.open(handle) as reference:
        data = corrupted_png(reference, seed=seed)
    name = control_name(data)
    if not default_storage.exists(name):
        name = default_storage.save(name, ContentFile(data))
    return name


def study_open(*, study: Study) -> Study:
    """Open the study: from now on it issues assignments."""
    if not Trial.objects.filter(study=study).exists():
        raise StudyNotReady(f"study {study.slug!r} has no trials: build them before opening it")
    study.status = Study.Status.OPEN
    study.save(update_fields=["status"])
    return study


def study_close(*, study: Study) -> Study:
    """Close the study: it issues no more assignments; open ones may still be judged."""
    study.status = Study.Status.CLOSED
    study.save(update_fields=["status"])
    return study
