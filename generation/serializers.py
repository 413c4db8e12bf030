"""Serializers of the researcher API for corpora, items, series, generators, samples,
import jobs and generation jobs (the shared pieces are in `workspaces.serializers`).
"""

import math

from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail

from generation import selectors
from generation.backends import backend_check
from generation.errors import BackendError
from generation.models import Corpus, GenerationJob, Generator, ImportJob, Item, Sample, Series
from generation.selection import ALLOCATIONS, SelectionError, parse_where
from generation.services import UPLOAD_BACKEND
from generation.untrusted import JSONField
from workspaces.serializers import StrictFieldsMixin, WorkspaceField, request_user

MAX_METRIC_NAME = 100


class SeriesField(serializers.PrimaryKeyRelatedField):
    """A series of the requesting user's workspaces, by id."""

    def get_queryset(self):
        return selectors.series_for(user=request_user(self))


class CorpusSerializer(serializers.ModelSerializer):
    workspace = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    item_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Corpus
        fields = ["id", "workspace", "name", "description", "source", "item_count", "created_at"]


class ItemSerializer(serializers.ModelSerializer):
    image = serializers.FileField(read_only=True, help_text="URL of the stored original (the reference).")

    class Meta:
        model = Item
        fields = ["id", "key", "caption", "meta", "image", "sha256", "width", "height", "format", "mode"]


class SeriesSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    workspace = WorkspaceField()

    class Meta:
        model = Series
        fields = ["id", "workspace", "name", "description", "created_at"]
        # Name clashes are the service's to report (409 name_taken), race-free.
        validators = []


class GeneratorSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    workspace = WorkspaceField(help_text="Slug or id on create; a generator cannot move to another workspace.")
    series = SeriesField(required=False, allow_null=True, help_text="Id of a series of the same workspace.")
    train_flops = serializers.FloatField(required=False, allow_null=True, min_value=0, help_text="Training compute C in FLOPs.")
    settings = JSONField(
        required=False, help_text="Inference settings, an object: sampler, steps, guidance, resolution."
    )
    metrics = JSONField(
        required=False, help_text='Automatic metrics, an object of numbers: {"fid": 12.3, "val_loss": 0.41}.'
    )
    backend = serializers.CharField(required=False, max_length=200, help_text=(
        "'upload' (samples are uploaded), or a backend the operator allows (PARITY_GENERATION_BACKENDS): "
        "by default 'builtin' (the built-in engine) and 'diffusers' (a local diffusers pipeline); "
        "'callable' (a Python function) where the operator allows it."
    ))
    backend_config = JSONField(required=False, help_text=(
        'The backend\'s options, an object: builtin {"checkpoint": path under PARITY_CHECKPOINT_DIR}, '
        'callable {"function": a name from PARITY_CALLABLES}, diffusers {"path": directory under '
        'PARITY_DIFFUSERS_DIR}; any of them may add "batch_size".'
    ))

    class Meta:
        model = Generator
        fields = [
            "id", "workspace", "series", "name", "description",
            "params", "train_images", "train_flops", "train_step",
            "settings", "metrics", "backend", "backend_config", "created_at",
        ]
        validators = []

    def validate_settings(self, value):
        return _object(value, "inference settings", example='{"sampler": "ddim", "steps": 50}')

    def validate_backend_config(self, value):
        return _object(value, "backend options", example='{"checkpoint": "ckpt/step-10000.pt"}')

    def validate_metrics(self, value):
        value = _object(value, "metrics", example='{"fid": 12.3, "val_loss": 0.41}')
        for name, number in value.items():
            if not name or len(name) > MAX_METRIC_NAME:
                raise serializers.ValidationError(f"A metric's name has 1 to {MAX_METRIC_NAME} characters.")
            if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
                raise serializers.ValidationError(
                    f"Metric {name!r} is {number!r}: a metric is a finite number.", code="invalid_metric"
                )
        return value

    def validate(self, attrs):
        if self.instance is not None and "workspace" in attrs and attrs["workspace"] != self.instance.workspace:
            raise serializers.ValidationError(
                {"workspace": ErrorDetail("A generator cannot move to another workspace.", code="immutable")}
            )
        workspace = attrs.get("workspace") or self.instance.workspace
        series = attrs["series"] if "series" in attrs else getattr(self.instance, "series", None)
        if series is not None and series.workspace_id != workspace.pk:
            raise serializers.ValidationError(
                {"series": ErrorDetail(f"Series {series.name!r} belongs to another workspace.", code="wrong_workspace")}
            )

        def value(name: str, default):
            return attrs[name] if name in attrs else getattr(self.instance, name, default)

        try:
            backend_check(
                backend=value("backend", UPLOAD_BACKEND), config=value("backend_config", {}),
                settings=value("settings", {}),
            )
        except BackendError as exc:
            message = str(exc)
            # "backend_config.function" becomes {"backend_config": {"function": ...}}, named so in the error.
            detail = ErrorDetail(f"{message[:1].upper()}{message[1:]}.", code="invalid_backend")
            for part in reversed(exc.field.split(".")):
                detail = {part: detail}
            raise serializers.ValidationError(detail) from None
        return attrs


