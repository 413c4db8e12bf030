from django.contrib import admin

from . import study_settings
from .models import Annotator, Assignment, Judgment, Participation, Study, Trial


@admin.register(Annotator)
class AnnotatorAdmin(admin.ModelAdmin):
    list_display = ["pseudonym", "source", "external_id", "user", "created_at"]
    list_filter = ["source"]
    search_fields = ["external_id", "pseudonym", "user__username"]


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "workspace", "corpus", "status", "question", "judgments_per_trial", "created_at"]
    list_filter = ["status", "question", "workspace"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["generators"]
    # The settings by their declared groups, with their declared help (`study_settings`).
    fieldsets = [
        (None, {"fields": ["workspace", "name", "slug", "corpus", "generators", "status"]}),
        *((group, {"fields": names}) for group, names in study_settings.groups()),
        ("Written by the analysis", {"fields": ["generators_done", "head_to_head_active"]}),
        ("Written by the services", {"fields": ["generator_history", "trial_seed", "item_selection"]}),
    ]
    # The record of generators joining and leaving, and the seed the first build drew.
    readonly_fields = ["generator_history", "trial_seed", "item_selection"]

    def get_form(self, request, obj=None, **kwargs):
        help_texts = {setting.name: setting.describe(blank="blank") for setting in study_settings.SETTINGS}
        return super().get_form(request, obj, help_texts={**help_texts, **kwargs.pop("help_texts", {})}, **kwargs)


@admin.register(Participation)
class ParticipationAdmin(admin.ModelAdmin):
    list_display = [
        "id", "study", "annotator", "prolific_study_id", "prolific_session_id", "consented_at", "finished_at",
        "created_at",
    ]
    list_filter = [
        "study",
        "annotator__source",
        ("consented_at", admin.EmptyFieldListFilter),
        ("finished_at", admin.EmptyFieldListFilter),
    ]
    search_fields = ["annotator__external_id", "annotator__pseudonym", "prolific_study_id", "prolific_session_id"]
    raw_id_fields = ["annotator"]
    list_select_related = ["study", "annotator"]
    date_hierarchy = "created_at"


@admin.register(Trial)
class TrialAdmin(admin.ModelAdmin):
    list_display = ["id", "study", "kind", "item", "sample", "active_count", "judgment_count"]
    list_filter = ["kind", "study"]
    search_fields = ["item__key"]
    raw_id_fields = ["item", "sample"]
    list_select_related = ["study", "item", "sample"]


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["id", "study", "trial", "annotator", "reference_side", "issued_at", "expires_at"]
    list_filter = ["study", "reference_side"]
    search_fields = ["annotator__external_id", "token"]
    raw_id_fields = ["trial", "annotator", "item"]
    list_select_related = ["study", "trial", "annotator"]


@admin.register(Judgment)
class JudgmentAdmin(admin.ModelAdmin):
    """Read-only: judgments are append-only and are excluded at analysis time, never edited."""

    list_display = ["id", "assignment", "choice", "client_response_ms", "server_response_ms", "created_at"]
    list_filter = ["choice", "assignment__study"]
    search_fields = ["assignment__annotator__external_id"]
    list_select_related = ["assignment"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
