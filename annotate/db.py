"""The annotate app's SQL fence: the statements it writes out in SQL, and every Django
internal that they lean on, in this one module.

The few statements that every annotator's request runs (the session read, the study
read, the assignment engine's) are written out in SQL: building them with the ORM cost
more CPU than running them (bench/annotate_load.py --profile). They are plain SQL that
PostgreSQL and SQLite both run; only the row lock differs. On PostgreSQL their
parameters are bound on the server (`prepared_cursor`), so each keeps one text and is
prepared once per connection: a statement's text must not vary with its values.

Turning their rows into model instances as a queryset would, and instances into rows,
reaches into Django: `Model._meta`, `Field.cached_col`, `Model.from_db`, the backend's
converters and adapters, a connection's internals. Nothing else in the project does, and
tests/annotate/test_db.py names the internal that a Django upgrade changed.

What a row needs from other tables is read by scalar subqueries rather than joins: the
planner takes a fraction of the time over them, and planning was most of the cost of
these short statements.
"""

import functools
import uuid
from datetime import datetime
from typing import NamedTuple

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model
from django.utils import timezone

from annotate.models import Assignment, Judgment, Participation, Study, Trial
from generation.models import Item


def prepared_cursor(alias: str = DEFAULT_DB_ALIAS):
    """A cursor on the database, as `connection.cursor()` gives, but on PostgreSQL one
    that binds parameters on the server.

    Django's cursors write the values into the statement, so PostgreSQL parses and plans
    every one afresh. With server-side binding each statement keeps one text, and
    psycopg prepares it once a connection has run it `prepare_threshold` times
    (DATABASES OPTIONS; unset, as in Django's default, it never does). Where queries are
    logged (DEBUG, a test that captures them, bench --explain), Django's own cursor runs
    them, so that the log shows each statement with its values.
    """
    db = connections[alias]
    if db.vendor != "postgresql" or db.queries_logged:
        return db.cursor()
    db.close_if_health_check_failed()
    db.ensure_connection()
    db.validate_thread_sharing()
    # Django's wrapper, as around its own cursors: database errors become Django's.
    return db.make_cursor(psycopg.Cursor(db.connection))


def _db():
    # `connection` looks the connection up again on each attribute, which the helpers
    # below, run for every statement, would pay a dozen times over.
    return connections[DEFAULT_DB_ALIAS]


def skip_locked() -> bool:
    """Whether the database can skip rows that others hold locked (SQLite has no row locks)."""
    return _db().features.has_select_for_update_skip_locked


def _row_lock() -> str:
    return "FOR UPDATE" if _db().features.has_select_for_update else ""


def _rows(sql: str, params: list) -> list[tuple]:
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _write(sql: str, params: list) -> int:
    """Run an INSERT, UPDATE or DELETE; the number of rows it touched."""
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _instances(model: type[Model], attnames: list[str], rows: list[tuple]) -> list[tuple]:
    """(instance of `model`, the rest of the row) for rows whose leading columns are `attnames`.

    The values go through the database's converters, as in a queryset: SQLite, for
    one, returns naive datetimes and UUIDs as text. A field left out of `attnames` is
    deferred, as with `only()`.
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


def _with_caption(item_id: int, caption: str) -> Item:
    """The item of a trial or an assignment, with only its caption loaded."""
    return Item.from_db(_db().alias, ITEM_READ, [item_id, caption])


@functools.cache
def _insert_sql(model: type[Model], alias: str) -> tuple[list, str]:
    """The fields that an INSERT of `model` writes, and its statement."""
    db = connections[alias]
    meta = model._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    columns = ", ".join(db.ops.quote_name(f.column) for f in fields)
    return fields, (
        f"INSERT INTO {meta.db_table} ({columns}) VALUES ({', '.join(['%s'] * len(fields))}) "
        f"RETURNING {db.ops.quote_name(meta.pk.column)}"
    )


def _insert(instance: Model) -> None:
    """Insert a new model instance and set its primary key, as `save()` would.

    The engine's models have no save signals, and the judgment's append-only guard
    only refuses saves of a row that exists.
    """
    db = _db()
    fields, sql = _insert_sql(type(instance), db.alias)
    values = [f.get_db_prep_save(f.pre_save(instance, True), db) for f in fields]
    (pk,), = _rows(sql, values)
    instance.pk = pk
    instance._state.adding = False
    instance._state.db = db.alias


# ------------------------------------------------------------------------------
# The hot path's reads outside the engine: the session, the study
# ------------------------------------------------------------------------------
def _session_sql(model: type[Model]) -> str:
    return f"SELECT session_data FROM {model._meta.db_table} WHERE session_key = %s AND expire_date > %s"


def session_data(*, model: type[Model], alias: str, session_key: str | None) -> str | None:
    """The encoded data of the session, None when it is unknown or expired."""
    with prepared_cursor(alias) as cursor:
        cursor.execute(
            _session_sql(model),
            [session_key, connections[alias].ops.adapt_datetimefield_value(timezone.now())],
        )
        row = cursor.fetchone()
    return None if row is None else row[0]


_STUDY_SQL = f"SELECT * FROM {Study._meta.db_table} WHERE slug = %s"


def study_row(*, slug: str) -> tuple | None:
    """The study's row as the database returns it, every column: to compare, not to read."""
    with prepared_cursor() as cursor:
        cursor.execute(_STUDY_SQL, [slug])
        return cursor.fetchone()