def _object(value, what: str, *, example: str) -> dict:
    if not isinstance(value, dict):
        raise serializers.ValidationError(f"Give the {what} as a JSON object, e.g. {example}.", code="not_an_object")
    return value


# ------------------------------------------------------------------------------
# Samples and uploads
# ------------------------------------------------------------------------------
SEED_RANGE = {"min_value": -(2**63), "max_value": 2**63 - 1}


class SampleSerializer(serializers.ModelSerializer):
    item_key = serializers.CharField(source="item.key", read_only=True)
    corpus = serializers.IntegerField(source="item.corpus_id", read_only=True)
    image = serializers.FileField(read_only=True, help_text="URL of the stored original.")

    class Meta:
        model = Sample
        fields = [
            "id", "generator", "corpus", "item_key", "seed", "image", "sha256",
            "width", "height", "format", "mode", "byte_size", "created_at",
        ]


def corpus_of_keys(generator: Generator, corpus_id: int | None) -> Corpus:
    """The corpus whose item keys an upload names: the one given, or the workspace's only one."""
    corpora = Corpus.objects.filter(workspace_id=generator.workspace_id)
    if corpus_id is not None:
        corpus = corpora.filter(pk=corpus_id).first()
        if corpus is None:
            raise serializers.ValidationError(
                {"corpus": ErrorDetail(f"No corpus {corpus_id} in the generator's workspace.", code="does_not_exist")}
            )
        return corpus
    found = list(corpora[:2])
    if len(found) != 1:
        message = (
            "The generator's workspace has no corpus: import one first." if not found else
            "The generator's workspace has several corpora: give the id of the one the keys belong to."
        )
        raise serializers.ValidationError({"corpus": ErrorDetail(message, code="required")})
    return found[0]


class SampleUploadSerializer(StrictFieldsMixin, serializers.Serializer):
    """One image; context: the `generator`."""

    file = serializers.FileField(help_text="The image: JPEG, PNG or WebP, at most PARITY_MAX_IMAGE_BYTES.")
    item_key = serializers.CharField(max_length=255, help_text="Key of the item (prompt) it was made for.")
    seed = serializers.IntegerField(**SEED_RANGE)
    corpus = serializers.IntegerField(
        required=False, help_text="Id of the corpus the key belongs to; needed where the workspace has several."
    )

    def validate(self, attrs):
        corpus = corpus_of_keys(self.context["generator"], attrs.get("corpus"))
        if not Item.objects.filter(corpus=corpus, key=attrs["item_key"]).exists():
            raise serializers.ValidationError({"item_key": ErrorDetail(
                f"Corpus {corpus.name!r} has no item with key {attrs['item_key']!r}.", code="unknown_item"
            )})
        return {**attrs, "corpus": corpus}


