"""Corpora of real text-image pairs, and the generators and samples compared with them.

Each belongs to a workspace (`workspaces.models`), the app below this one.
"""

import math

from django.conf import settings
from django.db import models
from django.db.models import Q

from workspaces.models import Workspace


class Corpus(models.Model):
    """A set of text-image pairs that serve as ground truth."""

    workspace = models.ForeignKey(Workspace, on_delete=models.PROTECT, related_name="corpora")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    source = models.CharField(max_length=1000, blank=True, help_text="Where it was imported from.")
    # The import's filters and sample (`services.ImportSelection`) with what each filter
    # removed: the same seed and source give the same items.
    selection = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "corpora"
        ordering = ["workspace", "name"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="corpus_unique_name"),
        ]

    def __str__(self) -> str:
        return self.name


class StoredImage(models.Model):
    """Fields shared by every stored original: references and samples alike.

    The file is named by the sha256 of its bytes, so identical images are stored once
    and a name reveals nothing but content.
    """

    image = models.FileField(max_length=300)
    sha256 = models.CharField(max_length=64, db_index=True)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    format = models.CharField(max_length=10, help_text="Pillow format of the original: JPEG, PNG, WEBP.")
    mode = models.CharField(max_length=10, help_text="Pillow mode of the original, e.g. RGB, CMYK, I;16.")
    byte_size = models.PositiveBigIntegerField()

    class Meta:
        abstract = True


