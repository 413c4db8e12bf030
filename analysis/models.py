"""Analysis stores no results of its own: reports are computed from judgments.

`ReportSnapshot` only keeps the last report built for a study, in every format, so
that the study page and downloads of a large study need not wait for a rebuild. It
lives in the database because that is what the web processes and the workers share
in every deployment (a file under var/ or a per-process cache would not be).
"""

from datetime import timedelta

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
