"""The assignment engine: issuing assignments, recording judgments, expiring the abandoned.

It (ARCHITECTURE.md, path 4: Assign and judge) gives an annotator the next
trial that still needs judgments, never the same trial or reference twice, never
more than k judgments per trial, with control trials and head-to-head trials (two
generators' samples of one prompt, `head_to_head`) mixed in.

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
- One annotator, two requests at once: the annotator's participation row is locked
  first (``SELECT … FOR UPDATE``, blocking), so one annotator's requests run one
  after the other and the second resumes the first's open assignment. The unique
  constraints (trial, annotator) and (study, annotator, item) are the last line; an
  IntegrityError is retried.
- Expiry: an assignment is released once. Its row is locked (skip locked), checked
  afresh for a judgment after the lock, marked ``released_at``, and only then is its
  trial decremented; trials are decremented in ascending id order, so two expiries
  never deadlock. `judgment_record` locks the same row, so a judgment and a release
  of one assignment cannot both happen.

Why it is fast
--------------
A pick reads one locked row for the annotator's running state (issued, judged, per
generator, side block: `Participation`), never their history; the trials that still
need judgments are walked in the order of one index (study, kind, generator,
active_count, shuffle), probing the annotator's (study, annotator, item) index per
candidate. A page's submit (`judgment_record_and_next`: record a judgment, issue the
next trial) is one transaction of about a dozen short statements whatever the study's
size. Those statements are written out in SQL in `annotate.db`, the one module that
reaches into Django's internals; on PostgreSQL each is prepared once per connection.
"""

import random
import secrets
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from annotate import db
from annotate.errors import (
    AssignmentExpired,
    AssignmentNotYours,
    AssignmentUnknown,
    QuotaReached,
    StudyClosed,
)
from annotate.models import (
    CONTROL_KINDS,
    Annotator,
    Assignment,
    Judgment,
    Participation,
    Side,
    Study,
    Trial,
)
from annotate.selectors import break_due

ISSUE_ATTEMPTS = 5
# Sides are balanced within each annotator by permuted blocks of one of these sizes,
# drawn per block: in any prefix of an annotator's assignments, left and right differ
# by at most half the largest.
SIDE_BLOCK_SIZES = (4, 6, 8)
# How many assignments between two reads of the study's generator list per annotator.
GENERATORS_REFRESH_EVERY = 50

_tie_break = random.SystemRandom()
_sides = secrets.SystemRandom()


def assignment_next(*, study: Study, annotator: Annotator, now: datetime | None = None) -> Assignment | None:
    """The annotator's current assignment in the study, or None when nothing is left for them.

    An open assignment is returned again (a reload does not burn trials). Raises
    `StudyClosed` when the study is not open and `QuotaReached` when the annotator
    has judged or holds as many assignments as the study's quota.
    """
    issued = assignments_next(study=study, annotator=annotator, now=now, ahead=0)
    return issued[0] if issued else None


def assignments_next(
    *, study: Study, annotator: Annotator, now: datetime | None = None, ahead: int = 1
) -> list[Assignment]:
    """The annotator's current assignment and up to `ahead` upcoming ones, issued in order.

    The upcoming ones let a page preload the next trial's images; each is an ordinary
    open assignment that becomes current when the one before it is answered. The
    first is stamped as shown (its response time runs from now). An empty list: nothing
    is left for the annotator. `study` is the caller's copy: a study closed a moment
    ago may issue one more round.
    """
    if study.status != Study.Status.OPEN:
        raise StudyClosed(f"study {study.slug!r} is not open")
    now = _swept(study, now)
    for _ in range(ISSUE_ATTEMPTS):
        try:
            with transaction.atomic():
                return _issue(study, annotator, now, want=1 + ahead)
        except _Contended:
            continue
        except IntegrityError:
            # Only reachable if the participation lock was bypassed: the unique
            # constraints refused a second assignment of one trial or reference.
            continue
    return []


