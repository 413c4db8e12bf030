"""Writes of the analysis: the planning hook on a study, and the stored last report.

Planning (ARCHITECTURE.md: analysis writes plain values onto annotate's models, the
assignment engine only reads them): for a study with a target half-width, every
report build and the periodic `tasks.plan_update_open_studies_task` write
`Study.generators_done`, the ids of generators whose interval is already narrow
enough (`stats.generators_done`: at most the target with at least 100 judgments).
The engine stops serving them. The list is recomputed from scratch each time, so a
generator whose interval widens again (an exclusion rule changed) is served again.
A study without a target is left as it is.

Head-to-head pairs, the same way: for an open study that serves the `uncertain`
pairs (`Study.head_to_head_pairs`, with a positive `head_to_head_share`), every
report build and the periodic update rank the pairs of its generators by how much
in doubt their order is on the Bradley-Terry scale (`stats.pairs.uncertain_pairs`)
and hand the top G - 1 (at least one) to `annotate.services.studies.
study_head_to_head_pairs_write`, which sets `Study.head_to_head_active` and builds
their missing head-to-head trials.

Stored reports (`models.ReportSnapshot`): the study page and the API serve the last
report while its fingerprint (`selectors.study_fingerprint`) still matches, and both
ask `report_delivery` what to do otherwise: build it during the request for a small
study, ask a worker for a large one (`report_snapshot_request`). A snapshot holds
each of `STORED_FORMATS`; its fingerprint covers that list, so a snapshot stored
before a format was added is stale once and rebuilt, never served without it.

Reports broken down by other fields than the study's (`study_report_by`, the API's
`?by=`) are built during the request and stored nowhere.

History (`models.ReportRecord`): every successful build also appends a record, with
the content hash of its JSON (`report_content_hash`), and empties the content of the
study's unfrozen records past the newest `PARITY_REPORT_HISTORY_KEEP`
(`report_records_prune`); `report_record_freeze` keeps one for good.

Work for a worker goes through `task_send`, by the task's name: `analysis.tasks`
imports this module, so this module never imports it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from http import HTTPStatus

from celery import current_app
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from analysis import selectors
from analysis.categories import fields_for
from analysis.category_exports import report_categories_csv
from analysis.exports import report_csv, report_json_text
from analysis.models import ReportRecord, ReportSnapshot
from analysis.report_html import report_pages
from analysis.reports import REPORT_VERSION, Report, ReportOptions, analyse, report_from_input, study_bradley_terry
from analysis.stats import BradleyTerry, generators_done
from analysis.stats.pairs import uncertain_pairs
from annotate.models import Study
from annotate.services.studies import study_head_to_head_pairs_write
from workspaces.errors import ParityError

log = logging.getLogger(__name__)

# Options of stored reports (the page's panel and API downloads). The CLI may choose others.
STORED_OPTIONS = ReportOptions()
# An error message short enough for one line of an API answer.
ERROR_LINE_CHARS = 300
# The formats every stored report holds (`ReportSnapshot`), part of its fingerprint.
STORED_FORMATS = ("json", "csv", "html", "csv-categories")


def task_send(*, name: str, args: tuple = ()) -> None:
    """Send the task `analysis.tasks.<name>` with `args` once the current transaction commits.

    By name, through the Celery app: the tasks module imports this one, so importing it
    here would close a cycle. After the commit, so that a worker reads what the request wrote.
    """
    transaction.on_commit(lambda: current_app.send_task(f"analysis.tasks.{name}", args=args))


def study_generators_done_write(*, study: Study, done_ids) -> bool:
    """Set `Study.generators_done` to `done_ids` (sorted); True when it changed.

    One UPDATE of that column alone, so a concurrent change of the study's other
    fields is never overwritten.
    """
    done = sorted(int(pk) for pk in done_ids)
    if sorted(study.generators_done or []) == done:
        return False
    Study.objects.filter(pk=study.pk).update(generators_done=done)
    study.generators_done = done
    log.info("study %s: generators done %s", study.slug, done)
    return True


def serves_uncertain_pairs(study: Study) -> bool:
    """The study is open and serves the head-to-head pairs the analysis picks."""
    return (study.status == Study.Status.OPEN and (study.head_to_head_share or 0) > 0
            and study.head_to_head_pairs == Study.Pairs.UNCERTAIN)


def study_head_to_head_update(*, study: Study, bt: BradleyTerry | None) -> list[list[int]] | None:
    """Serve the pairs of the study's generators whose order is most in doubt (module
    docstring); the pairs written, or None where the study does not serve uncertain
    pairs or nothing is judged yet."""
    if bt is None or not serves_uncertain_pairs(study):
        return None
    members = set(study.generators.values_list("id", flat=True))
    if len(members) < 2:
        return None
    ranked = uncertain_pairs(bt, len(bt.labels) ** 2)
    pairs = [[int(a), int(b)] for a, b in ranked if int(a) in members and int(b) in members]
    pairs = pairs[:max(1, len(members) - 1)]
    built = study_head_to_head_pairs_write(study=study, pairs=pairs)
    log.info("study %s: head-to-head pairs %s (%d trials built)", study.slug, pairs, built)
    return pairs


def study_report(
    *,
    study: Study,
    options: ReportOptions = STORED_OPTIONS,
    progress: Callable[[str], None] | None = None,
    write_plan: bool = True,
) -> Report:
    """Build the study's report from the database; with a target half-width, write the generators done."""
    step = progress or (lambda message: None)
    step("loading judgments")
    started = time.perf_counter()
    data = selectors.report_input(study=study)
    loaded = time.perf_counter() - started
    report = report_from_input(data, options, progress=progress)
    if write_plan and report.done_ids is not None:
        study_generators_done_write(study=study, done_ids=report.done_ids)
        report.configuration["generators_done"] = list(study.generators_done)
    if write_plan:
        study_head_to_head_update(study=study, bt=report.bradley_terry)
    return replace(report, seconds=report.seconds + loaded)


