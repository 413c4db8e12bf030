"""The judgments export (annotate/exports.py) through GET /api/v1/studies/<slug>/judgments/."""

import csv
import io
import json
import time
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client

from annotate.exports import COLUMNS
from annotate.models import Annotator, Assignment, Judgment, Side, Study, Trial
from generation.models import Generator, Item, Membership, Sample, Workspace
from tests.annotate.builders import _facts, build_study

URL = "/api/v1/studies/{}/judgments/"
T0 = datetime(2025, 5, 1, 9, 0, tzinfo=UTC)


def member_client(study: Study, name: str = "alice") -> Client:
    user = get_user_model().objects.create_user(username=name, password="x")
    Membership.objects.create(workspace=study.workspace, user=user, role=Membership.Role.VIEWER)
    client = Client()
    client.force_login(user)
    return client


def body(response) -> bytes:
    assert response.streaming, "the export must stream"
    return b"".join(response.streaming_content)


def csv_rows(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(body(response).decode())))


def judge(trial: Trial, annotator: Annotator, *, reference: str, choice: str, at: datetime,
          client_ms: int | None = 900) -> Judgment:
    assignment = Assignment.objects.create(
        trial=trial, annotator=annotator, study=trial.study, item=trial.item, reference_side=reference,
        issued_at=at - timedelta(seconds=5), shown_at=at - timedelta(seconds=4),
        expires_at=at + timedelta(minutes=10),
    )
    judgment = Judgment.objects.create(
        assignment=assignment, choice=choice, client_response_ms=client_ms, server_response_ms=1000
    )
    Judgment.objects.filter(pk=judgment.pk).update(created_at=at)
    return judgment


@pytest.fixture
def study(db):
    """Two generators, one catch, one calibration and one practice trial, each judged once.

    Judgments land a day apart, from T0, in this order:
      0 g0 real left,  chose right -> generated chosen
      1 g1 real right, chose right -> real chosen
      2 catch  real left, chose left
      3 calibration real right, chose left
      4 practice (never exported)
      5 g0 real right, chose left -> generated chosen, no client time
    """
    study = build_study(generators=2, items=6, slug="exp")
    g0, g1 = Generator.objects.filter(workspace=study.workspace).order_by("name")
    items = list(Item.objects.filter(corpus=study.corpus).order_by("key"))

    def trial(kind, item, generator=None):
        sample = Sample.objects.get(generator=generator, item=item) if generator else None
        return Trial.objects.create(study=study, kind=kind, item=item, sample=sample, generator=generator)

    who = [Annotator.objects.create(source=Annotator.Source.PROLIFIC, external_id=f"PID-{n}") for n in range(2)]
    plan = [
        (trial(Trial.Kind.GENERATED, items[0], g0), Side.LEFT, Side.RIGHT, 900),
        (trial(Trial.Kind.GENERATED, items[1], g1), Side.RIGHT, Side.RIGHT, 900),
        (trial(Trial.Kind.CATCH, items[2]), Side.LEFT, Side.LEFT, 900),
        (trial(Trial.Kind.CALIBRATION, items[3]), Side.RIGHT, Side.LEFT, 900),
        (trial(Trial.Kind.PRACTICE, items[4]), Side.LEFT, Side.LEFT, 900),
        (trial(Trial.Kind.GENERATED, items[5], g0), Side.RIGHT, Side.LEFT, None),
    ]
    for n, (t, reference, choice, client_ms) in enumerate(plan):
        judge(t, who[n % 2], reference=reference, choice=choice, at=T0 + timedelta(days=n), client_ms=client_ms)
    study.g0, study.g1, study.who = g0, g1, who
    return study


