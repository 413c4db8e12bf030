"""Writes of the annotate domain: building a study's trials, and the assignment engine.

The engine (ARCHITECTURE.md, path 4: Assign and judge) gives an annotator the next
trial that still needs judgments, never the same trial or reference twice, never
more than k judgments per trial, with control trials mixed in.

Why it is race-free
-------------------
- k: `Trial.active_count` counts assignments that are judged or open. It only grows
  through one conditional UPDATE, ``active_count = active_count + 1 WHERE id = %s AND
  active_count < k``. A database applies an UPDATE to the newest committed version of
  the row under its row lock (PostgreSQL re-evaluates the WHERE after waiting; SQLite
  in IMMEDIATE mode has one writer at a time), so no interleaving takes it past k;
  judgments are a subset of the active assignments (a check constraint says so).
- Throughput: on PostgreSQL the candidate row is taken with ``SELECT … FOR UPDATE
  SKIP LOCKED``, so annotators racing for the neediest trials spread out instead of
  queueing on one row.
- One annotator, two requests at once: the annotator's row is locked first
  (``SELECT … FOR UPDATE``, blocking), so one annotator's requests run one after the
  other and the second resumes the first's open assignment. The unique constraints
  (trial, annotator) and (study, annotator, item) are the last line; an
  IntegrityError is retried.
- Expiry: an assignment is released once. Its row is locked (skip locked), checked
  afresh for a judgment after the lock, marked ``released_at``, and only then is its
  trial decremented; trials are decremented in ascending id order, so two expiries
  never deadlock. `judgment_record` locks the same row, so a judgment and a release
  of one assignment cannot both happen.
"""

import random
import secrets
from collections import Counter
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone
from PIL import Image

from annotate.controls import control_name, corrupted_png
from annotate.errors import (
    AssignmentExpired,
    AssignmentNotYours,
    AssignmentUnknown,
    QuotaReached,
    StudyClosed,
    StudyNotReady,
)
from annotate.models import Annotator, Assignment, Judgment, Participation, Side, Study, Trial
from generation.models import Item, Sample

SHUFFLE_RANGE = 2**31 - 1
ISSUE_ATTEMPTS = 5
# Sides are balanced within each annotator by permuted blocks of this size: in any
# prefix of an annotator's assignments, left and right differ by at most half a block.
SIDE_BLOCK = 4
CONTROL_KINDS = (Trial.Kind.CATCH, Trial.Kind.CALIBRATION)

_tie_break = random.SystemRandom()
_sides = secrets.SystemRandom()


# ------------------------------------------------------------------------------
# Studies
# ------------------------------------------------------------------------------
def study_build_trials(*, study: Study, rng_seed: int | None = None) -> int:
    """Create the study's trials; return how many were created.

    One generated trial per (generator, item) that has a sample of that generator,
    using its lowest seed; plus ``round(catch_rate * n)`` catch and
    ``round(calibration_rate * n)`` calibration trials on random items of the corpus
    (n: the corpus's items). Calling it again creates only what is missing: generated
    trials of new generators or samples; control trials only if the study has none.
    """
    if Study.objects.filter(pk=study.pk, status=Study.Status.CLOSED).exists():
        raise StudyClosed(f"study {study.slug!r} is closed: its trials can no longer change")
    rng = random.Random(rng_seed)
    existing = set(
        Trial.objects.filter(study=study, kind=Trial.Kind.GENERATED).values_list(
            "sample__generator_id", "item_id"
        )
    )
    trials = []
    samples = (
        Sample.objects.filter(item__corpus_id=study.corpus_id, generator__in=study.generators.all())
        .order_by("generator_id", "item_id", "seed")
        .only("id", "generator_id", "item_id")
    )
    for sample in samples.iterator():
        pair = (sample.generator_id, sample.item_id)
        if pair in existing:
            continue
        existing.add(pair)
        trials.append(Trial(study=study, kind=Trial.Kind.GENERATED, item_id=sample.item_id, sample_id=sample.id))
    if not Trial.objects.filter(study=study, kind__in=CONTROL_KINDS).exists():
        trials += _control_trials(study, rng)
    for trial in trials:
        trial.shuffle = rng.randrange(SHUFFLE_RANGE)
    with transaction.atomic():
        Trial.objects.bulk_create(trials, batch_size=1000)
    return len(trials)


def _control_trials(study: Study, rng: random.Random) -> list[Trial]:
    items = list(Item.objects.filter(corpus_id=study.corpus_id).order_by("id"))
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