# Expired assignments are swept inside `assignments_next`, but at most this often per
# process and study: the sweep is a write, and an expired assignment only holds one
# slot of one trial a few seconds longer.
SWEEP_EVERY_S = 5.0
_last_sweep: dict[int, float] = {}


def _swept(study: Study, now: datetime | None) -> datetime:
    """`now` (the clock when None), after releasing the study's expired assignments
    when a sweep is due; a caller that passes its own `now` always sweeps at it."""
    explicit = now is not None
    now = now or timezone.now()
    if explicit or _sweep_due(study.pk):
        assignments_expire(now=now, study=study)
    return now


def _sweep_due(study_id: int) -> bool:
    clock = time.monotonic()
    if clock - _last_sweep.get(study_id, -SWEEP_EVERY_S) < SWEEP_EVERY_S:
        return False
    _last_sweep[study_id] = clock
    return True


class _Contended(Exception):
    """The chosen trial filled up between the pick and the increment; pick again."""


def _issue(
    study: Study, annotator: Annotator, now: datetime, *, want: int, participation: Participation | None = None
) -> list[Assignment]:
    # Locking the participation serialises the requests of one annotator (two tabs, a
    # double click) and hands over their running counts in the same round trip. A
    # caller that already holds the lock passes the row.
    participation = participation or _lock_participation(study, annotator)
    issued = db.assignments_open(study_id=study.pk, annotator_id=annotator.pk, now=now, limit=want)
    if not issued and participation.judged >= study.quota_per_annotator:
        raise QuotaReached(f"you have judged the {study.quota_per_annotator} trials this study asks of you")
    fresh = False
    while len(issued) < want and participation.judged + len(issued) < study.quota_per_annotator:
        trial = _pick_trial(study, annotator, participation)
        if trial is None:
            break
        if not db.trial_claim(trial_id=trial.pk, judgments_per_trial=study.judgments_per_trial):
            raise _Contended
        # Inserted at once: the next pick of this loop must see it as seen.
        assignment = Assignment(
            trial=trial,
            annotator=annotator,
            study=study,
            item=trial.item,
            reference_side=_draw_side(participation),
            issued_at=now,
            # Only the one shown now has been shown; an upcoming one is stamped when it is.
            shown_at=None if issued else now,
            expires_at=now + timedelta(seconds=study.assignment_timeout_seconds),
        )
        db.assignment_insert(assignment=assignment)
        if trial.kind == Trial.Kind.GENERATED:
            counts = participation.issued_per_generator
            counts[str(trial.generator_id)] = counts.get(str(trial.generator_id), 0) + 1
        issued.append(assignment)
        fresh = True
    if fresh:
        db.participation_save(participation=participation)
    current = issued[0] if issued else None
    if current is not None and current.shown_at is None:
        current.shown_at = now
        db.assignment_mark_shown(assignment_id=current.pk, now=now)
    return issued


def _lock_participation(study: Study, annotator: Annotator) -> Participation:
    participation = db.participation_lock(study_id=study.pk, annotator_id=annotator.pk)
    if participation is None:
        # An annotator driven by code rather than the pages (the API, tests) may not have
        # entered; a concurrent create raises IntegrityError and the caller retries.
        Participation.objects.create(study=study, annotator=annotator)
        participation = db.participation_lock(study_id=study.pk, annotator_id=annotator.pk)
    return participation