def test_csv_columns_and_values(study):
    response = member_client(study).get(URL.format("exp"), {"format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="exp-judgments.csv"'
    text = body(response).decode()
    assert text.splitlines()[0] == ",".join(COLUMNS)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["item_key"] for row in rows] == ["k0", "k1", "k2", "k3", "k5"]  # practice (k4) is absent
    assert [row["kind"] for row in rows] == ["generated", "generated", "catch", "calibration", "generated"]
    assert [row["generator"] for row in rows] == ["exp-g0", "exp-g1", "", "", "exp-g0"]
    assert [row["generator_id"] for row in rows] == [str(study.g0.pk), str(study.g1.pk), "", "", str(study.g0.pk)]
    assert [row["reference_side"] for row in rows] == ["left", "right", "left", "right", "right"]
    assert [row["choice"] for row in rows] == ["right", "right", "left", "left", "left"]
    assert [row["chose_generated"] for row in rows] == ["true", "false", "", "", "true"]
    assert [row["client_response_ms"] for row in rows] == ["900", "900", "900", "900", ""]
    assert {row["server_response_ms"] for row in rows} == {"1000"}
    assert {row["study"] for row in rows} == {"exp"}
    assert {row["simulated"] for row in rows} == {"false"}  # Prolific annotators are people
    judgments = Judgment.objects.exclude(assignment__trial__kind=Trial.Kind.PRACTICE).order_by("id")
    assert [int(row["judgment"]) for row in rows] == [j.pk for j in judgments]
    assert [int(row["trial"]) for row in rows] == [j.assignment.trial_id for j in judgments]
    # The annotator is the pseudonym, never a database or platform id.
    pseudonyms = {str(a.pseudonym): a for a in study.who}
    assert [pseudonyms[row["annotator"]] for row in rows] == [study.who[n % 2] for n in (0, 1, 2, 3, 5)]
    assert "PID-" not in text
    for row in rows:
        assert uuid.UUID(row["annotator"])
    assert rows[0]["judged_at"] == "2025-05-01T09:00:00.000000+00:00"
    assert rows[0]["issued_at"] == "2025-05-01T08:59:55.000000+00:00"
    assert datetime.fromisoformat(rows[4]["judged_at"]) == T0 + timedelta(days=5)


def test_jsonl_lines_parse_with_types(study):
    response = member_client(study).get(URL.format("exp"), {"format": "jsonl"})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-ndjson"
    assert response["Content-Disposition"] == 'attachment; filename="exp-judgments.jsonl"'
    lines = body(response).decode().splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) == 5 and all(tuple(row) == COLUMNS for row in rows)
    assert [row["chose_generated"] for row in rows] == [True, False, None, None, True]
    assert [row["generator_id"] for row in rows] == [study.g0.pk, study.g1.pk, None, None, study.g0.pk]
    assert rows[2]["generator"] is None and rows[4]["client_response_ms"] is None
    assert rows[0]["server_response_ms"] == 1000 and rows[0]["annotator"] == str(study.who[0].pseudonym)
    assert rows[1]["judged_at"] == "2025-05-02T09:00:00.000000+00:00"
    assert [row["simulated"] for row in rows] == [False] * 5


def test_csv_cells_that_a_spreadsheet_would_run_as_formulas_stay_text(study):
    Generator.objects.filter(pk=study.g0.pk).update(name='=HYPERLINK("http://evil","x")')
    Item.objects.filter(corpus=study.corpus, key="k1").update(key="+k1")
    Item.objects.filter(corpus=study.corpus, key="k2").update(key="@k2")
    client = member_client(study)
    rows = csv_rows(client.get(URL.format("exp"), {"format": "csv"}))
    assert [row["generator"] for row in rows] == ["'=HYPERLINK(\"http://evil\",\"x\")", "exp-g1", "", "",
                                                  "'=HYPERLINK(\"http://evil\",\"x\")"]
    assert [row["item_key"] for row in rows] == ["k0", "'+k1", "'@k2", "k3", "k5"]
    exact = [json.loads(line) for line in body(client.get(URL.format("exp"), {"format": "jsonl"})).splitlines()]
    assert exact[0]["generator"] == '=HYPERLINK("http://evil","x")'
    assert [row["item_key"] for row in exact] == ["k0", "+k1", "@k2", "k3", "k5"]


def test_csv_is_the_default_format(study):
    response = member_client(study).get(URL.format("exp"))
    assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
    assert len(csv_rows(response)) == 5


def keys(client, **params) -> list[str]:
    response = client.get(URL.format("exp"), params)
    assert response.status_code == 200, response.content
    return [row["item_key"] for row in csv_rows(response)]