# ------------------------------------------------------------------------------
# Participations
# ------------------------------------------------------------------------------
def participation_enter(
    *, study: Study, annotator: Annotator, prolific_study_id: str = "", prolific_session_id: str = ""
) -> Participation:
    """The annotator's participation in the study, created on first entry.

    Prolific ids that come with the link are stored; a return visit with a new
    SESSION_ID replaces the old one. Ids left out of a link leave the stored ones alone.
    """
    participation, _ = Participation.objects.get_or_create(study=study, annotator=annotator)
    changed = []
    for field, value in (("prolific_study_id", prolific_study_id), ("prolific_session_id", prolific_session_id)):
        if value and value != getattr(participation, field):
            setattr(participation, field, value)
            changed.append(field)
    if changed:
        participation.save(update_fields=changed)
    return participation


def participation_consent(*, study: Study, annotator: Annotator, now: datetime | None = None) -> Participation:
    """Record the annotator's consent; the first consent's time is kept."""
    return _participation_stamp(study, annotator, "consented_at", now)


def participation_finish(*, study: Study, annotator: Annotator, now: datetime | None = None) -> Participation:
    """Record that the annotator has nothing left to judge; the first finish's time is kept."""
    return _participation_stamp(study, annotator, "finished_at", now)


def _participation_stamp(study: Study, annotator: Annotator, field: str, now: datetime | None) -> Participation:
    participation, _ = Participation.objects.get_or_create(study=study, annotator=annotator)
    if getattr(participation, field) is None:
        setattr(participation, field, now or timezone.now())
        participation.save(update_fields=[field])
    return participation


# ------------------------------------------------------------------------------
# Assignments
# ------------------------------------------------------------------------------
def assignment_next(*, study: Study, annotator: Annotator, now: datetime | None = None) -> Assignment | None:
    """The annotator's next assignment in the study, or None when nothing is left for them.

    An open assignment is returned again (a reload does not burn trials). Raises
    `StudyClosed` when the study is not open and `QuotaReached` when the annotator
    has judged or holds as many assignments as the study's quota.
    """
    now = now or timezone.now()
    assignments_expire(now=now, study=study)
    for _ in range(ISSUE_ATTEMPTS):
        try:
            with transaction.atomic():
                return _issue(study, annotator, now)
        except _Contended:
            continue
        except IntegrityError:
            # Only reachable if the annotator lock was bypassed: the unique constraints
            # refused a second assignment of one trial or reference. Look again.
            continue
    return None


class _Contended(Exception):
    """The chosen trial filled up between the pick and the increment; pick again."""


def _issue(study: Study, annotator: Annotator, now: datetime) -> Assignment | None:
    # Serialises the requests of one annotator (two tabs, a double click).
    Annotator.objects.select_for_update().filter(pk=annotator.pk).values_list("pk", flat=True).get()
    current = Study.objects.get(pk=study.pk)
    if current.status != Study.Status.OPEN:
        raise StudyClosed(f"study {current.slug!r} is not open")
    mine = Assignment.objects.filter(study=current, annotator=annotator)
    open_ = mine.filter(released_at__isnull=True, judgment__isnull=True, expires_at__gt=now)
    resumed = open_.order_by("issued_at", "id").first()
    if resumed is not None:
        return resumed
    active = mine.filter(released_at__isnull=True).filter(Q(judgment__isnull=False) | Q(expires_at__gt=now))
    if active.count() >= current.quota_per_annotator:
        raise QuotaReached(f"you have judged the {current.quota_per_annotator} trials this study asks of you")
    trial = _pick_trial(current, annotator, mine)
    if trial is None:
        return None
    claimed = Trial.objects.filter(pk=trial.pk, active_count__lt=current.judgments_per_trial).update(
        active_count=F("active_count") + 1
    )
    if not claimed:
        raise _Contended
    return Assignment.objects.create(
        trial=trial,
        annotator=annotator,
        study=current,
        item_id=trial.item_id,
        reference_side=_draw_side(mine),
        issued_at=now,
        expires_at=now + timedelta(seconds=current.assignment_timeout_seconds),
    )


def _pick_trial(study: Study, annotator: Annotator, mine: QuerySet) -> Trial | None:
    """Lock and return the next trial for the annotator, or None.

    Controls come first with probability catch_rate + calibration_rate. Among the
    rest: fewest active assignments first; among those, the generator the annotator
    has seen least; among those, a random trial.
    """
    # NOT EXISTS over the (study, annotator, item) unique index: no list of the
    # annotator's history travels to Python and back.
    seen = mine.filter(item_id=OuterRef("item_id"))
    candidates = Trial.objects.filter(study=study, active_count__lt=study.judgments_per_trial).filter(~Exists(seen))
    control_first = _tie_break.random() < study.catch_rate + study.calibration_rate
    groups = [CONTROL_KINDS, (Trial.Kind.GENERATED,)]
    for kinds in groups if control_first else groups[::-1]:
        trial = _pick_in(candidates.filter(kind__in=kinds), study, mine, generated=kinds[0] == Trial.Kind.GENERATED)
        if trial is not None:
            return trial
    return None


