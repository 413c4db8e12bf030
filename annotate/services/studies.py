"""Studies: creating and changing their configuration, building their trials (practice
set aside, generated, controls), opening, closing."""

import random
from collections import Counter
from collections.abc import Iterable

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone
from PIL import Image

from annotate import study_settings
from annotate.controls import control_name, corrupted_png
from annotate.errors import (
    StudyClosed,
    StudyInvalid,
    StudyNotDraft,
    StudyNotReady,
)
from annotate.models import CONTROL_KINDS, Study, Trial
from annotate.services.head_to_head import head_to_head_trials, study_pairs
from annotate.services.items import study_items
from generation.errors import InUse, NameTaken
from generation.models import SCALE_AXES, SETTING_AXIS, Corpus, Generator, Item, Sample
from generation.presentation import PresentationPolicy
from generation.selection import SelectionError, parse_filters
from workspaces.models import Workspace

SHUFFLE_RANGE = 2**31 - 1


def study_build_trials(*, study: Study, rng_seed: int | None = None) -> int:
    """Create the study's trials; return how many were created.

    The first build sets aside ``practice_trials`` random items of the corpus for
    practice (a catch pair each, shown with feedback before the study); no trial of
    the study ever shows them. Then generated trials per (generator, item) with
    samples of that generator, one for each of its lowest ``seeds_per_item`` seeds (an
    annotator still sees each prompt at most once); plus ``round(catch_rate *
    n)`` catch and ``round(calibration_rate * n)`` calibration trials on random items
    (n: the items left after practice). Calling it again creates only what is
    missing: generated trials of new generators or samples; control trials only if
    the study has none.

    Every random choice comes from one seed, kept in `Study.trial_seed` so that a
    build can be repeated and a report can name it: ``rng_seed`` where given (stored
    on the first build), else the stored seed, else a fresh one drawn and stored.
    """
    if Study.objects.filter(pk=study.pk, status=Study.Status.CLOSED).exists():
        raise StudyClosed(f"study {study.slug!r} is closed: its trials can no longer change")
    rng = random.Random(_trial_seed(study, rng_seed))
    selected, selection = study_items(study)
    item_ids = selected if selected is not None else list(
        Item.objects.filter(corpus_id=study.corpus_id).order_by("id").values_list("id", flat=True))
    allowed = set(item_ids)
    trials = []
    if not Trial.objects.filter(study=study).exists():
        trials += _practice_trials(study, rng, item_ids)
    set_aside = {t.item_id for t in trials} | set(
        Trial.objects.filter(study=study, kind=Trial.Kind.PRACTICE).values_list("item_id", flat=True)
    )
    built = Counter()
    built_samples = set()
    for generator_id, item_id, sample_id in Trial.objects.filter(study=study, kind=Trial.Kind.GENERATED).values_list(
            "generator_id", "item_id", "sample_id"):
        built[generator_id, item_id] += 1
        built_samples.add(sample_id)
    samples = (
        Sample.objects.filter(item__corpus_id=study.corpus_id, generator__in=study.generators.all(),
                              **({} if study.include_blank_samples else {"blank": False}))
        .order_by("generator_id", "item_id", "seed")
        .only("id", "generator_id", "item_id")
    )
    for sample in samples.iterator():
        pair = (sample.generator_id, sample.item_id)
        if sample.id in built_samples or built[pair] >= study.seeds_per_item or sample.item_id in set_aside \
                or sample.item_id not in allowed:
            continue
        built[pair] += 1
        trials.append(Trial(study=study, kind=Trial.Kind.GENERATED, item_id=sample.item_id, sample_id=sample.id,
                            generator_id=sample.generator_id))
    if not Trial.objects.filter(study=study, kind__in=CONTROL_KINDS).exists():
        trials += _control_trials(study, rng, [i for i in item_ids if i not in set_aside])
    pairs = []
    if study.head_to_head_share > 0:
        pairs = study_pairs(study)
        trials += head_to_head_trials(study, pairs, set_aside=set_aside, allowed=allowed)
    for trial in trials:
        trial.shuffle = rng.randrange(SHUFFLE_RANGE)
    with transaction.atomic():
        Trial.objects.bulk_create(trials, batch_size=1000)
        if study.head_to_head_share > 0:
            _pairs_save(study, pairs)
        if selection != study.item_selection:
            study.item_selection = selection
            Study.objects.filter(pk=study.pk).update(item_selection=selection)
    return len(trials)