def test_filters(study):
    client = member_client(study)
    assert keys(client, controls="exclude") == ["k0", "k1", "k5"]
    assert keys(client, controls="only") == ["k2", "k3"]
    assert keys(client, controls="include") == ["k0", "k1", "k2", "k3", "k5"]
    # By name or id, repeated for several; control trials follow `controls` alone.
    assert keys(client, generator="exp-g0", controls="exclude") == ["k0", "k5"]
    assert keys(client, generator=str(study.g1.pk), controls="exclude") == ["k1"]
    assert keys(client, generator=["exp-g0", str(study.g1.pk)], controls="exclude") == ["k0", "k1", "k5"]
    assert keys(client, generator="exp-g1") == ["k1", "k2", "k3"]
    # since is inclusive, until exclusive; dates, datetimes, offsets ("+" sent unencoded arrives as a space).
    assert keys(client, since="2025-05-02") == ["k1", "k2", "k3", "k5"]
    assert keys(client, until="2025-05-02T09:00:00") == ["k0"]
    assert keys(client, since="2025-05-02T09:00:00Z", until="2025-05-04T09:00:00.000001+00:00") == ["k1", "k2", "k3"]
    assert keys(client, since="2025-05-02T11:00:00+02:00", until="2025-05-03T11:00:00 02:00") == ["k1"]
    assert keys(client, since="2025-05-03", until="2025-05-04", controls="only") == ["k2"]
    assert keys(client, since="2025-05-05 09:00") == ["k5"]
    assert keys(client, since="2026-01-01") == []


def test_format_jsonl_despite_an_accept_header(study):
    response = member_client(study).get(URL.format("exp"), {"format": "jsonl"}, headers={"Accept": "text/csv"})
    assert response.status_code == 200 and response["Content-Type"] == "application/x-ndjson"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"format": "xlsx"}, "format"),
        ({"controls": "some"}, "controls"),
        ({"generator": "nope"}, "generator"),
        ({"generator": "999999"}, "generator"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2025-13-01"}, "until"),
        ({"since": "2025-05-03", "until": "2025-05-02"}, "until"),
    ],
)
def test_bad_filters_are_400_naming_the_parameter(study, params, field):
    response = member_client(study).get(URL.format("exp"), params)
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    assert not response.streaming
    data = response.json()
    named = data.get("error", {}).get("field") if "error" in data else next(iter(data))
    assert named == field, data


def test_generator_of_another_workspace_is_unknown(study):
    other = Workspace.objects.create(name="Other", slug="other")
    foreign = Generator.objects.create(workspace=other, name="theirs")
    client = member_client(study)
    assert client.get(URL.format("exp"), {"generator": "theirs"}).status_code == 400
    assert client.get(URL.format("exp"), {"generator": str(foreign.pk)}).status_code == 400


def test_another_workspaces_study_is_404_and_anonymous_is_refused(study):
    other = build_study(generators=1, items=1, slug="theirs")
    client = member_client(study)
    assert client.get(URL.format("theirs")).status_code == 404
    assert client.get(URL.format("missing")).status_code == 404
    assert Client().get(URL.format("exp")).status_code in {401, 403}
    assert other.slug == "theirs"


def test_superuser_sees_every_study(study):
    client = Client()
    client.force_login(get_user_model().objects.create_superuser(username="root", password="x"))
    assert len(csv_rows(client.get(URL.format("exp")))) == 5


def test_schema_documents_the_export(db):
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    operation = schema["paths"]["/api/v1/studies/{slug}/judgments/"]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert {"format", "generator", "since", "until", "controls"} <= names
    assert {"text/csv", "application/x-ndjson"} <= set(operation["responses"]["200"]["content"])