def _pick_in(candidates: QuerySet, study: Study, mine: QuerySet, *, generated: bool) -> Trial | None:
    level = candidates.order_by("active_count").values_list("active_count", flat=True).first()
    if level is None:
        return None
    tier = candidates.filter(active_count=level)
    if generated:
        seen = Counter(mine.filter(trial__sample__isnull=False).values_list("trial__sample__generator_id", flat=True))
        generators = list(study.generators.values_list("id", flat=True))
        generators.sort(key=lambda g: (seen[g], _tie_break.random()))
        parts = [tier.filter(sample__generator_id=g) for g in generators]
    else:
        parts = [tier]
    for part in parts:
        pivot = _tie_break.randrange(SHUFFLE_RANGE)
        for half in (part.filter(shuffle__gte=pivot), part.filter(shuffle__lt=pivot)):
            trial = _first_unlocked(half.order_by("shuffle", "id"))
            if trial is not None:
                return trial
    # Every trial of the neediest tier is being claimed by someone else right now.
    return _first_unlocked(candidates.order_by("active_count", "shuffle", "id"))


def _first_unlocked(queryset: QuerySet) -> Trial | None:
    if connection.features.has_select_for_update_skip_locked:
        queryset = queryset.select_for_update(skip_locked=True, of=("self",))
    return queryset.only("id", "item_id", "kind", "sample_id").first()


def _draw_side(mine: QuerySet) -> str:
    """The reference's side, from a random permutation of a balanced block."""
    issued = mine.count()
    placed = list(mine.order_by("-id").values_list("reference_side", flat=True)[: issued % SIDE_BLOCK])
    left_needed = SIDE_BLOCK // 2 - placed.count(Side.LEFT)
    slots = SIDE_BLOCK - len(placed)
    return Side.LEFT if _sides.randrange(slots) < left_needed else Side.RIGHT


def assignments_expire(*, now: datetime | None = None, study: Study | None = None) -> int:
    """Release expired, unjudged assignments (of one study, or all); return how many.

    Each release gives its trial's slot back to the pool exactly once; the row stays.
    """
    now = now or timezone.now()
    with transaction.atomic():
        expired = Assignment.objects.filter(released_at__isnull=True, expires_at__lte=now, judgment__isnull=True)
        if study is not None:
            expired = expired.filter(study=study)
        if connection.features.has_select_for_update_skip_locked:
            expired = expired.select_for_update(skip_locked=True, of=("self",))
        locked = list(expired.values_list("id", "trial_id"))
        if not locked:
            return 0
        # A fresh statement after the lock: a judgment committed while this waited counts.
        judged = set(Judgment.objects.filter(assignment_id__in=[a for a, _ in locked]).values_list("assignment_id", flat=True))
        released = [(a, t) for a, t in locked if a not in judged]
        Assignment.objects.filter(pk__in=[a for a, _ in released]).update(released_at=now)
        for trial_id, n in sorted(Counter(t for _, t in released).items()):
            Trial.objects.filter(pk=trial_id).update(active_count=F("active_count") - n)
    return len(released)


# ------------------------------------------------------------------------------
# Judgments
# ------------------------------------------------------------------------------
def judgment_record(
    *,
    assignment_token,
    annotator: Annotator,
    choice: str,
    client_response_ms: int | None = None,
    now: datetime | None = None,
) -> Judgment:
    """Record the annotator's choice on their assignment; a repeat returns the first judgment."""
    if choice not in Side.values:
        raise ValueError(f"choice must be 'left' or 'right', not {choice!r}")
    now = now or timezone.now()
    for _ in range(2):
        try:
            with transaction.atomic():
                return _record(assignment_token, annotator, choice, client_response_ms, now)
        except IntegrityError:
            continue  # a concurrent duplicate submit won: the next pass returns its judgment
    raise AssignmentUnknown("the judgment could not be recorded; please submit again")


def _record(token, annotator: Annotator, choice: str, client_response_ms: int | None, now: datetime) -> Judgment:
    try:
        assignment = Assignment.objects.select_for_update(of=("self",)).get(token=token)
    except (Assignment.DoesNotExist, ValidationError, ValueError):
        # ValidationError: the token is not even a UUID.
        raise AssignmentUnknown("this assignment does not exist") from None
    if assignment.annotator_id != annotator.pk:
        raise AssignmentNotYours("this assignment was issued to someone else")
    existing = Judgment.objects.filter(assignment=assignment).first()
    if existing is not None:
        return existing
    if assignment.released_at is not None or now >= assignment.expires_at:
        raise AssignmentExpired(
            "this assignment expired before it was answered; ask for the next one to continue"
        )
    judgment = Judgment.objects.create(
        assignment=assignment,
        choice=choice,
        client_response_ms=client_response_ms,
        server_response_ms=max(0, round((now - assignment.issued_at).total_seconds() * 1000)),
    )
    Trial.objects.filter(pk=assignment.trial_id).update(judgment_count=F("judgment_count") + 1)
    return judgment
