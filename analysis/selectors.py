"""Reads of the analysis: a study's judgments as the numeric columns `analysis.stats` takes.

Two queries, every column an integer computed in the database (ids, never names; the
side of the probe image and whether it was chosen packed into one code; the time in
microseconds): one over the study's judgments, one over its trials (generator, kind
and, on a head-to-head trial, the opponent), joined in numpy. Both are read by binary
COPY on PostgreSQL and in blocks of rows elsewhere straight into numpy, without a
Python object per value where the database allows, so that a study of a million
judgments loads in seconds. Practice judgments are never analysed.

Beside the judgments: what their codes stand for (generators with their series and
scale axes, annotators by pseudonym and source, items' metadata fields when a report
asks for one), the study's exclusion rules as
`ExclusionRules`, its configuration as plain values for a report, its provenance
(software version, generators' checkpoints, trial seed, corpus hash), and a
fingerprint that changes whenever a report of the study would.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
from django.db import connections
from django.db.models import BigIntegerField, Case, Count, F, Func, IntegerField, Max, Value, When
from django.db.models.functions import Cast, Coalesce

from analysis.models import ReportRecord
from analysis.reports import AnnotatorInfo, ReportInput
from analysis.scaling import GeneratorInfo
from analysis.stats import KINDS, ExclusionRules, Judgments
from annotate import study_settings
from annotate.models import Annotator, Judgment, Side, Study, Trial
from generation.models import Generator, Item, Sample

CHUNK_ROWS = 50_000
# Bits of the judgment table's flags column: the probe's side and whether it was chosen.
PROBE_LEFT, CHOSE_PROBE = 1, 2
# The kind code of trials never analysed (practice).
NOT_ANALYSED = -1
PGCOPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
# Signature, flags (int32) and header extension length (int32, 0 here).
PGCOPY_HEADER = len(PGCOPY_SIGNATURE) + 8
# Rows per `IN (...)` list: below SQLite's oldest limit on query parameters (999).
IN_CHUNK = 900
# Exclude an annotator's side bias at this family-wise level (Bonferroni over annotators).
SIDE_BIAS_ALPHA = 0.05


@dataclass(frozen=True)
class StudyData:
    """A study's judgments as `Judgments`, and what their codes stand for.

    The generator labels of `judgments` are generator ids, its item labels item ids and
    its annotator labels annotator ids; `generators`, `item_keys`, `pseudonyms` and
    `sources` name them (a report never shows an annotator's database or platform id).
    """

    judgments: Judgments
    generators: dict[int, Generator]
    item_keys: dict[int, str]
    pseudonyms: dict[int, str]
    sources: dict[int, str]

    def generator(self, code: int) -> Generator:
        return self.generators[int(self.judgments.generator_labels[code])]


class EpochMicroseconds(Func):
    """A datetime column as whole microseconds since the Unix epoch (UTC), exactly."""

    arity = 1
    output_field = BigIntegerField()

    def as_postgresql(self, compiler, connection, **extra):
        template = "CAST(EXTRACT(EPOCH FROM %(expressions)s) * 1000000 AS BIGINT)"
        return self.as_sql(compiler, connection, template=template, **extra)

    def as_sqlite(self, compiler, connection, **extra):
        # Django stores a datetime as UTC text 'YYYY-MM-DD HH:MM:SS[.ffffff]'. SQLite's date
        # functions round to milliseconds (41.9996 s becomes 42 s), so they read the whole
        # seconds alone and the fraction is read from the text. '%%%%' is one '%' once both
        # this template and the driver's placeholders are filled.
        template = ("(CAST(strftime('%%%%s', substr(%(expressions)s, 1, 19)) AS INTEGER) * 1000000"
                    " + CAST(round(substr(%(expressions)s, 20, 7) * 1000000) AS INTEGER))")
        return self.as_sql(compiler, connection, template=template, **extra)


def _judgment_columns():
    """Per judgment: trial id, item id, annotator id, flags, client ms (-1 where unknown), microseconds.

    The trial's generator and kind are joined in numpy (`_trial_columns`): a study has
    far fewer trials than judgments, and SQLite spends most of a join on that lookup.
    """
    # The probe image (the sample, the corrupted copy, the second reference) is the one
    # not on the reference's side.
    probe_left = Case(When(assignment__reference_side=Side.RIGHT, then=Value(PROBE_LEFT)), default=Value(0),
                      output_field=IntegerField())
    chose_probe = Case(When(choice=F("assignment__reference_side"), then=Value(0)), default=Value(CHOSE_PROBE),
                       output_field=IntegerField())
    return (
        F("assignment__trial_id"),
        F("assignment__item_id"),
        F("assignment__annotator_id"),
        probe_left + chose_probe,
        Coalesce("client_response_ms", Value(-1)),
        EpochMicroseconds("created_at"),
    )


def _trial_columns():
    """Per trial: id, generator id (-1 on control trials), kind as a code into KINDS (practice: `NOT_ANALYSED`),
    opponent's generator id (-1 but on head-to-head trials)."""
    kind_code = Case(
        *(When(kind=name, then=Value(code)) for code, name in enumerate(KINDS)),
        default=Value(NOT_ANALYSED), output_field=IntegerField(),
    )
    return F("id"), Coalesce("generator_id", Value(-1)), kind_code, Coalesce("opponent_id", Value(-1))


def _analysed(study: Study):
    return Judgment.objects.filter(assignment__study_id=study.pk).exclude(assignment__trial__kind=Trial.Kind.PRACTICE)


def _in_chunks(ids: list[int]):
    for start in range(0, len(ids), IN_CHUNK):
        yield ids[start:start + IN_CHUNK]


def _copy_rows(cursor, sql: str, params, width: int) -> np.ndarray:
    """The rows of a query of `width` non-null BIGINTs, by PostgreSQL's binary COPY.

    Each row of that format is a field count (int16) and, per field, a length (int32)
    and the value (int64), all big-endian, between a header and an int16 trailer.
    """
    row = np.dtype([("fields", ">i2"), ("field", [("size", ">i4"), ("value", ">i8")], (width,))])
    # psycopg's own cursor: Django's debug wrapper (DEBUG=True) passes a COPY no parameters.
    data = bytearray()
    with cursor.cursor.copy(f"COPY ({sql}) TO STDOUT (FORMAT binary)", params) as copy:
        # A block per row: appended as it comes (joining a list of a million blocks is three times slower).
        for block in copy:
            data += block
    body = len(data) - PGCOPY_HEADER - 2
    extension = data[len(PGCOPY_SIGNATURE) + 4:PGCOPY_HEADER]
    if not data.startswith(PGCOPY_SIGNATURE) or extension != bytes(4) or body % row.itemsize:
        raise ValueError("unexpected COPY data: every column must be a non-null BIGINT")
    rows = np.frombuffer(data, dtype=row, count=body // row.itemsize, offset=PGCOPY_HEADER)
    if (rows["fields"] != width).any() or (rows["field"]["size"] != 8).any():
        raise ValueError("unexpected COPY row: every column must be a non-null BIGINT")
    return rows["field"]["value"].astype(np.int64)


def _int_rows(queryset, columns: tuple) -> np.ndarray:
    """(rows, len(columns)) int64: `columns` of `queryset`, each cast to BIGINT in the database.

    Read with a raw cursor, without a Python object per value where the database
    allows: binary COPY on PostgreSQL, blocks of rows straight into numpy elsewhere.
    """
    queryset = queryset.values_list(*(Cast(column, BigIntegerField()) for column in columns))
    sql, params = queryset.query.get_compiler(using=queryset.db).as_sql()
    connection = connections[queryset.db]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            return _copy_rows(cursor, sql, params, len(columns))
        cursor.execute(sql, params)
        blocks = [np.array(rows, dtype=np.int64) for rows in iter(lambda: cursor.fetchmany(CHUNK_ROWS), [])]
    return np.concatenate(blocks) if blocks else np.empty((0, len(columns)), dtype=np.int64)


def study_data(*, study: Study) -> StudyData:
    """Every analysed judgment of `study` (practice left out), in the order they were made.

    Every generator of the study has a code, judged or not (a generator not judged
    yet is reported with n = 0), and so has any generator judged in it since removed.
    """
    made = Judgment.objects.filter(assignment__study_id=study.pk).order_by("id")
    trial, item, annotator, flags, rt, time_us = _int_rows(made, _judgment_columns()).T
    trials = _int_rows(Trial.objects.filter(study_id=study.pk).order_by("id"), _trial_columns())
    of_trial = np.searchsorted(trials[:, 0], trial)
    kind = trials[of_trial, 2]
    analysed = kind != NOT_ANALYSED
    judgments = Judgments.build(
        generator=trials[of_trial, 1][analysed],
        item=item[analysed],
        annotator=annotator[analysed],
        generated_left=(flags[analysed] & PROBE_LEFT) > 0,
        chose_generated=(flags[analysed] & CHOSE_PROBE) > 0,
        kind=kind[analysed].astype(np.int8),
        rt_ms=np.where(rt < 0, np.nan, rt)[analysed],
        # Exactly datetime.timestamp(): an integer over 10**6, rounded once.
        time_s=time_us[analysed] / 1e6,
        # The trial stands for its sample: a study builds one trial per sample it judges.
        sample=trial[analysed],
        opponent=trials[of_trial, 3][analysed],
        generators=list(study.generators.values_list("id", flat=True)),
    )
    generator_ids = list(judgments.generator_labels)
    annotator_ids = list(judgments.annotator_labels)
    pseudonyms, sources = {}, {}
    for chunk in _in_chunks(annotator_ids):
        for pk, pseudonym, source in Annotator.objects.filter(pk__in=chunk).values_list("id", "pseudonym", "source"):
            pseudonyms[pk] = str(pseudonym)
            sources[pk] = source
    generators = {}
    for chunk in _in_chunks(generator_ids):
        generators.update(Generator.objects.select_related("series").in_bulk(chunk))
    return StudyData(
        judgments=judgments,
        generators=generators,
        item_keys=dict(Item.objects.filter(corpus_id=study.corpus_id).values_list("id", "key")),
        pseudonyms=pseudonyms,
        sources=sources,
    )


def study_rules(*, study: Study) -> ExclusionRules:
    """The study's exclusion settings as `ExclusionRules` (a blank threshold switches its rule off)."""
    return ExclusionRules(
        min_catch_accuracy=study.exclude_catch_accuracy_below,
        min_catch_trials=study.min_catch_trials,
        max_fast_share=study.exclude_fast_share_above,
        fast_ms=float(study.fast_response_ms),
        side_bias_alpha=SIDE_BIAS_ALPHA if study.exclude_side_bias else None,
        min_agreement=study.exclude_agreement_below,
    )


# A report's configuration: the study's settings (`study_settings`, those `in_report`),
# what names it, and what the analysis wrote on it.
CONFIGURATION_FIELDS = (
    "name", "slug", "status", *(setting.name for setting in study_settings.SETTINGS if setting.in_report),
    "generators_done",
)


def study_configuration(*, study: Study) -> dict:
    """The study's settings as plain JSON values: what a report needs to be reproduced."""
    configuration = {name: getattr(study, name) for name in CONFIGURATION_FIELDS}
    configuration["id"] = study.pk
    configuration["workspace"] = study.workspace.slug
    configuration["corpus"] = {"id": study.corpus_id, "name": study.corpus.name}
    configuration["generators"] = sorted(study.generators.values_list("id", flat=True))
    # When each generator joined a running study (none for those there from the start)
    # and every addition and removal, oldest first.
    joined = {}
    for event in study.generator_history or ():
        if event["event"] == "added":
            joined[str(event["generator"])] = event["at"]
    configuration["generators_joined"] = joined
    configuration["generator_history"] = list(study.generator_history or ())
    configuration["item_selection"] = dict(study.item_selection or {})
    configuration["created_at"] = study.created_at.isoformat()
    return configuration


# The installed distribution whose version a report names (pyproject.toml's [project] name).
DISTRIBUTION = "parity"
# What names a generator's checkpoint in its backend's options, per backend.
CHECKPOINT_OPTIONS = {"builtin": "checkpoint", "diffusers": "path", "callable": "function"}
# Read checkpoints in blocks of this many bytes.
HASH_BLOCK = 1 << 20
# sha256 of checkpoint files already read, by (path, size, modification time).
_checkpoint_hashes: dict[tuple[str, int, int], str] = {}


def software_version() -> str | None:
    """The installed project's version (None where it is not installed as a distribution)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return None


def _file_sha256(path: Path) -> str | None:
    """sha256 of a file's bytes, read once per size and modification time; None where unreadable."""
    try:
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key not in _checkpoint_hashes:
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(HASH_BLOCK), b""):
                    digest.update(block)
            _checkpoint_hashes[key] = digest.hexdigest()
        return _checkpoint_hashes[key]
    except OSError:
        return None


def _checkpoint(generator: Generator) -> dict:
    """The generator's checkpoint as its backend names it, and the sha256 of the file
    where it is one file this machine can read (the built-in backend's)."""
    option = CHECKPOINT_OPTIONS.get(generator.backend)
    name = (generator.backend_config or {}).get(option) if option else None
    sha = None
    if generator.backend == "builtin" and isinstance(name, str):
        from generation.backends.builtin import checkpoint_path
        from generation.errors import BackendError

        try:
            path = checkpoint_path(name)
        except BackendError:
            path = None
        sha = _file_sha256(path) if path is not None and path.is_file() else None
    return {"checkpoint": name if isinstance(name, str) else None, "checkpoint_sha256": sha}


def _lines_sha256(lines) -> str:
    digest = hashlib.sha256()
    for line in sorted(lines):
        digest.update(line.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def study_provenance(*, study: Study, generator_ids=()) -> dict:
    """What a report of `study` was made from and with, as plain JSON values.

    software: the installed project's version. trial_seed: the seed of the study's
    trial build (`Study.trial_seed`). corpus: the items its trials use (practice
    included) and the sha256 over their sorted "key TAB image-sha256" lines.
    generators (the study's and `generator_ids`, by id): the backend, the checkpoint
    its options name with the file's sha256 where this machine can read it (the
    built-in backend's; null otherwise: the model has no hash field), and, for the
    samples the study's trials show, their count and the sha256 over their sorted
    "item-key TAB seed TAB image-sha256" lines (for an uploaded generator, the hash
    of what was uploaded and used).
    """
    items = Item.objects.filter(trials__study_id=study.pk).distinct().values_list("key", "sha256")
    item_lines = [f"{key}\t{sha}" for key, sha in items]
    ids = set(study.generators.values_list("id", flat=True)) | {int(pk) for pk in generator_ids}
    samples: dict[int, list[str]] = {pk: [] for pk in ids}
    used = (Trial.objects.filter(study_id=study.pk, kind=Trial.Kind.GENERATED, sample__isnull=False)
            .values_list("generator_id", "sample__item__key", "sample__seed", "sample__sha256"))
    for generator_id, key, seed, sha in used.iterator():
        samples.setdefault(generator_id, []).append(f"{key}\t{seed}\t{sha}")
    generators = []
    for generator in Generator.objects.filter(pk__in=list(samples)).order_by("pk"):
        lines = samples[generator.pk]
        generators.append({
            "id": generator.pk, "name": generator.name, "backend": generator.backend, **_checkpoint(generator),
            "samples": len(lines), "samples_sha256": _lines_sha256(lines),
        })
    return {
        "software": {"name": DISTRIBUTION, "version": software_version()},
        "trial_seed": study.trial_seed,
        "corpus": {"id": study.corpus_id, "name": study.corpus.name, "items": len(item_lines),
                   "items_sha256": _lines_sha256(item_lines)},
        "generators": generators,
    }


def generator_info(generator: Generator, *, blank_samples: int = 0) -> GeneratorInfo:
    series = generator.series
    return GeneratorInfo(
        id=generator.pk, name=generator.name, series_id=generator.series_id,
        series=series.name if series is not None else None,
        params=generator.params, train_images=generator.train_images, train_flops=generator.train_flops,
        train_step=generator.train_step, settings=dict(generator.settings or {}), metrics=dict(generator.metrics or {}),
        blank_samples=blank_samples,
    )


def blank_samples(*, study: Study, generator_ids) -> dict[int, int]:
    """Blank or near-constant samples of the study's corpus, per generator (those with any)."""
    return dict(Sample.objects.filter(item__corpus_id=study.corpus_id, generator_id__in=list(generator_ids),
                                      blank=True).values("generator_id").annotate(n=Count("id"))
                .values_list("generator_id", "n"))


def item_meta_reader(item_ids) -> Callable[[str], list]:
    """`ReportInput.item_values` for the items `item_ids` (item codes' labels): one field's
    value per item, None where an item lacks it.

    The items' metadata are read on the first field asked, never when no report breaks
    down by one (most reports), and once for all the fields of a report. Whole dicts
    rather than one key per query: any key, however odd its characters, reads the same
    on every database.
    """
    ids = [int(pk) for pk in item_ids]
    metas: dict[int, dict] = {}

    def read(name: str) -> list:
        if ids and not metas:
            for chunk in _in_chunks(ids):
                metas.update(Item.objects.filter(pk__in=chunk).values_list("id", "meta"))
        return [meta.get(name) if isinstance(meta := metas.get(pk), dict) else None for pk in ids]

    return read


def report_input(*, study: Study, data: StudyData | None = None) -> ReportInput:
    """What `reports.report_from_input` needs of a study, read from the database."""
    data = study_data(study=study) if data is None else data
    judgments = data.judgments
    blank = blank_samples(study=study, generator_ids=data.generators)
    return ReportInput(
        judgments=judgments,
        generators=tuple(generator_info(data.generators[int(label)], blank_samples=blank.get(int(label), 0))
                         for label in judgments.generator_labels),
        annotators=tuple(
            AnnotatorInfo(pseudonym=data.pseudonyms[int(label)], source=data.sources[int(label)])
            for label in judgments.annotator_labels
        ),
        configuration=study_configuration(study=study),
        rules=study_rules(study=study),
        target_half_width=study.target_half_width,
        provenance=study_provenance(study=study, generator_ids=data.generators),
        item_values=item_meta_reader(judgments.item_labels),
    )


def study_fingerprint(*, study: Study, extra: object = None) -> tuple[str, int]:
    """A digest that changes whenever a report of the study would, and the judgment count.

    It covers the analysed judgments (count and latest id: judgments are append-only),
    the study's settings, its generators' names, series, scale axes, inference
    settings and metrics, and `extra` (the report's options and version). Not
    `generators_done`, which a report build itself writes.
    """
    seen = _analysed(study).aggregate(n=Count("id"), last=Max("id"))
    generators = list(
        study.generators.order_by("pk").values_list(
            "pk", "name", "series_id", "series__name", "params", "train_images", "train_flops", "train_step",
            "settings", "metrics",
        )
    )
    configuration = study_configuration(study=study)
    del configuration["generators_done"]
    parts = [seen["n"], seen["last"], configuration, generators, extra]
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
    return digest, seen["n"]


# How many of a study's newest kept reports its page lists (every frozen one besides).
PAGE_RECORDS = 10


def report_records_for_page(*, study: Study) -> list:
    """The study's newest kept reports and every frozen one, newest first (`models.ReportRecord`)."""
    records = ReportRecord.objects.filter(study=study).select_related("frozen_by").order_by("-built_at", "-id")
    newest = list(records[:PAGE_RECORDS])
    shown = {record.pk for record in newest}
    frozen = [record for record in records.filter(frozen_at__isnull=False) if record.pk not in shown]
    return sorted(newest + frozen, key=lambda record: (record.built_at, record.pk), reverse=True)