def _pick_trial(study: Study, annotator: Annotator, participation: Participation) -> Trial | None:
    """Lock and return the next trial for the annotator, or None.

    A catch trial comes first with probability catch_rate, a calibration trial with
    probability calibration_rate, else a head-to-head one with probability
    head_to_head_share of the rest, else a generated one; an empty kind falls through
    to the others. Within a kind: fewest active assignments first; among generated
    trials, then the generator the annotator has been issued least (anchors take
    anchor_share of these picks); then the trial's random key.
    """
    draw = _tie_break.random()
    controls = study.catch_rate + study.calibration_rate
    judged = [Trial.Kind.GENERATED]
    if study.head_to_head_share > 0:
        # Of what the controls leave, head_to_head_share goes to head-to-head trials.
        rest = (draw - controls) / (1 - controls) if controls < 1 else 1.0
        judged = [Trial.Kind.HEAD_TO_HEAD, *judged] if 0 <= rest < study.head_to_head_share else [
            *judged, Trial.Kind.HEAD_TO_HEAD]
    if draw < study.catch_rate:
        order = [Trial.Kind.CATCH, Trial.Kind.CALIBRATION, *judged]
    elif draw < controls:
        order = [Trial.Kind.CALIBRATION, Trial.Kind.CATCH, *judged]
    else:
        order = [*judged, *(CONTROL_KINDS if draw < 0.5 else CONTROL_KINDS[::-1])]
    for kind in order:
        if kind == Trial.Kind.GENERATED:
            trial = _pick_generated(study, annotator, participation)
        elif kind == Trial.Kind.HEAD_TO_HEAD:
            trial = _pick_head_to_head(study, annotator)
        else:
            trial = _first_unlocked(study, annotator, kind=kind)
        if trial is not None:
            return trial
    return None


def _pick_generated(study: Study, annotator: Annotator, participation: Participation) -> Trial | None:
    """One survey of each generator's neediest candidate, then a locked pick in the winner's tier."""
    counts = participation.issued_per_generator
    if not counts or participation.issued % GENERATORS_REFRESH_EVERY == 0:
        # The study's generators, read on an annotator's first pick and now and then
        # after, so that one added to a running study joins the rotation.
        for generator_id in study.generators.values_list("id", flat=True):
            counts.setdefault(str(generator_id), 0)
    # Generators whose interval is already narrow enough (analysis writes the list) are
    # skipped, but for anchors, and so are those removed from the study (their trials stay).
    removed = study.removed_generator_ids()
    anchors = {int(a) for a in study.anchor_generators or ()} - removed
    done = (set(study.generators_done or ()) - anchors) | removed
    candidates = [int(g) for g in counts if int(g) not in done]
    tops = []
    if anchors and study.anchor_share > 0:
        # anchor_share of these picks go to the anchors, the rest to the others, so that
        # the anchors keep their share for the study's whole life; either falls back on the other.
        first = _tie_break.random() < study.anchor_share
        for anchored in (first, not first):
            tops = _neediest(study, annotator, [g for g in candidates if (g in anchors) == anchored])
            if tops:
                break
    else:
        tops = _neediest(study, annotator, candidates)
    if not tops:
        return None
    ranked = sorted(tops, key=lambda row: (row[1], counts.get(str(row[0]), 0), _tie_break.random()))
    for generator_id, level in ranked:
        trial = _first_unlocked(study, annotator, kind=Trial.Kind.GENERATED, generator_id=generator_id, level=level)
        if trial is not None:
            return trial
    # Every surveyed tier is being claimed by others right now: any candidate will do.
    if done:
        for generator_id, _ in ranked:
            trial = _first_unlocked(study, annotator, kind=Trial.Kind.GENERATED, generator_id=generator_id)
            if trial is not None:
                return trial
        return None
    return _first_unlocked(study, annotator, kind=Trial.Kind.GENERATED, generator_id=db.ANY_GENERATOR)


def _neediest(study: Study, annotator: Annotator, generator_ids: list[int]) -> list[tuple[int, int]]:
    return db.trials_neediest_per_generator(
        study_id=study.pk,
        annotator_id=annotator.pk,
        generator_ids=generator_ids,
        judgments_per_trial=study.judgments_per_trial,
    )