class SampleBundleSerializer(StrictFieldsMixin, serializers.Serializer):
    """A bundle of samples; context: the `generator`."""

    file = serializers.FileField(help_text="A tar or zip with manifest.jsonl at its top: key, file, seed per line.")
    corpus = serializers.IntegerField(
        required=False, help_text="Id of the corpus the keys belong to; needed where the workspace has several."
    )

    def validate(self, attrs):
        return {**attrs, "corpus": corpus_of_keys(self.context["generator"], attrs.get("corpus"))}


class CorpusUploadSerializer(StrictFieldsMixin, serializers.Serializer):
    workspace = WorkspaceField()
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    file = serializers.FileField(help_text=(
        "A tar or zip with captions.jsonl or captions.csv (key, caption, file) at its top, "
        "or a WebDataset shard (.tar)."
    ))
    where = serializers.ListField(
        child=serializers.CharField(max_length=500), required=False, default=list,
        help_text="Keep only items passing FIELD OP VALUE (repeat for several; all must pass): width, height, "
        "aspect, byte_size, format, mode or meta.<key>, e.g. width>=512, meta.pwatermark<0.5.",
    )
    sample = serializers.IntegerField(min_value=1, required=False, allow_null=True, default=None,
                                      help_text="Import a seeded sample of this many of the items kept.")
    seed = serializers.IntegerField(min_value=0, required=False, default=0, help_text="Seed of the sample.")
    stratify_by = serializers.CharField(max_length=200, required=False, allow_blank=True, default="",
                                        help_text="An item metadata field whose values each get their share.")
    # Labelled as the study's own setting is (`Study.Allocation`), so the schema has one enum.
    allocation = serializers.ChoiceField(choices=[(a, a.capitalize()) for a in ALLOCATIONS], required=False,
                                         default="proportional")

    def validate_where(self, texts: list[str]) -> list[str]:
        for text in texts:
            try:
                parse_where(text)
            except SelectionError as exc:
                raise serializers.ValidationError(str(exc)) from None
        return texts

    def validate(self, attrs: dict) -> dict:
        if attrs.get("stratify_by") and not attrs.get("sample"):
            raise serializers.ValidationError({"stratify_by": ["needs sample"]})
        return attrs

    def selection(self) -> dict:
        """The import's filters and sample, as `services.ImportSelection.as_dict` writes them."""
        data = self.validated_data
        return {"where": data["where"], "sample": data["sample"], "seed": data["seed"],
                "stratify_by": data["stratify_by"], "allocation": data["allocation"]}


class RejectionSerializer(serializers.Serializer):
    origin = serializers.CharField(help_text="File and line, or archive member.")
    reason = serializers.CharField()


class ImportResultSerializer(serializers.Serializer):
    """What an import made during the request."""

    corpus = serializers.IntegerField(allow_null=True, help_text="Id of the corpus made, or of the keys' corpus.")
    created = serializers.IntegerField()
    skipped = serializers.IntegerField(help_text="Samples already there with the same bytes.")
    converted = serializers.IntegerField(help_text="Images shown as 8-bit sRGB by the presentation policy (CMYK, 16-bit).")
    rejected = RejectionSerializer(many=True, help_text="With ?skip_bad=true: the records left out.")
    filtered = serializers.ListField(
        child=serializers.DictField(), required=False,
        help_text="Corpus with `where`: per filter, in order, {where, removed}: the items it removed.",
    )
    sampled = serializers.IntegerField(required=False, help_text="Corpus with `sample`: items drawn (null without).")


class ImportJobSerializer(serializers.ModelSerializer):
    workspace = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    progress = serializers.FloatField(read_only=True, help_text="Share of the upload's images read, 0 to 1.")
    rejections = RejectionSerializer(many=True, read_only=True, help_text="The first rejections, at most 1,000.")

    class Meta:
        model = ImportJob
        fields = [
            "id", "kind", "status", "progress", "workspace", "generator", "corpus", "name", "filename",
            "skip_bad", "total", "done", "created", "skipped", "converted", "rejections", "rejection_count", "error",
            "cancel_requested", "created_at", "started_at", "finished_at", "selection",
        ]
        read_only_fields = fields


