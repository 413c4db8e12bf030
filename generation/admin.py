from django import forms
from django.contrib import admin
from django.db.models import Count
from django.utils.html import format_html

from .backends import UPLOAD, backend_check, backends_allowed
from .errors import BackendError
from .models import (
    Corpus,
    GenerationJob,
    Generator,
    ImportJob,
    Item,
    Sample,
    Series,
)


@admin.register(Corpus)
class CorpusAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace", "item_count", "source", "created_at"]
    list_filter = ["workspace"]
    search_fields = ["name", "description"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_item_count=Count("items"))

    @admin.display(ordering="_item_count", description="items")
    def item_count(self, obj):
        return obj._item_count


class ImagePreviewMixin:
    class Media:
        css = {"all": ["generation/admin.css"]}

    @admin.display(description="image")
    def preview(self, obj):
        return format_html('<img src="{}" class="parity-preview" alt="">', obj.image.url)


@admin.register(Item)
class ItemAdmin(ImagePreviewMixin, admin.ModelAdmin):
    list_display = ["key", "corpus", "caption", "width", "height", "format", "mode", "preview"]
    list_filter = ["corpus", "format", "mode"]
    search_fields = ["key", "caption", "sha256"]
    list_select_related = ["corpus"]
    readonly_fields = ["sha256", "width", "height", "format", "mode", "byte_size", "preview"]


@admin.register(Series)
class SeriesAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace", "created_at"]
    list_filter = ["workspace"]
    search_fields = ["name"]


class GeneratorForm(forms.ModelForm):
    """The admin's generator form: a backend the operator allows, options checked as the API checks them."""

    backend = forms.ChoiceField(choices=(), help_text="'upload', or a backend of PARITY_GENERATION_BACKENDS.")

    class Meta:
        model = Generator
        fields = "__all__"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["backend"].choices = [(name, name) for name in [UPLOAD, *backends_allowed()]]

    def clean(self):
        cleaned = super().clean()
        if "backend" in cleaned and not any(name in self.errors for name in ("backend_config", "settings")):
            try:
                backend_check(
                    backend=cleaned["backend"], config=cleaned.get("backend_config") or {},
                    settings=cleaned.get("settings") or {},
                )
            except BackendError as exc:
                self.add_error(exc.field.split(".")[0], str(exc))
        return cleaned


@admin.register(Generator)
class GeneratorAdmin(admin.ModelAdmin):
    form = GeneratorForm
    list_display = ["name", "series", "params", "train_images", "train_flops", "train_step", "backend"]
    list_filter = ["workspace", "series", "backend"]
    search_fields = ["name", "description"]
    list_select_related = ["series"]


@admin.register(Sample)
class SampleAdmin(ImagePreviewMixin, admin.ModelAdmin):
    list_display = ["generator", "item", "seed", "width", "height", "format", "preview"]
    list_filter = ["generator", "format"]
    search_fields = ["item__key", "item__caption", "sha256"]
    list_select_related = ["generator", "item"]
    raw_id_fields = ["item", "job"]
    readonly_fields = ["sha256", "width", "height", "format", "mode", "byte_size", "preview"]


class JobProgressMixin:
    @admin.display(description="progress")
    def progress_shown(self, obj):
        return f"{obj.progress:.0%}"


@admin.register(GenerationJob)
class GenerationJobAdmin(JobProgressMixin, admin.ModelAdmin):
    """Jobs are made through the API and run by the generation worker: what they did is a record."""

    list_display = [
        "id", "generator", "corpus", "status", "cancel_requested", "progress_shown", "done", "skipped",
        "failed", "total", "device", "images_per_second", "created_at",
    ]
    list_filter = ["status", "cancel_requested", "generator__workspace", "generator"]
    search_fields = ["generator__name", "corpus__name", "device"]
    list_select_related = ["generator", "corpus"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "generator", "corpus", "item_keys", "seeds_per_item", "status", "cancel_requested", "progress_shown",
        "total", "done", "skipped", "failed", "errors", "error_count", "device", "batch_size", "images_per_second",
        "created_at", "started_at", "heartbeat_at", "finished_at",
    ]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(ImportJob)
class ImportJobAdmin(JobProgressMixin, admin.ModelAdmin):
    """An import job is a record of an upload's import: shown, never edited or added here."""

    list_display = [
        "id", "kind", "workspace", "filename", "status", "progress_shown", "created", "skipped",
        "rejection_count", "created_by", "created_at", "finished_at",
    ]
    list_filter = ["status", "kind", "skip_bad", "workspace"]
    search_fields = ["filename", "name", "error", "generator__name", "corpus__name"]
    list_select_related = ["workspace", "created_by"]
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in ImportJob._meta.fields] + ["progress_shown"]

    def has_add_permission(self, request) -> bool:
        return False
