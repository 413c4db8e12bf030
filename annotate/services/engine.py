"""The assignment engine: issuing assignments, recording judgments, expiring the abandoned.

It (ARCHITECTURE.md, path 4: Assign and judge) gives an annotator the next
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
size; on PostgreSQL each is prepared once per connection (`annotate.db.prepared_cursor`).
"""

import random
import secrets
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta

from django.db import (
    DEFAULT_DB_ALIAS,
    IntegrityError,
    connection,
    connections,
    transaction,
)
from django.db.models import F
from django.utils import timezone

from annotate.db import prepared_cursor as _cursor
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
from generation.models import Item

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
    issued = _open_assignments(study, annotator, now, limit=want)
    if not issued and participation.judged >= study.quota_per_annotator:
        raise QuotaReached(f"you have judged the {study.quota_per_annotator} trials this study asks of you")
    fresh = False
    while len(issued) < want and participation.judged + len(issued) < study.quota_per_annotator:
        trial = _pick_trial(study, annotator, participation)
        if trial is None:
            break
        claimed = _write(
            f"UPDATE {_T} SET active_count = active_count + 1 WHERE id = %s AND active_count < %s",
            [trial.pk, study.judgments_per_trial],
        )
        if not claimed:
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
        _insert(assignment)
        if trial.generator_id is not None:
            counts = participation.issued_per_generator
            counts[str(trial.generator_id)] = counts.get(str(trial.generator_id), 0) + 1
        issued.append(assignment)
        fresh = True
    if fresh:
        counts = Participation._meta.get_field("issued_per_generator").get_db_prep_save(
            participation.issued_per_generator, connection
        )
        _write(
            f"UPDATE {_P} SET issued = %s, pending_sides = %s, issued_per_generator = %s WHERE id = %s",
            [participation.issued, participation.pending_sides, counts, participation.pk],
        )
    current = issued[0] if issued else None
    if current is not None and current.shown_at is None:
        current.shown_at = now
        shown_at = connection.ops.adapt_datetimefield_value(now)
        _write(f"UPDATE {_A} SET shown_at = %s WHERE id = %s", [shown_at, current.pk])
    return issued


def _lock_participation(study: Study, annotator: Annotator) -> Participation:
    lock = "FOR UPDATE" if connection.features.has_select_for_update else ""
    sql = f"SELECT {', '.join(_RUNNING_STATE)} FROM {_P} WHERE study_id = %s AND annotator_id = %s {lock}"
    rows = _rows(sql, [study.pk, annotator.pk])
    if not rows:
        # An annotator driven by code rather than the pages (the API, tests) may not have
        # entered; a concurrent create raises IntegrityError and the caller retries.
        Participation.objects.create(study=study, annotator=annotator)
        rows = _rows(sql, [study.pk, annotator.pk])
    return _running_state(rows[0])


def _running_state(row: tuple) -> Participation:
    pk, issued, judged, counts, pending_sides = row
    counts = Participation._meta.get_field("issued_per_generator").from_db_value(counts, None, connection)
    return Participation.from_db(connection.alias, _RUNNING_STATE, [pk, issued, judged, counts, pending_sides])


# The engine's statements on the hot path are written out in SQL: building them with
# the ORM cost more CPU than running them (bench/annotate_load.py --profile). They are
# plain SQL that PostgreSQL and SQLite both run; only the row lock differs.
_T, _A, _I, _J, _P = (m._meta.db_table for m in (Trial, Assignment, Item, Judgment, Participation))
# Not seen by the annotator: one probe of the (study, annotator, item) unique index
# per candidate, as the pick index is walked in order.
_UNSEEN = f"NOT EXISTS (SELECT 1 FROM {_A} a WHERE a.study_id = t.study_id AND a.annotator_id = %s AND a.item_id = t.item_id)"
# The columns the engine reads: an assignment's, a picked trial's, the participation's
# running state.
_ASSIGNMENT = [f.attname for f in Assignment._meta.concrete_fields]
_ASSIGNMENT_COLUMNS = ", ".join(f"s.{f.column}" for f in Assignment._meta.concrete_fields)
_PICKED = ["id", "kind", "item_id", "sample_id", "generator_id"]
_RUNNING_STATE = ["id", "issued", "judged", "issued_per_generator", "pending_sides"]


# What a row needs from other tables is read by scalar subqueries rather than joins:
# the planner takes a fraction of the time over them, and planning was most of the
# cost of these short statements.
def _caption_of(alias: str) -> str:
    """The caption of the item of the row `alias` (an assignment or a trial)."""
    return f"(SELECT i.caption FROM {_I} i WHERE i.id = {alias}.item_id)"


