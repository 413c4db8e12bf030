"""Writes of the analysis: the planning hook on a study, and the stored last report.

Planning (ARCHITECTURE.md: analysis writes plain values onto annotate's models, the
assignment engine only reads them): for a study with a target half-width, every
report build and the periodic `tasks.plan_update_open_studies` write
`Study.generators_done`, the ids of generators whose interval is already narrow
enough (`stats.generators_done`: at most the target with at least 100 judgments).
The engine stops serving them. The list is recomputed from scratch each time, so a
generator whose interval widens again (an exclusion rule changed) is served again.
A study without a target is left as it is.

Stored reports (`models.ReportSnapshot`): the study page and the API serve the last
report while its fingerprint (`selectors.study_fingerprint`) still matches; a large
study's is rebuilt by a worker (`report_snapshot_request`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from http import HTTPStatus

from django.db import IntegrityError, transaction
from django.utils import timezone

from analysis import selectors
from analysis.exports import report_csv, report_json_text
from analysis.models import ReportSnapshot
from analysis.report_html import report_pages
from analysis.reports import Report, ReportOptions, analyse, report_from_input
from analysis.stats import generators_done
from annotate.models import Study
from workspaces.errors import ParityError

log = logging.getLogger(__name__)

# Options of stored reports (the page's panel and API downloads). The CLI may choose others.
STORED_OPTIONS = ReportOptions()
# An error message short enough for one line of an API answer.
ERROR_LINE_CHARS = 300


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
    return replace(report, seconds=report.seconds + loaded)


def study_plan_update(*, study: Study, options: ReportOptions = STORED_OPTIONS) -> list[int] | None:
    """Recompute and write the generators done of a study with a target; None without one.

    Only the rates are computed (exclusions applied, as in the report, with the same
    bootstrap settings, so both give the same answer).
    """
    if not study.target_half_width:
        return None
    data = selectors.report_input(study=study)
    analysis = analyse(data.judgments, data.rules, options)
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
    raised again): `report_snapshot_stale` does not try those data again.
    """
    started = time.perf_counter()
    # Taken before reading: judgments that arrive during the build change it, so the
    # next look finds this report stale.
    fingerprint, count = selectors.study_fingerprint(study=study, extra=STORED_OPTIONS.as_dict())
    snapshot = _snapshot_row(study)
    try:
        report = study_report(study=study, options=STORED_OPTIONS)
        page, panel = report_pages(report)
        fields = {
            "fingerprint": fingerprint, "judgments": count, "built_at": timezone.now(),
            "panel_html": panel, "report_html": page,
            "report_json": report_json_text(report), "report_csv": report_csv(report),
            "building_since": None, "error": "", "failed_fingerprint": "",
        }
    except Exception as exc:
        ReportSnapshot.objects.filter(pk=snapshot.pk).update(
            building_since=None, error=f"{type(exc).__name__}: {exc}"[:2000], failed_fingerprint=fingerprint)
        raise
    fields["seconds"] = time.perf_counter() - started
    ReportSnapshot.objects.filter(pk=snapshot.pk).update(**fields)
    snapshot.refresh_from_db()
    return snapshot


def report_snapshot_stale(*, snapshot: ReportSnapshot | None, fingerprint: str) -> bool:
    """The stored report does not match the data, and its build did not already fail on them."""
    if snapshot is None:
        return True
    return snapshot.fingerprint != fingerprint and snapshot.failed_fingerprint != fingerprint


def report_snapshot_current(*, study: Study) -> ReportSnapshot:
    """The stored report if it matches the data, else one built now.

    Raises `ReportBuildFailed` without building where a build already failed on these
    data (it fails the same way again); a build that fails now raises its own error.
    """
    fingerprint, _ = selectors.study_fingerprint(study=study, extra=STORED_OPTIONS.as_dict())
    snapshot = ReportSnapshot.objects.filter(study=study).first()
    if snapshot is not None and snapshot.fingerprint == fingerprint:
        return snapshot
    if snapshot is not None and snapshot.failed_fingerprint == fingerprint:
        raise ReportBuildFailed(one_line(snapshot.error))
    return report_snapshot_build(study=study)


def report_snapshot_request(*, study: Study) -> bool:
    """Ask a worker to rebuild the stored report; False when a build is already under way.

    Marks the snapshot as building (one UPDATE that only succeeds where no recent
    build is marked, so two requests never both enqueue) and enqueues
    `tasks.report_snapshot_task` once the transaction commits.
    """
    from analysis.tasks import report_snapshot_task

    snapshot = _snapshot_row(study)
    now = timezone.now()
    claimed = (
        ReportSnapshot.objects.filter(pk=snapshot.pk)
        .exclude(building_since__gt=now - ReportSnapshot.BUILD_STALE_AFTER)
        .update(building_since=now)
    )
    if claimed:
        transaction.on_commit(lambda: report_snapshot_task.delay(study.pk))
    return bool(claimed)