# ------------------------------------------------------------------------------
# Streaming a large export
# ------------------------------------------------------------------------------
def bulk_judgments(study: Study, *, items: int, annotators: int) -> int:
    """items x annotators judgments in two INSERT ... SELECT statements.

    Each annotator judges every item once (the study's uniqueness rules), on trial
    number (annotator id mod trials of the item): two generators' trials per item and
    a catch trial on every tenth. Model instances would cost tens of microseconds
    each; the database writes these rows by itself, on SQLite and PostgreSQL alike.
    """
    made = Item.objects.bulk_create(
        Item(corpus=study.corpus, key=f"bulk-{i:05d}", caption="c", **_facts("originals/x.png")) for i in range(items)
    )
    gens = list(Generator.objects.filter(workspace=study.workspace).order_by("name"))[:2]
    samples = Sample.objects.bulk_create(
        Sample(generator=g, item=item, seed=0, **_facts("samples/x.png")) for item in made for g in gens
    )
    Trial.objects.bulk_create(
        [Trial(study=study, item=s.item, sample=s, generator=s.generator) for s in samples]
        + [Trial(study=study, item=item, kind=Trial.Kind.CATCH) for item in made[::10]]
    )
    people = Annotator.objects.bulk_create(Annotator(source=Annotator.Source.SIMULATED) for _ in range(annotators))
    token = "md5(a.id || '/' || t.id)::uuid" if connection.vendor == "postgresql" else "lower(hex(randomblob(16)))"
    issued = Assignment._meta.get_field("issued_at").get_db_prep_value(T0, connection)
    expires = Assignment._meta.get_field("expires_at").get_db_prep_value(T0 + timedelta(hours=1), connection)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {Assignment._meta.db_table}
                (token, trial_id, annotator_id, study_id, item_id, reference_side, issued_at, expires_at)
            SELECT {token}, t.id, a.id, %s, t.item_id,
                   CASE WHEN (a.id + t.item_id) %% 2 = 0 THEN 'left' ELSE 'right' END, %s, %s
            FROM {Annotator._meta.db_table} a
            JOIN (SELECT id, item_id, row_number() OVER (PARTITION BY item_id ORDER BY id) - 1 AS r,
                         count(*) OVER (PARTITION BY item_id) AS n
                  FROM {Trial._meta.db_table} WHERE study_id = %s) t ON t.r = a.id %% t.n
            WHERE a.id >= %s AND a.id <= %s
            """,
            [study.pk, issued, expires, study.pk, people[0].pk, people[-1].pk],
        )
        cursor.execute(
            f"""
            INSERT INTO {Judgment._meta.db_table}
                (assignment_id, choice, client_response_ms, server_response_ms, created_at)
            SELECT id, 'left', 800, 900, issued_at FROM {Assignment._meta.db_table} WHERE study_id = %s
            """,
            [study.pk],
        )
        if connection.vendor == "postgresql":
            # Rows written inside the test's transaction, where autovacuum cannot see
            # them: without statistics the planner may take the export's joins for a
            # few rows and nest seq scans (minutes instead of seconds). ANALYZE in the
            # same transaction sees them, as autovacuum would after a real bulk load.
            cursor.execute(
                f"ANALYZE {Item._meta.db_table}, {Sample._meta.db_table}, {Trial._meta.db_table}, "
                f"{Annotator._meta.db_table}, {Assignment._meta.db_table}, {Judgment._meta.db_table}"
            )
    return items * annotators


def test_export_streaming_of_100000_judgments_with_bounded_memory(db):
    study = build_study(generators=2, items=1, slug="big")
    started = time.perf_counter()
    total = bulk_judgments(study, items=500, annotators=200)
    built = time.perf_counter() - started
    assert total == 100_000 and Judgment.objects.filter(assignment__study=study).count() == total
    client = member_client(study)
    # A first request pays for one-off imports and caches, which are not the export's.
    assert body(client.get(URL.format("big"), {"since": "2100-01-01"})).count(b"\n") == 1

    tracemalloc.start()
    try:
        response = client.get(URL.format("big"), {"format": "csv"})
        assert response.status_code == 200 and response.streaming
        size = newlines = 0
        tail = b""
        for chunk in response.streaming_content:
            size += len(chunk)
            newlines += chunk.count(b"\n")
            tail = chunk[-200:]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert newlines == total + 1  # the header and one line per judgment
    assert tail.endswith(b"\r\n") and tail.count(b",") >= len(COLUMNS) - 1
    # The whole export is over 15 MB; what was held at once stays far below it.
    assert size > 15 * 1024 * 1024
    assert peak < 6 * 1024 * 1024, f"peak {peak / 2**20:.1f} MB for a {size / 2**20:.1f} MB export"
    print(f"built {total} judgments in {built:.1f} s; exported {size / 2**20:.1f} MB, peak {peak / 2**20:.2f} MB")
