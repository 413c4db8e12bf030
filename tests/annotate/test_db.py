"""The SQL fence (annotate/db.py): what it relies on in Django, checked so that an upgrade
that changes it fails here, naming what changed, instead of the engine reading wrong rows.

Three kinds of check: the internals exist with the shape the fence uses; every column its
statements name exists in the model and in the table, and every field of a model it loads
in part is read or left out knowingly; and the instances it builds from rows equal the
ORM's for the same rows, on the database the tests run on.
"""

import inspect
import re
import uuid
from datetime import timedelta

import django
import psycopg
import pytest
from django.contrib.sessions.backends.db import SessionStore as DjangoSessionStore
from django.contrib.sessions.models import Session
from django.db import DatabaseError, connection, transaction
from django.db.backends.utils import CursorWrapper
from django.db.models import JSONField
from django.db.models.expressions import Col
from django.utils import timezone

from annotate import db as fence
from annotate.models import Assignment, Judgment, Participation, Study, Trial
from annotate.services import (
    assignments_next,
    judgment_record,
    judgment_record_and_next,
    study_build_trials,
    study_open,
)
from annotate.sessions import SessionStore
from generation.models import Item
from tests.annotate.builders import annotators, build_study

TABLES = {m._meta.db_table: m for m in (Trial, Assignment, Item, Judgment, Participation, Study, Session)}
# The fields of the models it loads in part that the engine has no use for: a field
# added to one of these models must be named here or read by the fence (with its
# statement), so that an engine which starts to use it does not pay a query per read.
LEFT_OUT = {
    Trial: {"study_id", "opponent_sample_id", "opponent_id", "control_image", "judgment_count", "active_count", "shuffle", "created_at"},
    Participation: {
        "study_id", "annotator_id", "prolific_study_id", "prolific_session_id", "invited_at", "browser_key",
        "session_key", "consented_at", "practice_finished_at", "finished_at", "created_at",
    },
    Item: {"image", "sha256", "width", "height", "format", "mode", "byte_size", "corpus_id", "key", "meta"},
}
PARTIAL = {Trial: fence.TRIAL_READ, Participation: fence.RUNNING_STATE, Item: fence.ITEM_READ}


def statements() -> list[str]:
    """Every statement text the fence sends on the default database, each variant once
    (the engine's survey for one and for two generators)."""
    lock, skip = fence._row_lock(), "FOR UPDATE OF t SKIP LOCKED" if fence.skip_locked() else ""
    return [
        fence._session_sql(Session),
        fence._STUDY_SQL,
        fence._participation_lock_sql(lock),
        fence._PARTICIPATION_SAVE_SQL,
        fence._PARTICIPATION_JUDGED_SQL,
        fence._TRIAL_CLAIM_SQL,
        fence._TRIAL_JUDGED_SQL,
        fence._neediest_sql(1),
        fence._neediest_sql(2),
        *(
            fence._first_unlocked_statement(generator_id=generator_id, level=level, lock=skip)
            for generator_id in (None, fence.ANY_GENERATOR, 1)
            for level in (None, 0)
        ),
        fence._OPEN_ASSIGNMENTS_SQL,
        fence._SHOWN_SQL,
        fence._by_token_sql(lock),
        fence._insert_sql(Assignment, "default")[1],
        fence._insert_sql(Judgment, "default")[1],
    ]


def changed(what: str) -> str:
    return f"Django {django.get_version()}: the engine's SQL fence relies on {what} which changed; see annotate/db.py"


def opened(**kwargs) -> Study:
    study = build_study(**kwargs)
    study_build_trials(study=study, rng_seed=0)
    return study_open(study=study)


def values(instance, model) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in model._meta.concrete_fields}


def typed(row: dict) -> dict:
    # Equal values of other types (a UUID and its text, naive and aware times) must not pass.
    return {name: (type(value), value) for name, value in row.items()}