def study_head_to_head_pairs_write(*, study: Study, pairs: Iterable[tuple[int, int]]) -> int:
    """Serve head-to-head trials of `pairs` (generator ids) from now on, building the
    missing ones; return how many were built. The analysis calls it with the pairs
    whose order is most uncertain; trials of pairs no longer served stay, unserved."""
    pairs = [(int(a), int(b)) for a, b in pairs]
    members = set(study.generators.values_list("id", flat=True))
    for a, b in pairs:
        if a == b or a not in members or b not in members:
            raise StudyInvalid(f"pair ({a}, {b}) is not two generators of study {study.slug!r}",
                               field="head_to_head_active")
    served = {tuple(pair) for pair in
              Study.objects.filter(pk=study.pk).values_list("head_to_head_active", flat=True).first() or ()}
    # A pair served already has its trials: the item selection (seconds on a large corpus)
    # and the build run only for pairs new to the list, which every report build rewrites.
    fresh = [pair for pair in pairs if pair not in served]
    if not fresh and len(pairs) == len(served):
        return 0
    trials = []
    if fresh:
        set_aside = set(Trial.objects.filter(study=study, kind=Trial.Kind.PRACTICE).values_list("item_id", flat=True))
        selected, _ = study_items(study)
        trials = head_to_head_trials(study, fresh, set_aside=set_aside,
                                     allowed=None if selected is None else set(selected))
    rng = random.Random()
    for trial in trials:
        trial.shuffle = rng.randrange(SHUFFLE_RANGE)
    with transaction.atomic():
        Trial.objects.bulk_create(trials, batch_size=1000)
        _pairs_save(study, pairs)
    return len(trials)


def _pairs_save(study: Study, pairs: list[tuple[int, int]]) -> None:
    """Write `Study.head_to_head_active` alone, so no other column of a running study is overwritten."""
    study.head_to_head_active = [list(pair) for pair in pairs]
    Study.objects.filter(pk=study.pk).update(head_to_head_active=study.head_to_head_active)


def _trial_seed(study: Study, rng_seed: int | None) -> int:
    """The seed of this build: `rng_seed`, else the study's, else a fresh one; stored
    on the study where it has none yet (one UPDATE of that column alone)."""
    stored = Study.objects.filter(pk=study.pk).values_list("trial_seed", flat=True).first()
    seed = rng_seed if rng_seed is not None else stored
    if seed is None:
        seed = random.SystemRandom().randrange(SHUFFLE_RANGE)
    if stored is None:
        Study.objects.filter(pk=study.pk, trial_seed__isnull=True).update(trial_seed=seed)
        stored = seed
    study.trial_seed = stored
    return seed


def _practice_trials(study: Study, rng: random.Random, item_ids: list[int]) -> list[Trial]:
    chosen = _items_in_order(rng.sample(item_ids, min(len(item_ids), study.practice_trials)))
    return [
        Trial(study=study, kind=Trial.Kind.PRACTICE, item=item,
              control_image=_catch_image(item, seed=rng.randrange(SHUFFLE_RANGE)))
        for item in chosen
    ]


def _control_trials(study: Study, rng: random.Random, item_ids: list[int]) -> list[Trial]:
    trials = []
    for kind, rate in ((Trial.Kind.CATCH, study.catch_rate), (Trial.Kind.CALIBRATION, study.calibration_rate)):
        for item in _items_in_order(rng.sample(item_ids, min(len(item_ids), round(rate * len(item_ids))))):
            image = _catch_image(item, seed=rng.randrange(SHUFFLE_RANGE)) if kind == Trial.Kind.CATCH else ""
            trials.append(Trial(study=study, kind=kind, item=item, control_image=image))
    return trials


def _items_in_order(ids: list[int]) -> list[Item]:
    """The items of `ids`, in that order (the order the seeded draw chose them in)."""
    found = Item.objects.in_bulk(ids)
    return [found[i] for i in ids]


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