# ------------------------------------------------------------------------------
# The assignment engine's statements (annotate/services/engine.py)
# ------------------------------------------------------------------------------
_T, _A, _I, _J, _P = (m._meta.db_table for m in (Trial, Assignment, Item, Judgment, Participation))
# Not seen by the annotator: one probe of the (study, annotator, item) unique index
# per candidate, as the pick index is walked in order.
_UNSEEN = f"NOT EXISTS (SELECT 1 FROM {_A} a WHERE a.study_id = t.study_id AND a.annotator_id = %s AND a.item_id = t.item_id)"
# The columns the engine reads: an assignment's (all of them), a picked trial's, the
# participation's running state, an item's caption. Any other field of those is
# deferred: reading it would cost a query. `Model.from_db` takes a partial row's values
# in the order of the model's fields, and so do these lists.
ASSIGNMENT_READ = [f.attname for f in Assignment._meta.concrete_fields]
_ASSIGNMENT_COLUMNS = ", ".join(f"s.{f.column}" for f in Assignment._meta.concrete_fields)
TRIAL_READ = ["id", "kind", "item_id", "sample_id", "generator_id"]
RUNNING_STATE = ["id", "issued", "judged", "issued_per_generator", "pending_sides"]
ITEM_READ = ["id", "caption"]
ANY_GENERATOR = -1


def _caption_of(alias: str) -> str:
    """The caption of the item of the row `alias` (an assignment or a trial)."""
    return f"(SELECT i.caption FROM {_I} i WHERE i.id = {alias}.item_id)"


def _running_state(row: tuple) -> Participation:
    pk, issued, judged, counts, pending_sides = row
    db = _db()
    counts = Participation._meta.get_field("issued_per_generator").from_db_value(counts, None, db)
    return Participation.from_db(db.alias, RUNNING_STATE, [pk, issued, judged, counts, pending_sides])


@functools.cache
def _participation_lock_sql(lock: str) -> str:
    return f"SELECT {', '.join(RUNNING_STATE)} FROM {_P} WHERE study_id = %s AND annotator_id = %s {lock}"


def participation_lock(*, study_id: int, annotator_id: int) -> Participation | None:
    """The annotator's participation in the study, locked, with only its running state
    loaded; None when they have not entered."""
    rows = _rows(_participation_lock_sql(_row_lock()), [study_id, annotator_id])
    return _running_state(rows[0]) if rows else None


_PARTICIPATION_SAVE_SQL = f"UPDATE {_P} SET issued = %s, pending_sides = %s, issued_per_generator = %s WHERE id = %s"


def participation_save(*, participation: Participation) -> None:
    """Write the running state of a participation read by `participation_lock`."""
    counts = Participation._meta.get_field("issued_per_generator").get_db_prep_save(
        participation.issued_per_generator, _db()
    )
    _write(
        _PARTICIPATION_SAVE_SQL,
        [participation.issued, participation.pending_sides, counts, participation.pk],
    )


_PARTICIPATION_JUDGED_SQL = (
    f"UPDATE {_P} SET judged = judged + 1 WHERE study_id = %s AND annotator_id = %s "
    f"RETURNING {', '.join(RUNNING_STATE)}"
)


def participation_count_judgment(*, study_id: int, annotator_id: int) -> Participation | None:
    """Count one more judgment on the participation; its running state after, which
    the UPDATE holds locked from here on as `participation_lock` would; None without one."""
    rows = _rows(_PARTICIPATION_JUDGED_SQL, [study_id, annotator_id])
    return _running_state(rows[0]) if rows else None


_TRIAL_CLAIM_SQL = f"UPDATE {_T} SET active_count = active_count + 1 WHERE id = %s AND active_count < %s"


def trial_claim(*, trial_id: int, judgments_per_trial: int) -> bool:
    """Take one slot of the trial; False when it is already full."""
    return bool(_write(_TRIAL_CLAIM_SQL, [trial_id, judgments_per_trial]))