# ------------------------------------------------------------------------------
# The internals exist, with the shape the fence uses
# ------------------------------------------------------------------------------
@pytest.mark.parametrize("model", list(TABLES.values()), ids=lambda m: m.__name__)
def test_meta_gives_tables_columns_and_fields(model):
    meta = model._meta
    assert isinstance(meta.db_table, str) and meta.db_table, changed(f"{model.__name__}._meta.db_table")
    # The statements name the primary key's column: `session_key` for a session, `id` elsewhere.
    assert meta.pk.column == ("session_key" if model is Session else "id"), changed(f"{model.__name__}._meta.pk.column")
    for field in meta.concrete_fields:
        assert field.column and field.attname, changed(f"{model.__name__}._meta.concrete_fields[].column/attname")
        assert meta.get_field(field.attname) is field, changed(
            f"{model.__name__}._meta.get_field() finding a field by its attname ({field.attname!r})"
        )


@pytest.mark.parametrize("model", list(PARTIAL), ids=lambda m: m.__name__)
def test_every_field_of_a_model_loaded_in_part_is_read_or_left_out_knowingly(model):
    attnames = [f.attname for f in model._meta.concrete_fields]
    read = PARTIAL[model]
    new = set(attnames) - set(read) - LEFT_OUT[model]
    assert not new, changed(
        f"the fields of {model.__name__}: {sorted(new)} neither read nor left out "
        f"(add them to the fence's columns or to LEFT_OUT in {__name__})"
    )
    gone = (set(read) | LEFT_OUT[model]) - set(attnames)
    assert not gone, changed(f"{model.__name__} fields {sorted(gone)}, no longer on the model")
    for name in read:
        assert model._meta.get_field(name).column == name, changed(
            f"{model.__name__}.{name} having the column {name!r}, which its SQL names"
        )
    # `from_db` places a partial row's values by the order of the model's fields.
    assert read == sorted(read, key=attnames.index), changed(
        f"the order of {model.__name__}'s fields ({read} must follow it, as Model.from_db reads them)"
    )


def test_model_from_db_builds_a_partial_instance_with_the_rest_deferred():
    assert list(inspect.signature(Trial.from_db).parameters) == ["db", "field_names", "values"], changed(
        "the signature of Model.from_db(db, field_names, values)"
    )
    trial = Trial.from_db("default", fence.TRIAL_READ, [7, "generated", 3, 5, 2])
    assert (trial.pk, trial.kind, trial.item_id, trial.sample_id, trial.generator_id) == (7, "generated", 3, 5, 2), (
        changed("Model.from_db placing a partial row's values")
    )
    assert (trial._state.adding, trial._state.db) == (False, "default"), changed("Model.from_db setting _state")
    assert trial.get_deferred_fields() == LEFT_OUT[Trial], changed("Model.from_db deferring the fields not given")


def test_a_fields_cached_col_is_a_column_of_its_table():
    field = Assignment._meta.get_field("issued_at")
    col = field.cached_col
    assert isinstance(col, Col) and col.target is field and col.alias == Assignment._meta.db_table, changed(
        "Field.cached_col being a Col of the field's table"
    )
    assert field.cached_col is col, changed("Field.cached_col being cached")


def converter_arguments(convert) -> list[str]:
    return [p for p in inspect.signature(convert).parameters if p not in ("self", "args", "kwargs")]