def _db():
    # `connection` looks the connection up again on each attribute, which the helpers
    # below, run for every statement, would pay a dozen times over.
    return connections[DEFAULT_DB_ALIAS]


def _rows(sql: str, params: list) -> list[tuple]:
    with _cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _write(sql: str, params: list) -> int:
    """Run an INSERT, UPDATE or DELETE; the number of rows it touched."""
    with _cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _instances(model, attnames: list[str], rows: list[tuple]) -> list[tuple]:
    """(instance of `model`, the rest of the row) for rows whose leading columns are `attnames`.

    The values go through the database's converters, as in a queryset: SQLite, for
    one, returns naive datetimes and UUIDs as text.
    """
    db = _db()
    fields = [model._meta.get_field(name) for name in attnames]
    converters = [
        (i, field.cached_col, convert)
        for i, field in enumerate(fields)
        for convert in (*db.ops.get_db_converters(field.cached_col), *field.get_db_converters(db))
    ]
    loaded = []
    for row in rows:
        values = list(row[: len(fields)])
        for i, column, convert in converters:
            values[i] = convert(values[i], column, db)
        loaded.append((model.from_db(db.alias, attnames, values), row[len(fields) :]))
    return loaded


def _insert(instance) -> None:
    """Insert a new model instance and set its primary key, as `save()` would.

    The engine's models have no save signals, and the judgment's append-only guard
    only refuses saves of a row that exists.
    """
    db = _db()
    meta = instance._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    columns = ", ".join(db.ops.quote_name(f.column) for f in fields)
    values = [f.get_db_prep_save(f.pre_save(instance, True), db) for f in fields]
    (pk,), = _rows(
        f"INSERT INTO {meta.db_table} ({columns}) VALUES ({', '.join(['%s'] * len(fields))}) "
        f"RETURNING {db.ops.quote_name(meta.pk.column)}",
        values,
    )
    instance.pk = pk
    instance._state.adding = False
    instance._state.db = db.alias


def _open_assignments(study: Study, annotator: Annotator, now: datetime, *, limit: int) -> list[Assignment]:
    """The annotator's open study assignments, oldest first, each with its item's caption."""
    rows = _rows(
        f"""SELECT {_ASSIGNMENT_COLUMNS}, {_caption_of('s')} FROM {_A} s
            WHERE s.study_id = %s AND s.annotator_id = %s AND s.released_at IS NULL AND s.expires_at > %s
              AND NOT EXISTS (SELECT 1 FROM {_J} j WHERE j.assignment_id = s.id)
              AND NOT EXISTS (SELECT 1 FROM {_T} t WHERE t.id = s.trial_id AND t.kind = %s)
            ORDER BY s.issued_at, s.id LIMIT %s""",
        [study.pk, annotator.pk, connection.ops.adapt_datetimefield_value(now), Trial.Kind.PRACTICE, limit],
    )
    issued = []
    for assignment, (caption,) in _instances(Assignment, _ASSIGNMENT, rows):
        assignment.item = Item.from_db(connection.alias, ["id", "caption"], [assignment.item_id, caption])
        issued.append(assignment)
    return issued


def _pick_trial(study: Study, annotator: Annotator, participation: Participation) -> Trial | None:
    """Lock and return the next trial for the annotator, or None.

    A catch trial comes first with probability catch_rate, a calibration trial with
    probability calibration_rate, else a generated one; an empty kind falls through
    to the others. Within a kind: fewest active assignments first; among generated
    trials, then the generator the annotator has been issued least; then the trial's
    random key.
    """
    draw = _tie_break.random()
    if draw < study.catch_rate:
        order = [Trial.Kind.CATCH, Trial.Kind.CALIBRATION, Trial.Kind.GENERATED]
    elif draw < study.catch_rate + study.calibration_rate:
        order = [Trial.Kind.CALIBRATION, Trial.Kind.CATCH, Trial.Kind.GENERATED]
    else:
        order = [Trial.Kind.GENERATED, *(CONTROL_KINDS if draw < 0.5 else CONTROL_KINDS[::-1])]
    for kind in order:
        if kind == Trial.Kind.GENERATED:
            trial = _pick_generated(study, annotator, participation)
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
    # Generators whose interval is already narrow enough (analysis writes the list) are skipped.
    done = set(study.generators_done or ())
    tops = _neediest_per_generator(study, annotator, [int(g) for g in counts if int(g) not in done])
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
    return _first_unlocked(study, annotator, kind=Trial.Kind.GENERATED, generator_id=ANY_GENERATOR)


