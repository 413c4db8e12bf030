"""Raw judgments of a study as CSV or JSONL, streamed in constant memory.

One row per judgment, in judgment id order, read with one query (joins, no N+1)
through `QuerySet.iterator()`: a server-side cursor on PostgreSQL, `fetchmany()` on
SQLite, so a study of millions of judgments never sits in memory. Rows are written
a chunk at a time into a small buffer, and each chunk leaves as one bytes object.

Practice judgments are never exported (they are feedback, not data).

Columns, in this order (stable names; the same keys in JSONL):

=================== ============================================================
judgment            the judgment's id (the export's order; a key for de-duplication)
study               the study's slug
trial               the trial's id
kind                generated, catch, calibration or head_to_head
generator           the generator's name; empty (JSON null) for control trials
generator_id        the generator's id; empty (JSON null) for control trials
item_key            the item's key in its corpus
reference_side      left or right: the side the real image was shown on; on a
                    head-to-head trial, the side of the opponent's sample
choice              left or right: the side the annotator picked
chose_generated     true/false on generated and head-to-head trials (the generator's
                    image was picked); empty (JSON null) for control trials
client_response_ms  response time measured in the browser; empty (null) if not sent
server_response_ms  response time measured on the server, from when the trial was shown
annotator           the annotator's pseudonym (a UUID): never a database or platform id
issued_at           when the trial was issued to the annotator, ISO 8601 in UTC
judged_at           when the judgment was recorded, ISO 8601 in UTC
simulated           true/false: the annotator is simulated (manage.py
                    simulate_annotators), not a person
opponent            on a head-to-head trial the other generator's name; else empty (null)
opponent_id         on a head-to-head trial the other generator's id; else empty (null)
=================== ============================================================

In CSV, a generator name or item key that begins with ``=``, ``+``, ``-``, ``@``, a tab
or a carriage return gets a leading ``'``, so that a spreadsheet opening the file shows
it as text instead of running it as a formula (CSV injection); JSONL carries every
value exactly.

Timestamps carry microseconds and a ``+00:00`` offset. In CSV every value is text
(``true``/``false`` for chose_generated and simulated); in JSONL ids and times are
numbers, chose_generated and simulated are booleans, and empty values are null.

Filters (`ExportFilters`): generators (keeps the generated and head-to-head trials of these,
a head-to-head trial where either of its generators is named;
control trials are governed by `controls` alone), since (judged_at >= since,
inclusive), until (judged_at < until, exclusive), controls (``include`` the
default, ``exclude``, or ``only``).

An export that fails can never pass for a whole file. `export_stream` makes the first
chunk (the CSV header leaves with the first rows) before the response starts, so a
failure there is an error response, not a 200 with an empty file. A failure after
that ends the body with `FAILURE_LINES` (in CSV a one-field row, in JSONL an
``{"error": ...}`` object: neither has the columns of a judgment) and raises again, so
that a server sending chunks (gunicorn) drops the connection without the final empty
chunk: HTTP clients report a truncated transfer (curl exits with code 18). Behind
runserver (`make run`), whose bodies end when the connection closes, that last line
is the only sign.
"""

import csv
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import islice

from django.db.models import CharField, Func, Q

from annotate.models import CONTROL_KINDS, Annotator, Judgment, Study, Trial

COLUMNS = (
    "judgment",
    "study",
    "trial",
    "kind",
    "generator",
    "generator_id",
    "item_key",
    "reference_side",
    "choice",
    "chose_generated",
    "client_response_ms",
    "server_response_ms",
    "annotator",
    "issued_at",
    "judged_at",
    "simulated",
    "opponent",
    "opponent_id",
)
CONTROLS = ("include", "exclude", "only")
FORMATS = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "jsonl": ("application/x-ndjson", "jsonl"),
}
# Rows per database fetch and per chunk of output: about 0.4 MB of CSV. Large enough
# that per-chunk overhead vanishes, small enough that memory stays flat.
CHUNK_ROWS = 2000
_FAILED = "the export failed part-way: this file is incomplete (download it again)"
# The last line of an export that failed part-way (module docstring).
FAILURE_LINES = {
    "csv": f"ERROR: {_FAILED}\r\n".encode(),
    "jsonl": (json.dumps({"error": {"code": "export_failed", "message": _FAILED}}) + "\n").encode(),
}

