"""The judgments export (annotate/exports.py) through GET /api/v1/studies/<slug>/judgments/.

The tests that use the `study` fixture run with DEBUG off (production) and on (`make
run`), where Django formats the text of every query it runs. The whole module runs on
the suite's database and, from a PostgreSQL run such as CI's, once more on SQLite
(`test_the_export_tests_pass_on_sqlite_too`): the export writes vendor-specific SQL.
"""

import csv
import http.client
import io
import json
import os
import socket
import subprocess
import sys
import time
import tracemalloc
import urllib.parse
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import OperationalError, connection
from django.test import Client

from annotate import exports
from annotate.exports import COLUMNS
from annotate.models import Annotator, Assignment, Judgment, Side, Study, Trial
from generation.models import Generator, Item, Sample
from parity.tokens import token_create
from tests.annotate.builders import _facts, build_study
from tests.conftest import service_missing
from workspaces.models import Membership, Workspace

URL = "/api/v1/studies/{}/judgments/"
REPO = Path(__file__).resolve().parents[2]
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


@pytest.fixture(params=[False, True], ids=["debug-off", "debug-on"])
def debug(request, settings) -> bool:
    settings.DEBUG = request.param
    return request.param


@pytest.fixture
def study(db, debug):
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


# ------------------------------------------------------------------------------
# A failure part-way
# ------------------------------------------------------------------------------
def lose_the_database_after(monkeypatch, chunks: int) -> None:
    """The export's rows come two to a chunk and the database is lost after `chunks`
    chunks, as when a connection drops in the middle of a long export."""
    fetch = exports._chunks

    def chunks_then_lost(study, filters):
        source = fetch(study, filters)
        for _ in range(chunks):
            yield next(source)
        source.close()
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(exports, "CHUNK_ROWS", 2)
    monkeypatch.setattr(exports, "_chunks", chunks_then_lost)


def assert_ends_with_the_failure_line(received: bytes, file_format: str) -> None:
    """Two judgments, then the error line: what a reader of the file cannot take for data."""
    assert received.endswith(exports.FAILURE_LINES[file_format])
    text = received.decode()
    if file_format == "csv":
        header, *rows, last = list(csv.reader(io.StringIO(text)))
        assert header == list(COLUMNS) and [len(row) for row in rows] == [len(COLUMNS)] * 2
        assert len(last) == 1 and last[0].startswith("ERROR: the export failed")
    else:
        *rows, last = [json.loads(line) for line in text.splitlines()]
        assert [tuple(row) for row in rows] == [COLUMNS] * 2
        assert last["error"]["code"] == "export_failed" and "incomplete" in last["error"]["message"]


@pytest.mark.parametrize("file_format", ["csv", "jsonl"])
def test_a_failure_part_way_ends_the_file_with_an_error_line_and_raises(study, monkeypatch, file_format):
    lose_the_database_after(monkeypatch, 1)
    response = member_client(study).get(URL.format("exp"), {"format": file_format})
    assert response.status_code == 200 and response.streaming
    received = []
    # Raised to the server, which then drops a chunked response without its last chunk.
    with pytest.raises(OperationalError):
        for chunk in response.streaming_content:
            received.append(chunk)
    assert_ends_with_the_failure_line(b"".join(received), file_format)


@pytest.mark.parametrize("file_format", ["csv", "jsonl"])
def test_an_export_that_cannot_start_is_an_error_response_not_an_empty_file(study, monkeypatch, file_format):
    lose_the_database_after(monkeypatch, 0)
    client = member_client(study)
    client.raise_request_exception = False
    response = client.get(URL.format("exp"), {"format": file_format})
    assert response.status_code == 500 and not response.streaming


def member_token(study: Study) -> str:
    user = get_user_model().objects.create_user(username="exporter", password="x")
    Membership.objects.create(workspace=study.workspace, user=user, role=Membership.Role.VIEWER)
    return token_create(user=user, name="export")[1]