def _pick_head_to_head(study: Study, annotator: Annotator) -> Trial | None:
    """The neediest head-to-head trial of a served pair (`Study.head_to_head_active`), locked."""
    removed = study.removed_generator_ids()
    pairs = [(int(a), int(b)) for a, b in study.head_to_head_active or () if a not in removed and b not in removed]
    if not pairs:
        return None
    tops = db.pairs_neediest(study_id=study.pk, annotator_id=annotator.pk, pairs=pairs,
                             judgments_per_trial=study.judgments_per_trial)
    ranked = sorted(tops, key=lambda row: (row[2], _tie_break.random()))
    for level in (True, False):
        for a, b, need in ranked:
            trial = db.pair_first_unlocked(study_id=study.pk, annotator_id=annotator.pk, pair=(a, b),
                                           judgments_per_trial=study.judgments_per_trial,
                                           level=need if level else None)
            if trial is not None:
                return trial
    return None


def _first_unlocked(
    study: Study, annotator: Annotator, *, kind: str, generator_id: int | None = None, level: int | None = None
) -> Trial | None:
    """The first candidate of the kind (and generator, and level) in pick order, locked; skips locked rows."""
    return db.trial_first_unlocked(
        study_id=study.pk,
        annotator_id=annotator.pk,
        kind=kind,
        judgments_per_trial=study.judgments_per_trial,
        generator_id=generator_id,
        level=level,
    )


def _draw_side(participation: Participation) -> str:
    """The reference's side: the next of the annotator's current block, a fresh block when it is used up.

    A block is a shuffled sequence with as many lefts as rights, so in any prefix of an
    annotator's assignments the sides differ by at most half a block. Its size is drawn
    per block, so that someone counting trials cannot tell where a block ends and
    infer its last sides from the first ones.
    """
    if not participation.pending_sides:
        half = _sides.choice(SIDE_BLOCK_SIZES) // 2
        block = ["l"] * half + ["r"] * half
        _sides.shuffle(block)
        participation.pending_sides = "".join(block)
    side, participation.pending_sides = participation.pending_sides[0], participation.pending_sides[1:]
    participation.issued += 1
    return Side.LEFT if side == "l" else Side.RIGHT


def assignments_expire(*, now: datetime | None = None, study: Study | None = None) -> int:
    """Release expired, unjudged assignments (of one study, or all); return how many.

    Each release gives its trial's slot back to the pool exactly once; the row stays.
    """
    now = now or timezone.now()
    expired = Assignment.objects.filter(released_at__isnull=True, expires_at__lte=now, judgment__isnull=True)
    if study is not None:
        expired = expired.filter(study=study)
    return _release(expired, now)


def assignments_release(*, study: Study, annotator: Annotator, now: datetime | None = None) -> int:
    """Release the annotator's open, unjudged assignments in the study now; return how many.

    For a visitor known not to answer (the browser of `manage.py screenshots`): their
    trials go back to the pool at once instead of at expiry, exactly as expiry would
    release them. The rows stay, so this annotator never gets those trials again.
    """
    now = now or timezone.now()
    mine = Assignment.objects.filter(study=study, annotator=annotator, released_at__isnull=True,
                                     judgment__isnull=True)
    return _release(mine, now)


def _release(unjudged, now: datetime) -> int:
    """Mark the assignments of `unjudged` released and give each trial its slots back."""
    with transaction.atomic():
        if db.skip_locked():
            unjudged = unjudged.select_for_update(skip_locked=True, of=("self",))
        locked = list(unjudged.values_list("id", "trial_id"))
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
    """Record the annotator's choice on their assignment; a repeat returns the first judgment.

    The judgment carries ``annotator_judged``: the annotator's study judgments so far,
    this one included (None for a practice trial), for the page's progress.
    """
    if choice not in Side.values:
        raise ValueError(f"choice must be 'left' or 'right', not {choice!r}")
    now = now or timezone.now()
    for _ in range(2):
        try:
            with transaction.atomic():
                return _record(assignment_token, annotator, choice, client_response_ms, now)[0]
        except IntegrityError:
            continue  # a concurrent duplicate submit won: the next pass returns its judgment
    raise AssignmentUnknown("the judgment could not be recorded; please submit again")