def study_plan_update_request_open() -> int:
    """Ask workers to update the generators done of each open study with a target, and
    the head-to-head pairs of each that serves the uncertain pairs; how many studies."""
    planned = Q(target_half_width__isnull=False) | Q(head_to_head_share__gt=0,
                                                     head_to_head_pairs=Study.Pairs.UNCERTAIN)
    ids = list(Study.objects.filter(planned, status=Study.Status.OPEN).values_list("pk", flat=True))
    for study_id in ids:
        task_send(name="study_plan_update_task", args=(study_id,))
    return len(ids)


def study_plan_update(*, study: Study, options: ReportOptions = STORED_OPTIONS) -> list[int] | None:
    """Recompute and write the generators done of a study with a target (None without
    one), and the head-to-head pairs of a study that serves the uncertain pairs.

    Only the rates (and the Bradley-Terry fit for the pairs) are computed, exclusions
    applied, as in the report, with the same bootstrap settings, so both give the same answer.
    """
    uncertain = serves_uncertain_pairs(study)
    if not study.target_half_width and not uncertain:
        return None
    data = selectors.report_input(study=study)
    analysis = analyse(data.judgments, data.rules, options)
    if uncertain:
        study_head_to_head_update(
            study=study, bt=study_bradley_terry(data.judgments, analysis.exclusions.keep, options))
    if not study.target_half_width:
        return None
    done = generators_done(analysis.rates, study.target_half_width)
    study_generators_done_write(study=study, done_ids=[label for label, flag in done.items() if flag])
    return list(study.generators_done)


class ReportBuildFailed(ParityError):
    """A report build failed on the study's data as they are: the analysis' fault, not the
    request's, so a 500 with the error in one line (`reason`), logged with its traceback."""

    code = "report_failed"
    status = HTTPStatus.INTERNAL_SERVER_ERROR

    def __init__(self, reason: str):
        super().__init__(f"The report could not be built: {reason}")
        self.reason = reason


def one_line(text: str) -> str:
    """`text` on one line of at most `ERROR_LINE_CHARS` (an error for an API answer)."""
    line = " ".join(text.split())
    return line if len(line) <= ERROR_LINE_CHARS else line[:ERROR_LINE_CHARS - 1] + "…"


def stored_fingerprint(*, study: Study) -> tuple[str, int]:
    """`selectors.study_fingerprint` of the stored report: its options and formats; and the judgment count."""
    return selectors.study_fingerprint(study=study, extra={**STORED_OPTIONS.as_dict(), "formats": STORED_FORMATS})


class ReportTooLarge(ParityError):
    """A report other than the stored one asked of a study too large to build during a request."""

    code = "report_too_large"
    status = HTTPStatus.CONFLICT
    field = "by"


def stored_category_fields(study: Study) -> tuple[str, ...]:
    """The fields the study's stored report breaks down by: its `report_categories` setting."""
    return fields_for((), {"report_categories": study.report_categories})