log = logging.getLogger(__name__)


class IsoUTC(Func):
    """A timestamp as ISO 8601 text in UTC with microseconds, formatted by the database.

    Parsing timestamps into datetimes and formatting them back costs more than the
    rest of a row put together (psycopg's tz-aware loader under Django is Python
    code); the database does it in C, on another core.
    """

    output_field = CharField()

    def as_sql(self, compiler, connection, **extra_context):
        template = "to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')"
        return super().as_sql(compiler, connection, template=template, **extra_context)

    def as_sqlite(self, compiler, connection, **extra_context):
        # Stored as naive UTC text, "YYYY-MM-DD HH:MM:SS[.ffffff]" (no fraction when zero).
        # strftime's format is a parameter: in the SQL, its % signs would meet Python's
        # % formatting where Django logs the query with DEBUG on (`sql % params`).
        column, params = compiler.compile(self.source_expressions[0])
        sql = f"(strftime(%s, {column}) || substr({column} || '.000000', 20, 7) || '+00:00')"
        return sql, ("%Y-%m-%dT%H:%M:%S", *params, *params)


class UuidText(Func):
    """A UUID as its canonical text (lowercase, hyphenated), made by the database."""

    output_field = CharField()

    def as_sql(self, compiler, connection, **extra_context):
        return super().as_sql(compiler, connection, template="(%(expressions)s)::text", **extra_context)

    def as_sqlite(self, compiler, connection, **extra_context):
        # Stored as 32 hex digits without hyphens.
        template = (
            "(substr(%(expressions)s, 1, 8) || '-' || substr(%(expressions)s, 9, 4) || '-' "
            "|| substr(%(expressions)s, 13, 4) || '-' || substr(%(expressions)s, 17, 4) || '-' "
            "|| substr(%(expressions)s, 21, 12))"
        )
        return super().as_sql(compiler, connection, template=template, **extra_context)


def _fields() -> tuple:
    return (
        "id",
        "assignment__trial_id",
        "assignment__trial__kind",
        "assignment__trial__generator__name",
        "assignment__trial__generator_id",
        "assignment__item__key",
        "assignment__reference_side",
        "choice",
        "client_response_ms",
        "server_response_ms",
        UuidText("assignment__annotator__pseudonym"),
        IsoUTC("assignment__issued_at"),
        IsoUTC("created_at"),
        "assignment__annotator__source",
        "assignment__trial__opponent__name",
        "assignment__trial__opponent_id",
    )


_GENERATED = Trial.Kind.GENERATED.value
# Kinds where a generator's image was judged: chose_generated is true or false.
_JUDGED = frozenset((_GENERATED, Trial.Kind.HEAD_TO_HEAD.value))
_SIMULATED = Annotator.Source.SIMULATED.value


