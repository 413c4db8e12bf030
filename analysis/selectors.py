"""Reads of the analysis: a study's judgments as the numeric columns `analysis.stats` takes.

One query, every column an integer or a float computed in the database (the side of
the probe image, whether it was chosen, the trial kind as a code), fetched in chunks
straight into numpy, so that a study of a million judgments loads in seconds and
without a Python object per field. Practice judgments are never analysed.

Beside the judgments: what their codes stand for (generators with their series and
scale axes, annotators by pseudonym and source), the study's exclusion rules as
`ExclusionRules`, its configuration as plain values for a report, and a fingerprint
that changes whenever a report of the study would.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace

import numpy as np
from django.db.models import Case, Count, F, FloatField, IntegerField, Max, Value, When
from django.db.models.functions import Cast, Coalesce

from analysis.reports import AnnotatorInfo, ReportInput
from analysis.scaling import GeneratorInfo
from analysis.stats import KINDS, ExclusionRules, Judgments
from annotate.models import Annotator, Judgment, Side, Study, Trial
from generation.models import Generator, Item

CHUNK_ROWS = 50_000
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


def _columns():
    kind_code = Case(
        *(When(assignment__trial__kind=name, then=Value(code)) for code, name in enumerate(KINDS)),
        output_field=IntegerField(),
    )
    # The probe image (the sample, the corrupted copy, the second reference) is the one
    # not on the reference's side.
    probe_left = Case(When(assignment__reference_side=Side.RIGHT, then=Value(1)), default=Value(0),
                      output_field=IntegerField())
    chose_probe = Case(When(choice=F("assignment__reference_side"), then=Value(0)), default=Value(1),
                       output_field=IntegerField())
    return (
        Coalesce("assignment__trial__generator_id", Value(-1)),
        "assignment__item_id",
        "assignment__annotator_id",
        probe_left,
        chose_probe,
        kind_code,
        Coalesce(Cast("client_response_ms", FloatField()), Value(-1.0)),
    )


def _analysed(study: Study):
    return Judgment.objects.filter(assignment__study_id=study.pk).exclude(assignment__trial__kind=Trial.Kind.PRACTICE)


def _in_chunks(ids: list[int]):
    for start in range(0, len(ids), IN_CHUNK):
        yield ids[start:start + IN_CHUNK]


def study_data(*, study: Study) -> StudyData:
    """Every analysed judgment of `study` (practice left out), in the order they were made."""
    rows = _analysed(study).order_by("id").values_list(*_columns(), "created_at")
    numeric, times = [], []
    for row in rows.iterator(chunk_size=CHUNK_ROWS):
        numeric.append(row[:7])
        times.append(row[7].timestamp())
    table = np.array(numeric, dtype=np.float64).reshape(-1, 7)
    rt = table[:, 6].copy()
    rt[rt < 0] = np.nan
    judgments = Judgments.build(
        # Control trials have no generator; build() ignores their label.
        generator=table[:, 0].astype(np.int64),
        item=table[:, 1].astype(np.int64),
        annotator=table[:, 2].astype(np.int64),
        generated_left=table[:, 3].astype(bool),
        chose_generated=table[:, 4].astype(bool),
        kind=table[:, 5].astype(np.int8),
        rt_ms=rt,
        time_s=np.array(times, dtype=np.float64),
    )
    # build() reads the generator column as objects (its control rows carry no
    # generator) and so labels generators by their ids as text; ids as numbers here.
    judgments = replace(judgments, generator_labels=tuple(int(label) for label in judgments.generator_labels))
    generator_ids = list(judgments.generator_labels)
    annotator_ids = [int(label) for label in judgments.annotator_labels]
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
        max_fast_share=study.exclude_fast_share_above,
        fast_ms=float(study.fast_response_ms),
        side_bias_alpha=SIDE_BIAS_ALPHA if study.exclude_side_bias else None,
        min_agreement=study.exclude_agreement_below,
    )


CONFIGURATION_FIELDS = (
    "name", "slug", "status", "question", "question_text", "instructions", "judgments_per_trial",
    "catch_rate", "calibration_rate", "quota_per_annotator", "assignment_timeout_seconds", "exposure_ms",
    "break_every", "practice_trials", "presentation_policy",
    "exclude_catch_accuracy_below", "exclude_fast_share_above", "fast_response_ms", "exclude_side_bias",
    "exclude_agreement_below", "target_half_width", "generators_done",
)


def study_configuration(*, study: Study) -> dict:
    """The study's settings as plain JSON values: what a report needs to be reproduced."""
    configuration = {name: getattr(study, name) for name in CONFIGURATION_FIELDS}
    configuration["id"] = study.pk
    configuration["workspace"] = study.workspace.slug
    configuration["corpus"] = {"id": study.corpus_id, "name": study.corpus.name}
    configuration["generators"] = sorted(study.generators.values_list("id", flat=True))
    configuration["created_at"] = study.created_at.isoformat()
    return configuration


def generator_info(generator: Generator) -> GeneratorInfo:
    series = generator.series
    return GeneratorInfo(
        id=generator.pk, name=generator.name, series_id=generator.series_id,
        series=series.name if series is not None else None,
        params=generator.params, train_images=generator.train_images, train_flops=generator.train_flops,
        train_step=generator.train_step, settings=dict(generator.settings or {}), metrics=dict(generator.metrics or {}),
    )


def report_input(*, study: Study, data: StudyData | None = None) -> ReportInput:
    """What `reports.report_from_input` needs of a study, read from the database."""
    data = study_data(study=study) if data is None else data
    judgments = data.judgments
    return ReportInput(
        judgments=judgments,
        generators=tuple(generator_info(data.generators[int(label)]) for label in judgments.generator_labels),
        annotators=tuple(
            AnnotatorInfo(pseudonym=data.pseudonyms[int(label)], source=data.sources[int(label)])
            for label in judgments.annotator_labels
        ),
        configuration=study_configuration(study=study),
        rules=study_rules(study=study),
        target_half_width=study.target_half_width,
    )


def study_judgment_count(*, study: Study) -> int:
    """Analysed judgments of the study (practice left out)."""
    return _analysed(study).count()


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