def test_converters_and_adapters_have_the_signatures_the_fence_calls(db):
    for model in (Assignment, Participation, Trial):
        for field in model._meta.concrete_fields:
            for convert in (*connection.ops.get_db_converters(field.cached_col), *field.get_db_converters(connection)):
                assert len(converter_arguments(convert)) == 3, changed(
                    f"a converter's arguments (value, expression, connection): {convert.__qualname__} "
                    f"of {model.__name__}.{field.name}"
                )
    counts = Participation._meta.get_field("issued_per_generator")
    assert isinstance(counts, JSONField)
    # As the column's text arrives from either database; the round trip is checked below.
    assert counts.from_db_value('{"3": 1}', None, connection) == {"3": 1}, changed(
        "JSONField.from_db_value(value, expression, connection)"
    )
    assert counts.get_db_prep_save({"3": 1}, connection) is not None, changed(
        "Field.get_db_prep_save(value, connection)"
    )
    token = Assignment._meta.get_field("token")
    assert token.get_db_prep_value(uuid.UUID(int=1), connection) is not None, changed(
        "Field.get_db_prep_value(value, connection)"
    )
    assert list(inspect.signature(token.pre_save).parameters) == ["model_instance", "add"], changed(
        "Field.pre_save(model_instance, add)"
    )
    assert connection.ops.adapt_datetimefield_value(timezone.now()) is not None, changed(
        "connection.ops.adapt_datetimefield_value(value)"
    )
    assert connection.ops.quote_name("id") in ('"id"', "`id`"), changed("connection.ops.quote_name(name)")
    for feature in ("has_select_for_update", "has_select_for_update_skip_locked"):
        assert isinstance(getattr(connection.features, feature, None), bool), changed(f"connection.features.{feature}")


def test_the_prepared_cursor_is_djangos_wrapper_around_a_binding_cursor(db):
    for name in ("queries_logged", "close_if_health_check_failed", "ensure_connection", "validate_thread_sharing",
                 "make_cursor"):
        assert hasattr(connection, name), changed(f"the connection's {name}")
    with fence.prepared_cursor() as cursor:
        assert isinstance(cursor, CursorWrapper), changed("connection.make_cursor() giving Django's CursorWrapper")
        if connection.vendor == "postgresql":
            assert type(cursor.cursor) is psycopg.Cursor, changed("connection.connection being a psycopg Connection")
        # The engine retries on Django's IntegrityError: the database's own errors must arrive as Django's.
        with pytest.raises(DatabaseError, match="no_such_table"), transaction.atomic():
            cursor.execute("SELECT * FROM no_such_table WHERE id = %s", [1])


# ------------------------------------------------------------------------------
# Every column the statements name exists in the model and in the table
# ------------------------------------------------------------------------------
SQL_WORDS = {
    "select", "from", "where", "and", "not", "exists", "is", "null", "order", "by", "limit", "for", "update", "of",
    "skip", "locked", "set", "returning", "insert", "into", "values", "as",
}


def model_and_table_columns(table: str) -> set[str]:
    model = {f.column for f in TABLES[table]._meta.concrete_fields}
    with connection.cursor() as cursor:
        described = {c.name for c in connection.introspection.get_table_description(cursor, table)}
    missing = model - described
    assert not missing, changed(f"the columns {sorted(missing)} of {table}, which the model has and the table lacks")
    return model


def unknown_columns(sql: str, columns: dict[str, set[str]]) -> list[str]:
    """The columns that `sql` names and its tables lack, as `table.column` (or the bare
    name where the statement's tables are several)."""
    text = sql.replace('"', "").replace("`", "")
    named = [t for t in columns if re.search(rf"\b{t}\b", text)]
    aliases = {alias: table for table, alias in re.findall(rf"\b({'|'.join(named) or '$^'})\s+([a-z])\b", text)}
    unknown = []
    for alias, column in re.findall(r"\b([a-z])\.(\w+)", text):
        # `g` is the survey's list of generators, a VALUES list whose column is `column1`.
        if (alias, column) != ("g", "column1") and column not in columns.get(aliases.get(alias), ()):
            unknown.append(f"{aliases.get(alias, alias)}.{column}")
    bare = re.sub(r"\b[a-z]\.\w+|%s|\d+", " ", text)
    for word in sorted(set(re.findall(r"[A-Za-z_]\w*", bare))):
        if word.lower() in SQL_WORDS or word in columns or word in aliases or word in ("g", "column1"):
            continue
        if not any(word in columns[t] for t in named):
            unknown.append(f"{'/'.join(named)}.{word}")
    return unknown


def test_every_column_the_statements_name_is_in_the_model_and_the_table(db):
    columns = {table: model_and_table_columns(table) for table in TABLES}
    for sql in statements():
        unknown = unknown_columns(sql, columns)
        assert not unknown, changed(f"the columns {unknown}, named in {sql!r}")