def study_report_by(*, study: Study, fields: tuple[str, ...]) -> Report:
    """The study's report broken down by `fields`, with the stored report's other options,
    built now and stored nowhere; its plan (generators done, head-to-head pairs) left as it is.

    Raises `ReportTooLarge` for a study of more than `settings.PARITY_REPORT_INLINE_MAX`
    judgments: its stored report breaks down by the `report_categories` setting, and
    `manage.py report --by` builds any other offline.
    """
    _, count = selectors.study_fingerprint(study=study)
    if count > settings.PARITY_REPORT_INLINE_MAX:
        by = " ".join(f"--by {name}" for name in fields)
        raise ReportTooLarge(
            f"This study has {count:,} judgments, more than the {settings.PARITY_REPORT_INLINE_MAX:,} a report is "
            f"built for during a request: set its report_categories to the fields (its stored report then breaks "
            f"down by them) or run `manage.py report {study.slug} {by}`."
        )
    return study_report(study=study, options=replace(STORED_OPTIONS, category_fields=tuple(fields)),
                        write_plan=False)


def _snapshot_row(study: Study) -> ReportSnapshot:
    try:
        with transaction.atomic():
            return ReportSnapshot.objects.get_or_create(study=study)[0]
    except IntegrityError:
        # Another process created it between our read and our insert.
        return ReportSnapshot.objects.get(study=study)


def report_snapshot_build(*, study: Study) -> ReportSnapshot:
    """Build the study's report now and store it in every format.

    A build that fails is recorded with the fingerprint of its data (and the error
    raised again): `report_delivery` does not try those data again.
    """
    started = time.perf_counter()
    # Taken before reading: judgments that arrive during the build change it, so the
    # next look finds this report stale.
    fingerprint, count = stored_fingerprint(study=study)
    snapshot = _snapshot_row(study)
    try:
        report = study_report(study=study, options=STORED_OPTIONS)
        page, panel = report_pages(report)
        fields = {
            "fingerprint": fingerprint, "judgments": count, "built_at": timezone.now(),
            "panel_html": panel, "report_html": page,
            "report_json": report_json_text(report), "report_csv": report_csv(report),
            "report_categories_csv": report_categories_csv(report),
            "building_since": None, "error": "", "failed_fingerprint": "",
        }
    except Exception as exc:
        ReportSnapshot.objects.filter(pk=snapshot.pk).update(
            building_since=None, error=f"{type(exc).__name__}: {exc}"[:2000], failed_fingerprint=fingerprint)
        raise
    fields["seconds"] = time.perf_counter() - started
    with transaction.atomic():
        ReportSnapshot.objects.filter(pk=snapshot.pk).update(**fields)
        _record_append(study=study, fields=fields)
    snapshot.refresh_from_db()
    return snapshot


# ------------------------------------------------------------------------------
# The history of built reports (`models.ReportRecord`)
# ------------------------------------------------------------------------------
# What a rebuild of the same data changes in the JSON report: left out of its content hash.
VOLATILE_KEYS = ("built_at", "seconds")


def report_content_hash(report_json_text: str) -> str:
    """sha256 of a JSON report without its build time and duration, keys sorted:
    the same data, settings and code give the same hash."""
    body = json.loads(report_json_text)
    for key in VOLATILE_KEYS:
        body.pop(key, None)
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _record_append(*, study: Study, fields: dict) -> ReportRecord:
    """Keep the report just built as a new record, then prune the study's older ones."""
    record = ReportRecord.objects.create(
        study=study, built_at=fields["built_at"], seconds=fields["seconds"], judgments=fields["judgments"],
        fingerprint=fields["fingerprint"], content_hash=report_content_hash(fields["report_json"]),
        version=REPORT_VERSION, report_json=fields["report_json"], report_csv=fields["report_csv"],
        report_html=fields["report_html"],
    )
    report_records_prune(study=study)
    return record


def report_records_prune(*, study: Study, keep: int | None = None) -> int:
    """Empty the content of the study's records past the newest `keep` (by default
    `settings.PARITY_REPORT_HISTORY_KEEP`) that are not frozen; how many were pruned.

    Their metadata and content hash stay, so a citation of one still says what it was.
    """
    keep = settings.PARITY_REPORT_HISTORY_KEEP if keep is None else keep
    newest = ReportRecord.objects.filter(study=study).order_by("-built_at", "-id").values_list("pk", flat=True)
    kept = list(newest[:max(keep, 0)])
    return (
        ReportRecord.objects.filter(study=study, frozen_at__isnull=True, pruned_at__isnull=True)
        .exclude(pk__in=kept)
        .update(report_json="", report_csv="", report_html="", pruned_at=timezone.now())
    )