# ------------------------------------------------------------------------------
# Generation jobs
# ------------------------------------------------------------------------------
# A subset as large as COCO-30k fits; for more, a job runs over the whole corpus.
MAX_JOB_ITEM_KEYS = 50_000
MAX_SEEDS_PER_ITEM = 1000


class JobGeneratorField(serializers.PrimaryKeyRelatedField):
    """A generator of the requesting user's workspaces, by id."""

    def get_queryset(self):
        return selectors.generators_for(user=request_user(self))


class JobCorpusField(serializers.PrimaryKeyRelatedField):
    """A corpus of the requesting user's workspaces, by id."""

    def get_queryset(self):
        return selectors.corpora_for(user=request_user(self))


class GenerationJobSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    generator = JobGeneratorField(help_text="Id of a generator with a backend to run (not 'upload').")
    corpus = JobCorpusField(help_text="Id of a corpus of the generator's workspace.")
    item_keys = serializers.ListField(
        child=serializers.CharField(max_length=255), required=False, max_length=MAX_JOB_ITEM_KEYS,
        help_text=f"Keys of the items to make samples for, at most {MAX_JOB_ITEM_KEYS:,}; empty or left out: every item.",
    )
    seeds_per_item = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_SEEDS_PER_ITEM,
        help_text="Samples per item, each with its own seed, derived from the generator and item (default 1).",
    )
    progress = serializers.FloatField(
        read_only=True, help_text="Share of `total` dealt with (done, skipped or failed), 0 to 1; 1 once succeeded.",
    )
    total = serializers.IntegerField(read_only=True, help_text="Samples to make: items × seeds_per_item.")
    done = serializers.IntegerField(read_only=True, help_text="Samples made.")
    skipped = serializers.IntegerField(read_only=True, help_text="Samples that existed already (a rerun skips them).")
    failed = serializers.IntegerField(read_only=True, help_text="Samples the backend could not make.")
    errors = serializers.ListField(
        child=serializers.JSONField(), read_only=True,
        help_text="What went wrong on the worker, the first 1,000: {item_key, seed, error} per failed sample, "
        "or {error} for the job as a whole.",
    )
    error_count = serializers.IntegerField(read_only=True, help_text="Errors in all, kept in `errors` or not.")

    class Meta:
        model = GenerationJob
        fields = [
            "id", "generator", "corpus", "item_keys", "seeds_per_item", "status", "cancel_requested", "progress",
            "total", "done", "skipped", "failed", "errors", "error_count", "device", "batch_size", "images_per_second",
            "created_at", "started_at", "heartbeat_at", "finished_at",
        ]
        read_only_fields = [
            "status", "cancel_requested", "device", "batch_size", "images_per_second",
            "created_at", "started_at", "heartbeat_at", "finished_at",
        ]

    def validate(self, attrs):
        generator, corpus = attrs["generator"], attrs["corpus"]
        if generator.backend == UPLOAD_BACKEND:
            raise serializers.ValidationError({"generator": ErrorDetail(
                f"Generator {generator.name!r} has no backend to run: its samples are uploaded.", code="no_backend"
            )})
        if corpus.workspace_id != generator.workspace_id:
            raise serializers.ValidationError({"corpus": ErrorDetail(
                f"Corpus {corpus.name!r} belongs to another workspace than generator {generator.name!r}.",
                code="wrong_workspace",
            )})
        keys = attrs.get("item_keys") or []
        seen: set[str] = set()
        for key in keys:
            if key in seen:
                raise serializers.ValidationError(
                    {"item_keys": ErrorDetail(f"Key {key!r} is listed twice.", code="duplicate_key")}
                )
            seen.add(key)
        if keys and (missing := selectors.item_keys_missing(corpus=corpus, keys=keys)):
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise serializers.ValidationError({"item_keys": ErrorDetail(
                f"Corpus {corpus.name!r} has no item with key {missing[0]!r}{more}.", code="unknown_item"
            )})
        if not keys and not corpus.items.exists():
            raise serializers.ValidationError(
                {"corpus": ErrorDetail(f"Corpus {corpus.name!r} has no items.", code="empty")}
            )
        return attrs