@pytest.mark.parametrize("planted", [
    "UPDATE annotate_trial SET active_cont = active_cont + 1 WHERE id = %s",
    "SELECT t.id, (SELECT i.captions FROM generation_item i WHERE i.id = t.item_id) FROM annotate_trial t",
    'INSERT INTO annotate_judgment ("assignment_id", "choise") VALUES (%s, %s) RETURNING "id"',
])
def test_a_column_that_no_table_has_is_found(planted):
    columns = {t: {f.column for f in m._meta.concrete_fields} for t, m in TABLES.items()}
    assert len(unknown_columns(planted, columns)) == 1


def test_the_statements_listed_are_all_that_the_fence_sends(db, monkeypatch):
    sent = set()
    real = fence.prepared_cursor

    class Recording:
        def __init__(self, cursor):
            self.cursor = cursor

        def __enter__(self):
            self.cursor.__enter__()
            return self

        def __exit__(self, *exc):
            return self.cursor.__exit__(*exc)

        def execute(self, sql, params):
            sent.add(sql)
            return self.cursor.execute(sql, params)

        def __getattr__(self, name):
            return getattr(self.cursor, name)

    monkeypatch.setattr(fence, "prepared_cursor", lambda *args: Recording(real(*args)))
    study = opened(generators=2, items=6, quota=10, catch_rate=0.3, calibration_rate=0.3)
    (annotator,) = annotators(1)
    issued = assignments_next(study=study, annotator=annotator)
    for _ in range(4):
        _, issued = judgment_record_and_next(
            assignment_token=issued[0].token, study=study, annotator=annotator, choice="left"
        )
    judgment_record(assignment_token=issued[0].token, annotator=annotator, choice="right")
    fence.session_data(model=Session, alias="default", session_key="none")
    fence.study_row(slug=study.slug)
    unlisted = sent - set(statements())
    assert not unlisted, f"annotate/db.py sends statements that statements() here leaves unchecked: {unlisted}"
    assert len(sent) >= 10


# ------------------------------------------------------------------------------
# The fence's instances equal the ORM's
# ------------------------------------------------------------------------------
def test_open_assignments_and_the_token_lock_equal_the_orms_rows(db):
    study = opened(generators=2, items=5, quota=10)
    (annotator,) = annotators(1)
    with transaction.atomic():
        issued = assignments_next(study=study, annotator=annotator, ahead=2)
    assert len(issued) == 3
    now = timezone.now()
    fenced = fence.assignments_open(study_id=study.pk, annotator_id=annotator.pk, now=now, limit=10)
    orm = list(Assignment.objects.filter(pk__in=[a.pk for a in issued]).select_related("item").order_by("issued_at", "id"))
    assert [typed(values(a, Assignment)) for a in fenced] == [typed(values(a, Assignment)) for a in orm], changed(
        "Model.from_db and the backend's converters building an Assignment as a queryset does"
    )
    assert [a.item.caption for a in fenced] == [a.item.caption for a in orm]
    assert all(a.item.get_deferred_fields() == LEFT_OUT[Item] for a in fenced)
    with transaction.atomic():
        locked = fence.assignment_lock_by_token(token=orm[0].token)
    assert typed(values(locked.assignment, Assignment)) == typed(values(orm[0], Assignment)), changed(
        "Model.from_db and the backend's converters building an Assignment as a queryset does"
    )
    assert (locked.trial_kind, locked.judgment_id) == (orm[0].trial.kind, None)
    assert locked.judged_before == Participation.objects.get(study=study, annotator=annotator).judged
    judgment_record(assignment_token=orm[0].token, annotator=annotator, choice="left")
    with transaction.atomic():
        locked = fence.assignment_lock_by_token(token=orm[0].token)
    assert locked.judgment_id == Judgment.objects.get(assignment=orm[0]).pk
    assert fence.assignment_lock_by_token(token=uuid.uuid4()) is None