def _neediest_per_generator(study: Study, annotator: Annotator, generator_ids: list[int]) -> list[tuple[int, int]]:
    """(generator id, fewest active assignments) of every generator with a candidate left."""
    if not generator_ids:
        return []
    # One round trip: per generator, a walk of the pick index that stops at the first
    # unseen candidate.
    values = ", ".join(["(%s)"] * len(generator_ids))
    rows = _rows(
        f"""SELECT g.column1, (SELECT t.active_count FROM {_T} t
                WHERE t.study_id = %s AND t.kind = %s AND t.generator_id = g.column1
                  AND t.active_count < %s AND {_UNSEEN}
                ORDER BY t.active_count, t.shuffle LIMIT 1)
            FROM (VALUES {values}) AS g""",
        [study.pk, Trial.Kind.GENERATED, study.judgments_per_trial, annotator.pk, *generator_ids],
    )
    return [(g, level) for g, level in rows if level is not None]


ANY_GENERATOR = -1


def _first_unlocked(
    study: Study, annotator: Annotator, *, kind: str, generator_id: int | None = None, level: int | None = None
) -> Trial | None:
    """The first candidate of the kind (and generator, and level) in pick order, locked; skips locked rows."""
    params: list = [study.pk, kind]
    order = "t.active_count, t.shuffle"
    if generator_id is None:
        generator = "t.generator_id IS NULL"
        # The same order for rows whose generator is NULL; but IS NULL is no equality to
        # the planner, so without it PostgreSQL sorts every control trial of the kind
        # instead of walking the pick index.
        order = f"t.generator_id, {order}"
    elif generator_id == ANY_GENERATOR:
        generator = "t.generator_id IS NOT NULL"
    else:
        generator, params = "t.generator_id = %s", [*params, generator_id]
    if level is None:
        need, params = "t.active_count < %s", [*params, study.judgments_per_trial]
    else:
        need, params = "t.active_count = %s", [*params, level]
    lock = "FOR UPDATE OF t SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    rows = _rows(
        f"""SELECT t.id, t.kind, t.item_id, t.sample_id, t.generator_id, {_caption_of('t')}
            FROM {_T} t
            WHERE t.study_id = %s AND t.kind = %s AND {generator} AND {need} AND {_UNSEEN}
            ORDER BY {order} LIMIT 1 {lock}""",
        [*params, annotator.pk],
    )
    if not rows:
        return None
    *fields, caption = rows[0]
    trial = Trial.from_db(connection.alias, _PICKED, fields)
    trial.item = Item.from_db(connection.alias, ["id", "caption"], [trial.item_id, caption])
    return trial


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
        if connection.features.has_select_for_update_skip_locked:
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
        token_value = Assignment._meta.get_field("token").get_db_prep_value(uuid.UUID(str(token)), connection)
    except ValueError:
        raise AssignmentUnknown("this assignment does not exist") from None
    lock = "FOR UPDATE" if connection.features.has_select_for_update else ""
    # One round trip: the assignment (locked), its trial's kind, its judgment if any,
    # and the annotator's count of judgments so far.
    rows = _rows(
        f"""SELECT {_ASSIGNMENT_COLUMNS},
                   (SELECT t.kind FROM {_T} t WHERE t.id = s.trial_id),
                   (SELECT j.id FROM {_J} j WHERE j.assignment_id = s.id),
                   (SELECT p.judged FROM {_P} p WHERE p.study_id = s.study_id AND p.annotator_id = s.annotator_id)
            FROM {_A} s WHERE s.token = %s {lock}""",
        [token_value],
    )
    if not rows:
        raise AssignmentUnknown("this assignment does not exist")
    [(assignment, (trial_kind, judgment_id, judged_before))] = _instances(Assignment, _ASSIGNMENT, rows)
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
    _insert(judgment)
    _write(f"UPDATE {_T} SET judgment_count = judgment_count + 1 WHERE id = %s", [assignment.trial_id])
    judgment.annotator_judged = None
    if practice:
        return judgment, None
    rows = _rows(
        f"UPDATE {_P} SET judged = judged + 1 WHERE study_id = %s AND annotator_id = %s "
        f"RETURNING {', '.join(_RUNNING_STATE)}",
        [assignment.study_id, annotator.pk],
    )
    # Under the assignment's lock, not the participation's: exact unless the same
    # annotator answers two assignments at the same instant, and only shown as progress.
    judgment.annotator_judged = (judged_before or 0) + 1
    # The UPDATE holds the participation's lock from here on, as `_lock_participation` would.
    return judgment, _running_state(rows[0]) if rows else None