class Item(StoredImage):
    """One pair of a corpus: a caption (the prompt) and its real image, the reference."""

    corpus = models.ForeignKey(Corpus, on_delete=models.CASCADE, related_name="items")
    key = models.CharField(max_length=255)
    caption = models.TextField()
    meta = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["corpus", "key"]
        constraints = [
            models.UniqueConstraint(fields=["corpus", "key"], name="item_unique_key"),
            models.CheckConstraint(condition=~Q(caption=""), name="item_caption_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.corpus}:{self.key}"


class Series(models.Model):
    """Generators that differ along scale axes: the points of one scaling curve."""

    workspace = models.ForeignKey(Workspace, on_delete=models.PROTECT, related_name="series")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "series"
        ordering = ["workspace", "name"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="series_unique_name"),
        ]

    def __str__(self) -> str:
        return self.name


# The scale axes a generator records; an inference setting is an axis too, as
# ``settings.<key>``.
SCALE_AXES = ("params", "train_images", "train_flops", "train_step")
SETTING_AXIS = "settings."


class Generator(models.Model):
    """One model checkpoint under fixed inference settings."""

    workspace = models.ForeignKey(Workspace, on_delete=models.PROTECT, related_name="generators")
    series = models.ForeignKey(
        Series, on_delete=models.PROTECT, null=True, blank=True, related_name="generators"
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # Scale axes. Null means "not known", which fits leave out.
    params = models.PositiveBigIntegerField(null=True, blank=True, help_text="Parameter count N.")
    train_images = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Training images seen D."
    )
    train_flops = models.FloatField(null=True, blank=True, help_text="Training compute C in FLOPs.")
    train_step = models.PositiveBigIntegerField(null=True, blank=True)
    settings = models.JSONField(
        default=dict, blank=True, help_text="Inference settings: sampler, steps, guidance, resolution."
    )
    metrics = models.JSONField(
        default=dict, blank=True, help_text="Automatic metrics, e.g. validation loss or FID."
    )
    backend = models.CharField(
        max_length=200, default="upload", help_text="'upload', or the backend that makes samples."
    )
    backend_config = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["workspace", "series", "name"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="generator_unique_name"),
            models.CheckConstraint(
                condition=Q(train_flops__isnull=True) | Q(train_flops__gte=0),
                name="generator_train_flops_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def axis_value(self, axis: str) -> float | None:
        """The generator's positive value on a scale axis (``settings.<key>`` for a setting), else None."""
        if axis.startswith(SETTING_AXIS):
            value = (self.settings or {}).get(axis[len(SETTING_AXIS):])
        else:
            value = getattr(self, axis) if axis in SCALE_AXES else None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return None
        return float(value) if value > 0 else None


class GenerationJob(models.Model):
    """A run of a generator's backend over items, on a worker."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"
        # Its worker stopped writing its heartbeat (killed, lost) or was stopped: resumable.
        INTERRUPTED = "interrupted"

    generator = models.ForeignKey(Generator, on_delete=models.CASCADE, related_name="jobs")
    corpus = models.ForeignKey(Corpus, on_delete=models.PROTECT, related_name="generation_jobs")
    item_keys = models.JSONField(default=list, blank=True, help_text="Empty: every item.")
    seeds_per_item = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    cancel_requested = models.BooleanField(default=False)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Written by its worker every few seconds while it runs; silent for PARITY_JOB_HEARTBEAT_TIMEOUT: interrupted."
    )
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    errors = models.JSONField(
        default=list, blank=True,
        help_text="The first errors (at most 1,000): an item key, a seed and a message each, or just a message.",
    )
    error_count = models.PositiveIntegerField(default=0, help_text="Errors in all, kept or not.")
    device = models.CharField(max_length=200, blank=True)
    batch_size = models.PositiveIntegerField(null=True, blank=True)
    images_per_second = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["queued", "running", "succeeded", "failed", "cancelled", "interrupted"]),
                name="generationjob_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.generator} job {self.pk} ({self.status})"

    @property
    def progress(self) -> float:
        """Share of the `total` samples dealt with: made (`done`), already there (`skipped`) or `failed`."""
        if self.status == self.Status.SUCCEEDED:
            return 1.0
        handled = self.done + self.skipped + self.failed
        return min(handled / self.total, 1.0) if self.total else 0.0


class Sample(StoredImage):
    """One image made by a generator for an item, with its seed."""

    generator = models.ForeignKey(Generator, on_delete=models.CASCADE, related_name="samples")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="samples")
    seed = models.BigIntegerField()
    job = models.ForeignKey(
        GenerationJob, on_delete=models.SET_NULL, null=True, blank=True, related_name="samples"
    )
    # Blank or near-constant (a safety filter's output): kept, counted, left out of trials
    # unless a study includes them (`Study.include_blank_samples`).
    blank = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["generator", "item", "seed"]
        constraints = [
            models.UniqueConstraint(
                fields=["generator", "item", "seed"], name="sample_unique_generator_item_seed"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.generator} / {self.item.key} / seed {self.seed}"


class ImportJob(models.Model):
    """An uploaded corpus or sample bundle imported on a worker, with its progress.

    The upload waits in the default storage under `upload` until the job ends; the
    import itself is the CLI's (`corpus_import`, `samples_import`), all-or-nothing.
    """

    class Kind(models.TextChoices):
        CORPUS = "corpus"
        SAMPLES = "samples"

    # A generation job's life cycle, less `interrupted`: an import is all-or-nothing.
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="import_jobs")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    cancel_requested = models.BooleanField(default=False)
    generator = models.ForeignKey(
        Generator, on_delete=models.CASCADE, null=True, blank=True, related_name="import_jobs",
        help_text="Samples: the generator they are added to.",
    )
    corpus = models.ForeignKey(
        Corpus, on_delete=models.SET_NULL, null=True, blank=True, related_name="import_jobs",
        help_text="Samples: the corpus of the item keys. Corpus: the corpus made, once it is.",
    )
    name = models.CharField(max_length=200, blank=True, help_text="Corpus: the name of the corpus to make.")
    description = models.TextField(blank=True)
    skip_bad = models.BooleanField(default=False)
    # Corpus: the filters and sample of the import (`services.ImportSelection.as_dict`).
    selection = models.JSONField(default=dict, blank=True)
    upload = models.CharField(max_length=300, blank=True, help_text="Storage name of the upload; emptied when the job ends.")
    filename = models.CharField(max_length=255, help_text="The uploaded file's name, as the client gave it.")
    total = models.PositiveIntegerField(default=0, help_text="Images in the upload.")
    done = models.PositiveIntegerField(default=0, help_text="Records read so far.")
    created = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    converted = models.PositiveIntegerField(default=0)
    rejections = models.JSONField(
        default=list, blank=True, help_text="The first rejections (at most 1,000), each an origin and a reason."
    )
    rejection_count = models.PositiveIntegerField(default=0, help_text="Rejections in all, kept or not.")
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["queued", "running", "succeeded", "failed", "cancelled"]),
                name="importjob_status_valid",
            ),
            models.CheckConstraint(condition=Q(kind__in=["corpus", "samples"]), name="importjob_kind_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} import {self.pk} ({self.status})"

    @property
    def progress(self) -> float:
        if self.status == self.Status.SUCCEEDED:
            return 1.0
        return min(self.done / self.total, 1.0) if self.total else 0.0