def test_the_running_state_and_a_picked_trial_equal_the_orms_rows(db):
    study = opened(generators=2, items=5, quota=10)
    (annotator,) = annotators(1)
    assignments_next(study=study, annotator=annotator, ahead=1)
    with transaction.atomic():
        running = fence.participation_lock(study_id=study.pk, annotator_id=annotator.pk)
    orm = Participation.objects.get(study=study, annotator=annotator)
    assert {n: getattr(running, n) for n in fence.RUNNING_STATE} == {n: getattr(orm, n) for n in fence.RUNNING_STATE}
    assert running.issued == 2 and sum(running.issued_per_generator.values()) == 2
    assert running.get_deferred_fields() == LEFT_OUT[Participation], changed("Model.from_db deferring fields")
    assert fence.participation_lock(study_id=study.pk, annotator_id=annotator.pk + 1) is None
    for generator_id, level in ((None, None), (study.generators.first().pk, 0), (fence.ANY_GENERATOR, None)):
        kind = Trial.Kind.CATCH if generator_id is None else Trial.Kind.GENERATED
        with transaction.atomic():
            trial = fence.trial_first_unlocked(study_id=study.pk, annotator_id=annotator.pk, kind=kind,
                                               judgments_per_trial=study.judgments_per_trial,
                                               generator_id=generator_id, level=level)
        if generator_id is None:
            assert trial is None  # the study has no catch trials
            continue
        full = Trial.objects.select_related("item").get(pk=trial.pk)
        assert {n: getattr(trial, n) for n in fence.TRIAL_READ} == {n: getattr(full, n) for n in fence.TRIAL_READ}
        assert trial.item.caption == full.item.caption
        assert trial.get_deferred_fields() == LEFT_OUT[Trial], changed("Model.from_db deferring fields")
        # Never one the annotator has seen.
        assert not Assignment.objects.filter(annotator=annotator, item_id=trial.item_id).exists()
    tops = fence.trials_neediest_per_generator(study_id=study.pk, annotator_id=annotator.pk,
                                               generator_ids=list(study.generators.values_list("id", flat=True)),
                                               judgments_per_trial=study.judgments_per_trial)
    assert sorted(tops) == sorted((g, 0) for g in study.generators.values_list("id", flat=True))


def test_an_inserted_judgment_equals_the_orms_row_and_counts(db):
    study = opened(generators=1, items=3, quota=10)
    (annotator,) = annotators(1)
    (assignment,) = assignments_next(study=study, annotator=annotator, ahead=0)
    judgment = Judgment(assignment=assignment, choice="left", client_response_ms=700, server_response_ms=650)
    with transaction.atomic():
        fence.judgment_insert(judgment=judgment)
        fence.trial_count_judgment(trial_id=assignment.trial_id)
        running = fence.participation_count_judgment(study_id=study.pk, annotator_id=annotator.pk)
    assert (judgment._state.adding, judgment._state.db) == (False, "default")
    assert typed(values(judgment, Judgment)) == typed(values(Judgment.objects.get(pk=judgment.pk), Judgment)), changed(
        "Field.pre_save and get_db_prep_save writing a row that the ORM reads back as it was"
    )
    assert running.judged == 1 == Participation.objects.get(pk=running.pk).judged
    assert Trial.objects.get(pk=assignment.trial_id).judgment_count == 1
    assert fence.trial_claim(trial_id=assignment.trial_id, judgments_per_trial=study.judgments_per_trial) is True
    assert fence.trial_claim(trial_id=assignment.trial_id, judgments_per_trial=2) is False


def test_the_session_and_study_reads_equal_the_orms(db):
    store = DjangoSessionStore()
    store["annotator"] = 5
    store.save()
    data = fence.session_data(model=Session, alias="default", session_key=store.session_key)
    assert data == Session.objects.get(pk=store.session_key).session_data
    assert SessionStore(store.session_key).load() == {"annotator": 5}
    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))
    assert fence.session_data(model=Session, alias="default", session_key=store.session_key) is None
    study = build_study()
    row = fence.study_row(slug=study.slug)
    assert len(row) == len(Study._meta.concrete_fields) and row[0] == study.pk
    assert fence.study_row(slug="no-such-study") is None

