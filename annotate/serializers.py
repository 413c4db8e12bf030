"""Serializers of the researcher API for studies: their configuration, the options of
opening one, and its progress.

A study refers to a corpus and generators by id; only those of the user's workspaces
are found at all (another workspace's id reads like one that does not exist), and
those of another of the user's workspaces are refused by name.
"""

import json

from django.db.models import Count
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail

from annotate import selectors, study_settings
from annotate.models import Study, Trial
from annotate.study_settings import StudySetting
from generation import selectors as generation_selectors
from generation.presentation import PresentationPolicy
from generation.untrusted import JSONField
from workspaces.serializers import StrictFieldsMixin, WorkspaceField, request_user

# The configuration fields a client sets: what the study compares, and its settings
# (`study_settings`); everything else of a study is read-only.
CONFIG_FIELDS = ["name", "corpus", "generators", *study_settings.NAMES]
POLICY_FIELDS = tuple(PresentationPolicy().to_dict())
POLICY = study_settings.BY_NAME["presentation_policy"]


def setting_kwargs(setting: StudySetting) -> dict:
    """A setting's serializer field, from its declaration; the model field gives its type."""
    kwargs = {"required": False, "help_text": setting.describe(blank="null")}
    if setting.kind in study_settings.NUMERIC:
        kwargs.update(min_value=setting.min, max_value=setting.max, allow_null=setting.nullable)
    return kwargs


class CorpusField(serializers.PrimaryKeyRelatedField):
    """A corpus of the requesting user's workspaces, by id."""

    def get_queryset(self):
        return generation_selectors.corpora_for(user=request_user(self))


class GeneratorField(serializers.PrimaryKeyRelatedField):
    """A generator of the requesting user's workspaces, by id."""

    def get_queryset(self):
        return generation_selectors.generators_for(user=request_user(self))


class TrialCountsSerializer(serializers.Serializer):
    generated = serializers.IntegerField(help_text="A sample against its item's reference.")
    catch = serializers.IntegerField(help_text="The reference against a scrambled copy of itself.")
    calibration = serializers.IntegerField(help_text="The reference against itself (expected 0.5).")
    practice = serializers.IntegerField(help_text="Shown with feedback before the study; never in results.")
    head_to_head = serializers.IntegerField(help_text="Two generators' samples of one prompt, head to head.")


class StudyLinksSerializer(serializers.Serializer):
    invite_url = serializers.URLField(help_text="The invite link, /s/<slug>/.")
    # Not a URLField: Prolific's {{%PROLIFIC_PID%}} placeholders are no valid URI characters,
    # so the schema must not promise format "uri" for it.
    prolific_url = serializers.CharField(
        help_text="The study URL for Prolific, with its PROLIFIC_PID, STUDY_ID and SESSION_ID placeholders."
    )


class StudySerializer(StrictFieldsMixin, serializers.ModelSerializer):
    workspace = WorkspaceField(help_text="Slug or id on create; a study cannot move to another workspace.")
    slug = serializers.SlugField(
        max_length=100,
        help_text="The study's name in its links (/s/<slug>/), unique across Parity; fixed once created.",
    )
    corpus = CorpusField(help_text="Id of a corpus of the same workspace.")
    generators = GeneratorField(
        many=True, required=False, help_text="Ids of generators of the same workspace, each compared with the corpus."
    )
    generators_done = serializers.ListField(
        child=serializers.IntegerField(), read_only=True,
        help_text="Generators no longer served: their interval reached target_half_width.",
    )
    presentation_policy = JSONField(
        required=False,
        help_text=f"{POLICY.describe(blank='null')} As JSON: {json.dumps(POLICY.default_value())}; "
        "fields left out keep these defaults.",
    )
    status = serializers.CharField(read_only=True, help_text="draft, open or closed.")
    item_selection = serializers.JSONField(
        read_only=True,
        help_text="What the last trial build's item filters and sample did: items, each filter's removals, "
        "the sample and its strata.",
    )
    head_to_head_active = serializers.JSONField(
        read_only=True,
        help_text="Pairs of generator ids whose head-to-head trials are served now: the neighbours, or the "
        "uncertain pairs the analysis wrote.",
    )
    generator_history = serializers.JSONField(
        read_only=True,
        help_text="Generators added to or removed from the study after its trials were built, oldest first: "
        '{"generator", "name", "event": "added" or "removed", "at"}.',
    )
    trials = serializers.SerializerMethodField(help_text="Trials by kind, once built (on open).")
    links = serializers.SerializerMethodField(help_text="The links that bring annotators in.")

    class Meta:
        model = Study
        fields = ["id", "workspace", "slug", *CONFIG_FIELDS, "generators_done", "status", "trials", "links",
                  "created_at", "generator_history", "head_to_head_active", "item_selection"]
        extra_kwargs = {setting.name: setting_kwargs(setting) for setting in study_settings.SETTINGS
                        if setting is not POLICY}
        # A slug clash is the service's to report (409 name_taken), race-free.
        validators = []

    @extend_schema_field(TrialCountsSerializer)
    def get_trials(self, study: Study) -> dict:
        if hasattr(study, "trials_generated"):
            return {kind: getattr(study, f"trials_{kind}") for kind in Trial.Kind.values}
        counts = dict.fromkeys(Trial.Kind.values, 0)
        for row in study.trials.values("kind").order_by().annotate(n=Count("id")):
            counts[row["kind"]] = row["n"]
        return counts

    @extend_schema_field(StudyLinksSerializer)
    def get_links(self, study: Study) -> dict:
        return selectors.study_links(study=study, absolute=self.context["request"].build_absolute_uri)

    def validate_presentation_policy(self, value) -> dict:
        if not isinstance(value, dict):
            raise serializers.ValidationError(
                'Give the presentation policy as a JSON object, e.g. {"size": 512, "format": "JPEG"}.',
                code="not_an_object",
            )
        unknown = [key for key in value if key not in POLICY_FIELDS]
        if unknown:
            raise serializers.ValidationError(
                {key: [ErrorDetail("Unknown field.", code="unknown_field")] for key in unknown}
            )
        try:
            return PresentationPolicy.from_dict(value).to_dict()
        except (TypeError, ValueError) as exc:
            message = str(exc)
            # The policy's messages begin with the name of the field at fault.
            name = message.split(" ", 1)[0]
            if name in POLICY_FIELDS:
                raise serializers.ValidationError({name: [ErrorDetail(message, code="invalid")]}) from None
            raise serializers.ValidationError(message) from None

    def validate(self, attrs):
        study = self.instance
        if study is not None:
            for name in ("workspace", "slug"):
                if name in attrs and attrs[name] != getattr(study, name):
                    raise serializers.ValidationError(
                        {name: ErrorDetail(f"A study's {name} does not change once it is created.", code="immutable")}
                    )
        workspace = attrs.get("workspace") or study.workspace
        corpus = attrs.get("corpus") or study.corpus
        if corpus.workspace_id != workspace.pk:
            raise serializers.ValidationError(
                {"corpus": ErrorDetail(f"Corpus {corpus.name!r} belongs to another workspace.", code="wrong_workspace")}
            )
        for generator in attrs.get("generators", ()):
            if generator.workspace_id != workspace.pk:
                raise serializers.ValidationError(
                    {"generators": ErrorDetail(
                        f"Generator {generator.name!r} belongs to another workspace.", code="wrong_workspace"
                    )}
                )
        question = attrs.get("question", study.question if study else study_settings.BY_NAME["question"].default)
        text = attrs.get("question_text", study.question_text if study else "")
        if question == Study.Question.CUSTOM and not text.strip():
            raise serializers.ValidationError(
                {"question_text": ErrorDetail("A custom question needs its text.", code="required")}
            )
        return attrs