@dataclass(frozen=True)
class ExportFilters:
    """Which judgments of a study to export; the defaults export them all."""

    generator_ids: tuple[int, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    controls: str = "include"

    def __post_init__(self) -> None:
        if self.controls not in CONTROLS:
            raise ValueError(f"controls={self.controls!r}: use one of {', '.join(CONTROLS)}")


def judgments_for_export(*, study: Study, filters: ExportFilters = ExportFilters()):
    """The query behind an export: one values_list with joins, in judgment id order."""
    generated = Q(assignment__trial__kind__in=_JUDGED)
    if filters.generator_ids:
        generated &= Q(assignment__trial__generator_id__in=filters.generator_ids) | Q(
            assignment__trial__opponent_id__in=filters.generator_ids)
    controls = Q(assignment__trial__kind__in=[kind.value for kind in CONTROL_KINDS])
    kinds = {"include": generated | controls, "exclude": generated, "only": controls}[filters.controls]
    judgments = Judgment.objects.filter(kinds, assignment__study_id=study.pk)
    if filters.since is not None:
        judgments = judgments.filter(created_at__gte=filters.since)
    if filters.until is not None:
        judgments = judgments.filter(created_at__lt=filters.until)
    return judgments.order_by("id").values_list(*_fields())


def _chunks(study: Study, filters: ExportFilters) -> Iterator[list[tuple]]:
    rows = judgments_for_export(study=study, filters=filters).iterator(chunk_size=CHUNK_ROWS)
    while chunk := list(islice(rows, CHUNK_ROWS)):
        yield chunk
        # Dropped before the next fetch, so that two chunks never coexist.
        del chunk


def export_rows(*, study: Study, filters: ExportFilters = ExportFilters()) -> Iterator[tuple]:
    """Typed rows in `COLUMNS` order: ints, strings, a bool or None, ISO 8601 strings."""
    slug = study.slug
    for chunk in _chunks(study, filters):
        for jid, trial, kind, gname, gid, key, ref, choice, cms, sms, who, issued, judged, source, oname, oid \
                in chunk:
            yield (
                jid, slug, trial, kind, gname, gid, key, ref, choice,
                (choice != ref) if kind in _JUDGED else None,
                cms, sms, who, issued, judged, source == _SIMULATED, oname, oid,
            )


# What a spreadsheet takes for the start of a formula (OWASP, "CSV Injection").
_FORMULA_START = frozenset("=+-@\t\r")


def _as_text(value: str | None) -> str | None:
    return "'" + value if value and value[0] in _FORMULA_START else value


class _Lines(list):
    """Where the CSV writer puts each formatted line. A StringIO would keep a buffer of
    four bytes per character of its largest chunk, never shrunk by truncate()."""

    write = list.append


def export_csv(*, study: Study, filters: ExportFilters = ExportFilters()) -> Iterator[bytes]:
    """The export as CSV (RFC 4180, UTF-8, a header line), one bytes chunk per `CHUNK_ROWS` rows.

    The header leaves with the first rows, so that the first chunk needs the query to work.
    """
    lines = _Lines()
    writer = csv.writer(lines)
    writer.writerow(COLUMNS)
    slug = study.slug
    verdict = {True: "true", False: "false"}
    start = _FORMULA_START
    for chunk in _chunks(study, filters):
        writer.writerows(
            (
                jid, slug, trial, kind, _as_text(gname), gid, ("'" + key) if key[:1] in start else key, ref, choice,
                verdict[choice != ref] if kind in _JUDGED else "",
                cms, sms, who, issued, judged, verdict[source == _SIMULATED], _as_text(oname), oid,
            )
            for jid, trial, kind, gname, gid, key, ref, choice, cms, sms, who, issued, judged, source, oname, oid
            in chunk
        )
        del chunk
        text = "".join(lines)
        lines.clear()
        yield text.encode()
    if lines:  # no rows: the header alone
        yield lines.pop().encode()


def export_jsonl(*, study: Study, filters: ExportFilters = ExportFilters()) -> Iterator[bytes]:
    """The export as JSON Lines: one object per judgment with the `COLUMNS` keys."""
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    rows = export_rows(study=study, filters=filters)
    while chunk := list(islice(rows, CHUNK_ROWS)):
        lines = "".join([dumps(dict(zip(COLUMNS, row))) + "\n" for row in chunk])
        del chunk
        yield lines.encode()


WRITERS = {"csv": export_csv, "jsonl": export_jsonl}


def export_stream(*, study: Study, filters: ExportFilters, file_format: str) -> Iterator[bytes]:
    """The chunks of the export in `file_format` (a key of `FORMATS`), the first one made now.

    A failure from here on ends the stream with the format's `FAILURE_LINES` and is
    raised again (module docstring).
    """
    chunks = WRITERS[file_format](study=study, filters=filters)
    # JSONL without rows has no chunk at all.
    first = next(chunks, None)
    return _ended_by_failure_line(first, chunks, study=study, file_format=file_format)


def _ended_by_failure_line(
    first: bytes | None, chunks: Iterator[bytes], *, study: Study, file_format: str
) -> Iterator[bytes]:
    if first is None:
        return
    yield first
    try:
        yield from chunks
    except Exception:
        log.exception("export of study %s (%s) failed part-way", study.slug, file_format)
        yield FAILURE_LINES[file_format]
        raise