def report_record_freeze(*, record: ReportRecord, user, note: str | None = None) -> ReportRecord:
    """Freeze a record as final: its content is never pruned. Idempotent: freezing a
    frozen record keeps its time and who froze it, and changes its note only where
    `note` is given. A pruned record can still be frozen (its hash and metadata are the citation)."""
    with transaction.atomic():
        current = ReportRecord.objects.select_for_update().get(pk=record.pk)
        changed = []
        if current.frozen_at is None:
            current.frozen_at = timezone.now()
            current.frozen_by = user if getattr(user, "is_authenticated", False) else None
            changed += ["frozen_at", "frozen_by"]
        if note is not None and note != current.note:
            current.note = note
            changed.append("note")
        if changed:
            current.save(update_fields=changed)
    log.info("report %s of study %s frozen", current.pk, current.study_id)
    return current


def report_snapshot_current(*, study: Study) -> ReportSnapshot:
    """The stored report if it matches the data, else one built now.

    Raises `ReportBuildFailed` without building where a build already failed on these
    data (it fails the same way again); a build that fails now raises its own error.
    """
    fingerprint, _ = stored_fingerprint(study=study)
    snapshot = ReportSnapshot.objects.filter(study=study).first()
    if snapshot is not None and snapshot.fingerprint == fingerprint:
        return snapshot
    if snapshot is not None and snapshot.failed_fingerprint == fingerprint:
        raise ReportBuildFailed(one_line(snapshot.error))
    return report_snapshot_build(study=study)


def report_snapshot_request(*, study: Study) -> bool:
    """Ask a worker to rebuild the stored report; False when a build is already under way.

    Marks the snapshot as building (one UPDATE that only succeeds where no recent
    build is marked, so two requests never both enqueue) and sends
    `tasks.report_snapshot_task` once the transaction commits.
    """
    snapshot = _snapshot_row(study)
    now = timezone.now()
    claimed = (
        ReportSnapshot.objects.filter(pk=snapshot.pk)
        .exclude(building_since__gt=now - ReportSnapshot.BUILD_STALE_AFTER)
        .update(building_since=now)
    )
    if claimed:
        task_send(name="report_snapshot_task", args=(study.pk,))
    return bool(claimed)


class Delivery(StrEnum):
    """How a request for a study's report is answered."""

    STORED = "stored"  # the stored report, current (or recent enough for the caller)
    BUILT = "built"  # it was stale and the study small: built during the request
    BUILDING = "building"  # a worker builds a current one; the stored one, if any, is older
    FAILED = "failed"  # its build failed on these data, which are not tried again until they change


@dataclass(frozen=True)
class ReportDelivery:
    """What `report_delivery` decided, with the report to show."""

    how: Delivery
    snapshot: ReportSnapshot | None  # None before the first build
    judgments: int | None = None  # the study's judgments, where they had to be counted


def _younger_than(snapshot: ReportSnapshot | None, seconds: float) -> bool:
    if snapshot is None or snapshot.built_at is None:
        return False
    return (timezone.now() - snapshot.built_at).total_seconds() < seconds


def report_delivery(*, study: Study, max_age: float = 0) -> ReportDelivery:
    """The one rule by which the study page and the API deliver a study's report.

    While a worker builds, what is stored is all there is (BUILDING). A report younger
    than `max_age` seconds is served without checking the data, which costs a scan of
    the study's judgments: a page that polls passes its refresh period, a download
    passes nothing and gets a report of the data as they are. Otherwise a report that
    matches the data is STORED, one whose build failed on them FAILED, and a stale one
    is rebuilt: during the request (BUILT) for a study of at most
    `settings.PARITY_REPORT_INLINE_MAX` judgments, by a worker (BUILDING) for a larger one.

    A build during the request that fails raises its own error, after recording it on
    the snapshot (`report_snapshot_build`).
    """
    snapshot = ReportSnapshot.objects.filter(study=study).first()
    if snapshot is not None and snapshot.building:
        return ReportDelivery(Delivery.BUILDING, snapshot)
    if _younger_than(snapshot, max_age):
        return ReportDelivery(Delivery.STORED, snapshot)
    fingerprint, count = stored_fingerprint(study=study)
    if snapshot is not None and snapshot.fingerprint == fingerprint:
        return ReportDelivery(Delivery.STORED, snapshot, count)
    if snapshot is not None and snapshot.failed_fingerprint == fingerprint:
        return ReportDelivery(Delivery.FAILED, snapshot, count)
    if count > settings.PARITY_REPORT_INLINE_MAX:
        report_snapshot_request(study=study)
        return ReportDelivery(Delivery.BUILDING, snapshot, count)
    return ReportDelivery(Delivery.BUILT, report_snapshot_build(study=study), count)