_TRIAL_JUDGED_SQL = f"UPDATE {_T} SET judgment_count = judgment_count + 1 WHERE id = %s"


def trial_count_judgment(*, trial_id: int) -> None:
    _write(_TRIAL_JUDGED_SQL, [trial_id])


@functools.cache
def _neediest_sql(generators: int) -> str:
    values = ", ".join(["(%s)"] * generators)
    return f"""SELECT g.column1, (SELECT t.active_count FROM {_T} t
                WHERE t.study_id = %s AND t.kind = %s AND t.generator_id = g.column1
                  AND t.active_count < %s AND {_UNSEEN}
                ORDER BY t.active_count, t.shuffle LIMIT 1)
            FROM (VALUES {values}) AS g"""


def trials_neediest_per_generator(
    *, study_id: int, annotator_id: int, generator_ids: list[int], judgments_per_trial: int
) -> list[tuple[int, int]]:
    """(generator id, fewest active assignments) of every generator with a generated
    trial left for the annotator. One round trip: per generator, a walk of the pick index
    that stops at the first unseen candidate."""
    if not generator_ids:
        return []
    rows = _rows(
        _neediest_sql(len(generator_ids)),
        [study_id, Trial.Kind.GENERATED, judgments_per_trial, annotator_id, *generator_ids],
    )
    return [(g, level) for g, level in rows if level is not None]


@functools.cache
def _first_unlocked_sql(generator: str, need: str, order: str, lock: str) -> str:
    return f"""SELECT t.id, t.kind, t.item_id, t.sample_id, t.generator_id, {_caption_of('t')}
            FROM {_T} t
            WHERE t.study_id = %s AND t.kind = %s AND {generator} AND {need} AND {_UNSEEN}
            ORDER BY {order} LIMIT 1 {lock}"""


def _first_unlocked_statement(*, generator_id: int | None, level: int | None, lock: str) -> str:
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
        generator = "t.generator_id = %s"
    need = "t.active_count < %s" if level is None else "t.active_count = %s"
    return _first_unlocked_sql(generator, need, order, lock)


def trial_first_unlocked(
    *,
    study_id: int,
    annotator_id: int,
    kind: str,
    judgments_per_trial: int,
    generator_id: int | None = None,
    level: int | None = None,
) -> Trial | None:
    """The first trial of the kind in pick order that the annotator has not seen, locked,
    skipping rows that others hold locked; None when there is none.

    `generator_id` None: a control trial (no generator); `ANY_GENERATOR`: any generated
    one. `level` None: any with fewer than `judgments_per_trial` active assignments;
    else exactly that many. Its item comes with only the caption loaded.
    """
    params: list = [study_id, kind]
    if generator_id is not None and generator_id != ANY_GENERATOR:
        params.append(generator_id)
    params.append(judgments_per_trial if level is None else level)
    lock = "FOR UPDATE OF t SKIP LOCKED" if skip_locked() else ""
    rows = _rows(
        _first_unlocked_statement(generator_id=generator_id, level=level, lock=lock),
        [*params, annotator_id],
    )
    if not rows:
        return None
    *fields, caption = rows[0]
    trial = Trial.from_db(_db().alias, TRIAL_READ, fields)
    trial.item = _with_caption(trial.item_id, caption)
    return trial


# Head-to-head trials are picked per pair through their own partial index, whose
# condition the planner matches only against the kind written out in the statement.
_PAIR = f"t.study_id = %s AND t.kind = '{Trial.Kind.HEAD_TO_HEAD}' AND t.generator_id = %s AND t.opponent_id = %s"


@functools.cache
def _pairs_neediest_sql(pairs: int) -> str:
    values = ", ".join(["(%s, %s)"] * pairs)
    return f"""SELECT g.column1, g.column2, (SELECT t.active_count FROM {_T} t
                WHERE t.study_id = %s AND t.kind = '{Trial.Kind.HEAD_TO_HEAD}'
                  AND t.generator_id = g.column1 AND t.opponent_id = g.column2
                  AND t.active_count < %s AND {_UNSEEN}
                ORDER BY t.active_count, t.shuffle LIMIT 1)
            FROM (VALUES {values}) AS g"""


def pairs_neediest(
    *, study_id: int, annotator_id: int, pairs: list[tuple[int, int]], judgments_per_trial: int
) -> list[tuple[int, int, int]]:
    """(generator, opponent, fewest active assignments) of every pair with a head-to-head
    trial left for the annotator, in one round trip as `trials_neediest_per_generator`."""
    if not pairs:
        return []
    rows = _rows(
        _pairs_neediest_sql(len(pairs)),
        [study_id, judgments_per_trial, annotator_id, *(g for pair in pairs for g in pair)],
    )
    return [(a, b, level) for a, b, level in rows if level is not None]


