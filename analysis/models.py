"""Analysis stores no results of its own: reports are computed from judgments.

`ReportSnapshot` only keeps the last report built for a study, in every format (the
categories CSV among them), so that the study page and downloads of a large study
need not wait for a rebuild. It lives in the database because that is what the web
processes and the workers share in every deployment (a file under var/ or a
per-process cache would not be).

`ReportRecord` is the history: every report built, with its time, judgment count and
content hash; a researcher freezes one as final and cites it by id.
"""

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


class ReportSnapshot(models.Model):
    """The last report built for a study, with the fingerprint of the data it was built from."""

    # A worker's build not heard of for this long is taken to have died: the next request starts another.
    BUILD_STALE_AFTER = timedelta(minutes=15)

    study = models.OneToOneField("annotate.Study", on_delete=models.CASCADE, related_name="report_snapshot")
    fingerprint = models.CharField(max_length=64, blank=True, help_text="`selectors.study_fingerprint` at build time.")
    judgments = models.PositiveBigIntegerField(default=0, help_text="Analysed judgments at build time.")
    built_at = models.DateTimeField(null=True, blank=True)
    seconds = models.FloatField(null=True, blank=True, help_text="Time the build took, database reads included.")
    panel_html = models.TextField(blank=True, help_text="The study page's analysis panel (an HTML fragment).")
    report_html = models.TextField(blank=True)
    report_json = models.TextField(blank=True)
    report_csv = models.TextField(blank=True)
    report_categories_csv = models.TextField(
        blank=True, help_text="The results per category of the study's report_categories (header only without)."
    )
    building_since = models.DateTimeField(
        null=True, blank=True, help_text="Set while a worker builds a newer one."
    )
    error = models.TextField(blank=True, help_text="Why the last build failed, if it did.")
    failed_fingerprint = models.CharField(
        max_length=64, blank=True, help_text="The data the last build failed on: not tried again until they change."
    )

    def __str__(self) -> str:
        return f"report of {self.study_id} built {self.built_at}"

    @property
    def building(self) -> bool:
        """A worker is building a newer report (and was marked so recently enough to be alive)."""
        since = self.building_since
        return since is not None and timezone.now() - since < self.BUILD_STALE_AFTER


class ReportRecord(models.Model):
    """One built report of a study, kept as its history (`services.report_snapshot_build`
    appends one per successful build).

    A record is cited by its id. Its metadata stay for good; its content (the JSON,
    CSV and HTML text) stays for the frozen records and for the newest
    `settings.PARITY_REPORT_HISTORY_KEEP` of the study, and is emptied on older
    unfrozen ones (`pruned_at` set), so the table grows by one small row per build.
    `content_hash` is the sha256 of the JSON report without its build time and
    duration (`services.report_content_hash`): the same data give the same hash.
    """

    study = models.ForeignKey("annotate.Study", on_delete=models.CASCADE, related_name="report_records")
    built_at = models.DateTimeField()
    seconds = models.FloatField(null=True, blank=True, help_text="Time the build took.")
    judgments = models.PositiveBigIntegerField(default=0, help_text="Analysed judgments at build time.")
    fingerprint = models.CharField(max_length=64, blank=True, help_text="`selectors.study_fingerprint` at build time.")
    content_hash = models.CharField(max_length=64, help_text="sha256 of the JSON report less built_at and seconds.")
    version = models.PositiveIntegerField(help_text="`reports.REPORT_VERSION` of the code that built it.")
    report_json = models.TextField(blank=True)
    report_csv = models.TextField(blank=True)
    report_html = models.TextField(blank=True)
    pruned_at = models.DateTimeField(null=True, blank=True, help_text="When its content was emptied, if it was.")
    frozen_at = models.DateTimeField(null=True, blank=True, help_text="Frozen as final: never pruned.")
    frozen_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    note = models.TextField(blank=True, help_text="Why it was frozen, in the researcher's words.")

    class Meta:
        ordering = ["study", "-built_at", "-id"]
        indexes = [models.Index(fields=["study", "-built_at"], name="report_record_study_built")]

    def __str__(self) -> str:
        return f"report {self.pk} of {self.study_id} built {self.built_at}"

    @property
    def frozen(self) -> bool:
        return self.frozen_at is not None

    @property
    def has_content(self) -> bool:
        return self.pruned_at is None