# ------------------------------------------------------------------------------
# Generators joining and leaving a running study
# ------------------------------------------------------------------------------
def study_add_generators(
    *, study: Study, generators: Iterable[Generator], rng_seed: int | None = None
) -> tuple[Study, int]:
    """Add generators (of the study's workspace) to a draft or open study; return it and
    the trials created.

    Once the study's trials are built, the new generators' generated trials are built
    now (`study_build_trials` creates only what is missing: existing trials and
    judgments are untouched). They start with no assignments, and the engine serves
    the trials with the fewest first, so the newcomers are served first until they
    catch up. Each addition is appended to `Study.generator_history` with its time; a
    generator already in the study is left as it is. A closed study is `StudyClosed`.
    """
    generators = list(generators)
    with transaction.atomic():
        current = Study.objects.select_for_update().get(pk=study.pk)
        if current.status == Study.Status.CLOSED:
            raise StudyClosed(f"study {study.slug!r} is closed: its generators can no longer change")
        _check_study(current, generators)
        present = set(current.generators.values_list("id", flat=True))
        removed = current.removed_generator_ids()
        joining = [g for g in dict.fromkeys(generators) if g.pk not in present or g.pk in removed]
        if not joining:
            return current, 0
        current.generators.add(*joining)
        current.generator_history = [*current.generator_history, *_events(joining, "added")]
        current.save(update_fields=["generator_history"])
        built = Trial.objects.filter(study=current).exists()
    created = study_build_trials(study=current, rng_seed=rng_seed) if built else 0
    return current, created


def study_remove_generators(*, study: Study, generators: Iterable[Generator]) -> Study:
    """Stop serving generators of a draft or open study; keep their trials and judgments.

    They leave the study's generators and `Study.generator_history` records the
    removal; the engine issues none of their trials from then on, and the report still
    analyses what was judged. Adding one again serves its trials again.
    """
    generators = list(generators)
    with transaction.atomic():
        current = Study.objects.select_for_update().get(pk=study.pk)
        if current.status == Study.Status.CLOSED:
            raise StudyClosed(f"study {study.slug!r} is closed: its generators can no longer change")
        present = set(current.generators.values_list("id", flat=True))
        leaving = [g for g in dict.fromkeys(generators) if g.pk in present]
        for generator in generators:
            if generator.pk not in present:
                raise StudyInvalid(f"generator {generator.name!r} is not in study {study.slug!r}",
                                   field="generators")
        current.generators.remove(*leaving)
        current.generator_history = [*current.generator_history, *_events(leaving, "removed")]
        gone = {g.pk for g in leaving}
        current.anchor_generators = [a for a in current.anchor_generators if a not in gone]
        current.save(update_fields=["generator_history", "anchor_generators"])
    if current.head_to_head_share > 0 and Trial.objects.filter(study=current).exists():
        # The neighbours of a generator that left now meet each other.
        study_build_trials(study=current)
    return current


def _events(generators: list[Generator], event: str) -> list[dict]:
    at = timezone.now().isoformat()
    return [{"generator": g.pk, "name": g.name, "event": event, "at": at} for g in generators]


# ------------------------------------------------------------------------------
# Creating, changing and deleting a study's configuration
# ------------------------------------------------------------------------------
# What `study_update` may change: the name, the corpus and the settings (`study_settings`);
# a study never moves to another workspace, and its slug, in every link already handed
# out, never changes.
STUDY_FIELDS = ("name", "corpus", *study_settings.NAMES)


def study_create(
    *,
    workspace: Workspace,
    name: str,
    slug: str,
    corpus: Corpus,
    generators: Iterable[Generator] = (),
    **fields,
) -> Study:
    """A new draft study of `workspace` over `corpus` and `generators` (both of that workspace).

    `fields` are any of `STUDY_FIELDS`; the rest keep the model's defaults. A slug
    already taken, in any workspace, is `NameTaken` (slugs are global: they are the
    annotators' links).
    """
    study = Study(workspace=workspace, name=name, slug=slug, corpus=corpus)
    return _study_save(study, generators=list(generators), fields=fields, created=True)


def study_update(*, study: Study, generators: Iterable[Generator] | None = None, **fields) -> Study:
    """Change a draft study's configuration; an opened study changes only the settings
    declared to change after opening, and anything else is `StudyNotDraft`.

    `generators`, when given, replaces the study's generators.
    """
    with transaction.atomic():
        # Locked, so that an open racing this change cannot slip between check and write.
        current = Study.objects.select_for_update().only("status").get(pk=study.pk)
        changing = [*fields, *(["generators"] if generators is not None else [])]
        if current.status != Study.Status.DRAFT and (not changing or study_settings.fixed_once_open(changing)):
            raise StudyNotDraft(
                f"study {study.slug!r} is {current.status}: its configuration changes only while it is a draft"
            )
        study = _study_save(
            study, generators=None if generators is None else list(generators), fields=fields, created=False,
            # An open study's other columns (its status above all) are the database's, not this copy's.
            only=None if current.status == Study.Status.DRAFT else list(fields),
        )
    if study_settings.REBUILDING & set(fields) and current.status != Study.Status.CLOSED \
            and Trial.objects.filter(study=study).exists():
        # A share raised, or pairs made another way, on built trials: build what they now need.
        study_build_trials(study=study)
    return study