@pytest.mark.parametrize("file_format", ["csv", "jsonl"])
def test_behind_runserver_the_body_ends_with_the_error_line(study, live_server, monkeypatch, file_format):
    """runserver (`make run`) ends a streamed body by closing the connection, so a
    client reads to the end without an error: the last line is what tells."""
    lose_the_database_after(monkeypatch, 1)
    address = urllib.parse.urlsplit(live_server.url)
    conn = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    conn.request("GET", f"{URL.format('exp')}?format={file_format}",
                 headers={"Authorization": f"Bearer {member_token(study)}"})
    response = conn.getresponse()
    assert response.status == 200 and response.getheader("Connection") == "close"
    assert_ends_with_the_failure_line(response.read(), file_format)
    conn.close()


def database_url() -> str:
    """The test database, for a server in another process."""
    db = connection.settings_dict
    credentials = urllib.parse.quote(db["USER"], safe="")
    if db["PASSWORD"]:
        credentials += ":" + urllib.parse.quote(db["PASSWORD"], safe="")
    return f"postgresql://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_behind_gunicorn_a_connection_lost_part_way_is_a_truncated_transfer(transactional_db, tmp_path):
    """gunicorn with the project's conf streams the export in chunks; PostgreSQL ends the
    worker's connection part-way (pg_terminate_backend). The client reads the rows, the
    error line, and then a transfer that stops before its final chunk."""
    if connection.vendor != "postgresql":
        service_missing("this test needs PostgreSQL: the server must lose its database connection")
    study = build_study(generators=2, items=1, slug="big")
    bulk_judgments(study, items=500, annotators=200)  # about 16 MB of CSV
    token = member_token(study)
    port = free_port()
    configured = ("PARITY_", "DJANGO_", "DATABASE_", "CELERY_", "GUNICORN_")
    env = {name: value for name, value in os.environ.items() if not name.startswith(configured)} | {
        "DATABASE_URL": database_url(), "DJANGO_DEBUG": "0", "PARITY_VAR_DIR": str(tmp_path / "var"),
        "CELERY_BROKER_URL": "memory://", "WEB_CONCURRENCY": "1", "GUNICORN_THREADS": "1", "HOME": str(tmp_path),
    }
    web = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "parity.wsgi", "-c", "platform/gunicorn.conf.py",
         "--bind", f"127.0.0.1:{port}"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert web.poll() is None, web.stdout.read()
            assert time.monotonic() < deadline, "gunicorn did not answer /healthz"
            try:
                probe = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                probe.request("GET", "/healthz")
                if probe.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.2)
        # A small receive window: the server fills it and the kernel's send buffer (a few
        # MB), then waits with most of the export still to fetch.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.connect(("127.0.0.1", port))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.sock = sock
        conn.request("GET", f"{URL.format('big')}?format=csv", headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        assert response.status == 200 and response.getheader("Transfer-Encoding") == "chunked"
        received = response.read(64 * 1024)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()")
            assert cursor.fetchall(), "no connection of the server to end"
        with pytest.raises(http.client.IncompleteRead) as truncated:
            response.read()
        received += truncated.value.partial
        conn.close()
    finally:
        web.terminate()
        try:
            log, _ = web.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            web.kill()
            log, _ = web.communicate()
    assert received.startswith(",".join(COLUMNS).encode() + b"\r\n")
    assert received.endswith(b"\r\n" + exports.FAILURE_LINES["csv"])
    assert 0 < received.count(b"\n") - 2 < 100_000  # some judgments, not all
    assert "export of study big (csv) failed part-way" in log


# ------------------------------------------------------------------------------
# The other database
# ------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_export_tests_pass_on_sqlite_too(tmp_path):
    """From a run on PostgreSQL, this module once more on SQLite, in a process of its own
    (the database is chosen once per process). Tests that need PostgreSQL skip there:
    they ran here."""
    if connection.vendor == "sqlite":
        pytest.skip("this run is on SQLite: the module's tests ran on it")
    env = {name: value for name, value in os.environ.items() if name != "PARITY_REQUIRE_SERVICES"}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'parity.sqlite3'}"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider", "-k", "not sqlite_too"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