class StudyOpenSerializer(StrictFieldsMixin, serializers.Serializer):
    seed = serializers.IntegerField(
        required=False, allow_null=True, min_value=0,
        help_text="Seed for choosing practice and control items, for a reproducible build.",
    )


class StudyGeneratorsSerializer(StrictFieldsMixin, serializers.Serializer):
    generators = serializers.ListField(
        child=serializers.CharField(max_length=200), min_length=1, max_length=1000,
        help_text="Ids or names of generators of the study's workspace.",
    )
    seed = serializers.IntegerField(
        required=False, allow_null=True, min_value=0,
        help_text="Seed of the new trials' random keys, for a reproducible build.",
    )


class StudyOpenedSerializer(StudySerializer):
    trials_created = serializers.IntegerField(read_only=True, help_text="Trials this call built.")

    class Meta(StudySerializer.Meta):
        fields = [*StudySerializer.Meta.fields, "trials_created"]


class GeneratorProgressSerializer(serializers.Serializer):
    generator_id = serializers.IntegerField()
    name = serializers.CharField(help_text="The generator's name.")
    trials = serializers.IntegerField(help_text="Its generated trials.")
    done = serializers.IntegerField(help_text="Judgments made on them.")
    needed = serializers.IntegerField(help_text="Judgments they need: trials × judgments_per_trial.")
    anchor = serializers.BooleanField(help_text="An anchor generator of the study.")


class PairProgressSerializer(serializers.Serializer):
    generator_id = serializers.IntegerField()
    opponent_id = serializers.IntegerField()
    name = serializers.CharField(help_text="The first generator's name.")
    opponent_name = serializers.CharField(help_text="The second generator's name.")
    trials = serializers.IntegerField(help_text="Their head-to-head trials.")
    done = serializers.IntegerField(help_text="Judgments made on them.")
    needed = serializers.IntegerField(help_text="Judgments they need: trials × judgments_per_trial.")
    served = serializers.BooleanField(help_text="The pair is served now (`head_to_head_active`).")


class StudyProgressSerializer(serializers.Serializer):
    """`annotate.selectors.study_progress`."""

    generators = GeneratorProgressSerializer(many=True)
    pairs = PairProgressSerializer(many=True, help_text="Head-to-head trials per pair of generators.")
    done = serializers.IntegerField(help_text="Judgments made on generated trials.")
    needed = serializers.IntegerField(help_text="Judgments the generated trials need in all.")
    catch = serializers.IntegerField(help_text="Judgments of catch trials.")
    catch_passed = serializers.IntegerField(help_text="Catch judgments that chose the real reference.")
    catch_pass_rate = serializers.FloatField(allow_null=True, help_text="catch_passed / catch; null before any.")
    calibration = serializers.IntegerField(help_text="Judgments of calibration trials.")
    calibration_left = serializers.IntegerField(help_text="Calibration judgments that chose the left image.")
    calibration_left_rate = serializers.FloatField(
        allow_null=True, help_text="calibration_left / calibration, expected near 0.5; null before any."
    )
    active_annotators = serializers.IntegerField(help_text="Annotators issued a trial in the last 15 minutes.")
    open_assignments = serializers.IntegerField(help_text="Assignments issued, unanswered and not expired.")
    participations = serializers.IntegerField(help_text="Annotators who entered the study.")
    finished = serializers.IntegerField(help_text="Participations that reached the end.")
    judgments = serializers.IntegerField(help_text="Judgments of the study, practice left out.")
    simulated_annotators = serializers.IntegerField(
        help_text="Participations of simulated annotators (manage.py simulate_annotators)."
    )
    simulated_judgments = serializers.IntegerField(help_text="Judgments (practice left out) by simulated annotators.")