def judgment_record_and_next(
    *,
    assignment_token,
    study: Study,
    annotator: Annotator,
    choice: str,
    client_response_ms: int | None = None,
    now: datetime | None = None,
) -> tuple[Judgment, list[Assignment] | None]:
    """`judgment_record`, then `assignments_next` with one ahead, in one transaction:
    what a page's submit does, in three round trips to the database fewer than the two
    calls (one BEGIN and COMMIT, and the participation is read where the judgment
    counts it).

    The assignments are None where the caller decides what comes next: the judgment
    was on a practice trial, a break is due after it (the next trial is issued on
    Continue, so that no timeout runs during the break), or the study is not open. An
    empty list: nothing is left for the annotator, the quota included. Errors of the
    judgment raise as from `judgment_record`, and nothing is written.
    """
    if choice not in Side.values:
        raise ValueError(f"choice must be 'left' or 'right', not {choice!r}")
    if study.status != Study.Status.OPEN:
        return judgment_record(assignment_token=assignment_token, annotator=annotator, choice=choice,
                               client_response_ms=client_response_ms, now=now), None
    now = _swept(study, now)
    for _ in range(ISSUE_ATTEMPTS):
        try:
            with transaction.atomic():
                judgment, participation = _record(assignment_token, annotator, choice, client_response_ms, now)
                judged = judgment.annotator_judged
                if judged is None or break_due(study=study, judged=judged):
                    return judgment, None
                # None ahead when a break comes after the next trial: see `trial` in views.
                ahead = 0 if break_due(study=study, judged=judged + 1) else 1
                try:
                    return judgment, _issue(study, annotator, now, want=1 + ahead, participation=participation)
                except QuotaReached:
                    return judgment, []
        except (_Contended, IntegrityError):
            # Both roll the judgment back with the rest: the next pass records it again,
            # or returns the one a concurrent duplicate submit recorded.
            continue
    raise AssignmentUnknown("the judgment could not be recorded; please submit again")


def _record(
    token, annotator: Annotator, choice: str, client_response_ms: int | None, now: datetime
) -> tuple[Judgment, Participation | None]:
    """The judgment, and the participation's running state, locked, when this call counted it."""
    try:
        token = uuid.UUID(str(token))
    except ValueError:
        raise AssignmentUnknown("this assignment does not exist") from None
    locked = db.assignment_lock_by_token(token=token)
    if locked is None:
        raise AssignmentUnknown("this assignment does not exist")
    assignment, trial_kind, judgment_id, judged_before = locked
    if assignment.annotator_id != annotator.pk:
        raise AssignmentNotYours("this assignment was issued to someone else")
    practice = trial_kind == Trial.Kind.PRACTICE
    if judgment_id is not None:
        judgment = Judgment.objects.get(pk=judgment_id)
        judgment.annotator_judged = None if practice else judged_before
        return judgment, None
    if assignment.released_at is not None or now >= assignment.expires_at:
        raise AssignmentExpired(
            "this assignment expired before it was answered; ask for the next one to continue"
        )
    shown_at = assignment.shown_at or assignment.issued_at
    judgment = Judgment(
        assignment=assignment,
        choice=choice,
        client_response_ms=client_response_ms,
        server_response_ms=max(0, round((now - shown_at).total_seconds() * 1000)),
    )
    db.judgment_insert(judgment=judgment)
    db.trial_count_judgment(trial_id=assignment.trial_id)
    judgment.annotator_judged = None
    if practice:
        return judgment, None
    participation = db.participation_count_judgment(study_id=assignment.study_id, annotator_id=annotator.pk)
    # Under the assignment's lock, not the participation's: exact unless the same
    # annotator answers two assignments at the same instant, and only shown as progress.
    judgment.annotator_judged = (judged_before or 0) + 1
    # Counting it locked the participation, as `_lock_participation` would.
    return judgment, participation