def study_delete(*, study: Study) -> None:
    """Delete a draft study that has no trials yet; anything else is kept for its results."""
    with transaction.atomic():
        current = Study.objects.select_for_update().only("status").get(pk=study.pk)
        if current.status != Study.Status.DRAFT:
            raise StudyNotDraft(f"study {study.slug!r} is {current.status}: only a draft can be deleted")
        if Trial.objects.filter(study=study).exists():
            raise InUse(f"study {study.slug!r} has trials: only a draft without trials can be deleted")
        study.delete()


def _study_save(
    study: Study, *, generators: list[Generator] | None, fields: dict, created: bool, only: list[str] | None = None
) -> Study:
    unknown = set(fields) - set(STUDY_FIELDS)
    if unknown:
        raise TypeError(f"not a study field: {', '.join(sorted(unknown))}")
    for name, value in fields.items():
        setattr(study, name, value)
    _check_study(study, generators)
    _check_head_to_head(study, generators)
    try:
        with transaction.atomic():
            study.save(update_fields=only)
            if generators is not None:
                study.generators.set(generators)
    except IntegrityError:
        if created and Study.objects.filter(slug=study.slug).exists():
            raise NameTaken(f"a study with slug {study.slug!r} already exists", field="slug") from None
        raise
    return study


def _check_head_to_head(study: Study, generators: list[Generator] | None) -> None:
    """The choices, the item filters' syntax, the axis, and anchors among `generators` (the study's own where None)."""
    if not isinstance(study.item_filters, list) or not all(isinstance(f, str) for f in study.item_filters):
        raise StudyInvalid("item filters must be a list of texts such as \"width>=512\"", field="item_filters")
    try:
        parse_filters(study.item_filters)
    except SelectionError as exc:
        raise StudyInvalid(str(exc), field="item_filters") from None
    categories = study.report_categories
    if not isinstance(categories, list) or not all(isinstance(c, str) and c.strip() for c in categories):
        raise StudyInvalid("report categories must be a list of item metadata field names", field="report_categories")
    for setting in study_settings.SETTINGS:
        choices = [value for value, _ in Study._meta.get_field(setting.name).choices or ()]
        if setting.kind == "choice" and getattr(study, setting.name) not in choices:
            raise StudyInvalid(f"{setting.name} must be one of {', '.join(choices)}, not "
                               f"{getattr(study, setting.name)!r}", field=setting.name)
    axis = study.head_to_head_axis or ""
    if axis and axis not in SCALE_AXES and not (axis.startswith(SETTING_AXIS) and len(axis) > len(SETTING_AXIS)):
        raise StudyInvalid(
            f"head-to-head axis {axis!r} is no scale axis: one of {', '.join(SCALE_AXES)}, or settings.<key>",
            field="head_to_head_axis")
    anchors = study.anchor_generators
    if not isinstance(anchors, list) or not all(isinstance(a, int) and not isinstance(a, bool) for a in anchors):
        raise StudyInvalid("anchor generators must be a list of generator ids", field="anchor_generators")
    if anchors:
        members = {g.pk for g in generators} if generators is not None else (
            set(study.generators.values_list("id", flat=True)) if study.pk else set())
        strangers = [a for a in anchors if a not in members]
        if strangers:
            raise StudyInvalid(f"anchor generators {strangers} are not generators of the study",
                               field="anchor_generators")


def _check_study(study: Study, generators: list[Generator] | None) -> None:
    if study.corpus.workspace_id != study.workspace_id:
        raise StudyInvalid(f"corpus {study.corpus.name!r} belongs to another workspace", field="corpus")
    for generator in generators or ():
        if generator.workspace_id != study.workspace_id:
            raise StudyInvalid(f"generator {generator.name!r} belongs to another workspace", field="generators")
    if study.question == Study.Question.CUSTOM and not study.question_text.strip():
        raise StudyInvalid("a custom question needs its text", field="question_text")
    try:
        study.presentation_policy = PresentationPolicy.from_dict(study.presentation_policy).to_dict()
    except (TypeError, ValueError) as exc:
        raise StudyInvalid(f"presentation policy: {exc}", field="presentation_policy") from None