@functools.cache
def _pair_first_unlocked_sql(need: str, lock: str) -> str:
    return f"""SELECT t.id, t.kind, t.item_id, t.sample_id, t.generator_id, {_caption_of('t')}
            FROM {_T} t
            WHERE {_PAIR} AND {need} AND {_UNSEEN}
            ORDER BY t.active_count, t.shuffle LIMIT 1 {lock}"""


def pair_first_unlocked(
    *, study_id: int, annotator_id: int, pair: tuple[int, int], judgments_per_trial: int, level: int | None = None
) -> Trial | None:
    """`trial_first_unlocked` for the head-to-head trials of one pair (generator, opponent)."""
    need = "t.active_count < %s" if level is None else "t.active_count = %s"
    lock = "FOR UPDATE OF t SKIP LOCKED" if skip_locked() else ""
    rows = _rows(
        _pair_first_unlocked_sql(need, lock),
        [study_id, *pair, judgments_per_trial if level is None else level, annotator_id],
    )
    if not rows:
        return None
    *fields, caption = rows[0]
    trial = Trial.from_db(_db().alias, TRIAL_READ, fields)
    trial.item = _with_caption(trial.item_id, caption)
    return trial


_OPEN_ASSIGNMENTS_SQL = f"""SELECT {_ASSIGNMENT_COLUMNS}, {_caption_of('s')} FROM {_A} s
            WHERE s.study_id = %s AND s.annotator_id = %s AND s.released_at IS NULL AND s.expires_at > %s
              AND NOT EXISTS (SELECT 1 FROM {_J} j WHERE j.assignment_id = s.id)
              AND NOT EXISTS (SELECT 1 FROM {_T} t WHERE t.id = s.trial_id AND t.kind = %s)
            ORDER BY s.issued_at, s.id LIMIT %s"""


def assignments_open(*, study_id: int, annotator_id: int, now: datetime, limit: int) -> list[Assignment]:
    """The annotator's open study assignments (not practice), oldest first, each with its
    item's caption."""
    rows = _rows(
        _OPEN_ASSIGNMENTS_SQL,
        [study_id, annotator_id, _db().ops.adapt_datetimefield_value(now), Trial.Kind.PRACTICE, limit],
    )
    issued = []
    for assignment, (caption,) in _instances(Assignment, ASSIGNMENT_READ, rows):
        assignment.item = _with_caption(assignment.item_id, caption)
        issued.append(assignment)
    return issued


def assignment_insert(*, assignment: Assignment) -> None:
    """Insert a new assignment and set its primary key, as `save()` would."""
    _insert(assignment)


_SHOWN_SQL = f"UPDATE {_A} SET shown_at = %s WHERE id = %s"


def assignment_mark_shown(*, assignment_id: int, now: datetime) -> None:
    _write(_SHOWN_SQL, [_db().ops.adapt_datetimefield_value(now), assignment_id])


@functools.cache
def _by_token_sql(lock: str) -> str:
    return f"""SELECT {_ASSIGNMENT_COLUMNS},
                   (SELECT t.kind FROM {_T} t WHERE t.id = s.trial_id),
                   (SELECT j.id FROM {_J} j WHERE j.assignment_id = s.id),
                   (SELECT p.judged FROM {_P} p WHERE p.study_id = s.study_id AND p.annotator_id = s.annotator_id)
            FROM {_A} s WHERE s.token = %s {lock}"""


class TokenAssignment(NamedTuple):
    assignment: Assignment
    trial_kind: str
    judgment_id: int | None
    # The annotator's count of study judgments so far; None without a participation.
    judged_before: int | None


def assignment_lock_by_token(*, token: uuid.UUID) -> TokenAssignment | None:
    """The assignment of the token, locked, with its trial's kind, its judgment's id if
    any and the annotator's judgments so far, in one round trip; None for no such token."""
    token_value = Assignment._meta.get_field("token").get_db_prep_value(token, _db())
    rows = _rows(_by_token_sql(_row_lock()), [token_value])
    if not rows:
        return None
    [(assignment, (trial_kind, judgment_id, judged_before))] = _instances(Assignment, ASSIGNMENT_READ, rows)
    return TokenAssignment(assignment, trial_kind, judgment_id, judged_before)


def judgment_insert(*, judgment: Judgment) -> None:
    """Insert a new judgment and set its primary key, as `save()` would."""
    _insert(judgment)

