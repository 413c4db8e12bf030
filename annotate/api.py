"""annotate endpoints of the researcher API: studies (configuration, open, close,
progress) and the raw judgments export.

    GET, POST /api/v1/studies/
    GET, PATCH, DELETE /api/v1/studies/<slug>/
    POST /api/v1/studies/<slug>/open/, POST /api/v1/studies/<slug>/close/
    GET /api/v1/studies/<slug>/progress/
    GET /api/v1/studies/<slug>/judgments/?format=csv|jsonl&generator=...&since=...&until=...&controls=...

Studies come from `annotate.selectors.studies_for`, so another workspace's study is a
404 like one that does not exist; writes need a role other than viewer in the study's
workspace (`workspaces.drf.WorkspaceWriteAccess`, as for generators) and go through
`annotate.services`, like the CLI's.

`?format=` names the file format here. DRF would otherwise read it as its own
renderer override (URL_FORMAT_OVERRIDE) and answer 404 for a format it has no
renderer for, so this view negotiates nothing: its errors are always JSON, and the
export itself is a StreamingHttpResponse that no renderer touches.
"""

import re

from django.http import Http404, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate import exports, selectors, services, study_settings
from annotate.models import Study
from annotate.serializers import (
    StudyGeneratorsSerializer,
    StudyOpenedSerializer,
    StudyOpenSerializer,
    StudyProgressSerializer,
    StudySerializer,
)
from generation.models import Generator
from generation.untrusted import JSONParser
from workspaces.drf import WORKSPACE_PARAM, NoNegotiation, ScopedPermissions, filter_workspace, require_write

CSV_EXAMPLE = (
    "judgment,study,trial,kind,generator,generator_id,item_key,reference_side,choice,chose_generated,"
    "client_response_ms,server_response_ms,annotator,issued_at,judged_at,simulated,opponent,opponent_id\r\n"
    "812,coco-ladder,77,generated,ladder-M,3,000123,left,right,true,1840,1912,"
    "4b0c9a8e-5f7e-4f1e-9a53-0d1f4f4f2a11,2025-05-02T09:14:03.120455+00:00,2025-05-02T09:14:05.301872+00:00,false,,\r\n"
)
JSONL_EXAMPLE = (
    '{"judgment":812,"study":"coco-ladder","trial":77,"kind":"generated","generator":"ladder-M",'
    '"generator_id":3,"item_key":"000123","reference_side":"left","choice":"right","chose_generated":true,'
    '"client_response_ms":1840,"server_response_ms":1912,"annotator":"4b0c9a8e-5f7e-4f1e-9a53-0d1f4f4f2a11",'
    '"issued_at":"2025-05-02T09:14:03.120455+00:00","judged_at":"2025-05-02T09:14:05.301872+00:00",'
    '"simulated":false,"opponent":null,"opponent_id":null}\n'
)

# A time, then a space where the "+" of a UTC offset was.
_SPACED_OFFSET = re.compile(r"^(.*\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d:?\d\d)$")


@extend_schema_field(OpenApiTypes.STR)
class _Moment(serializers.DateTimeField):
    """An ISO 8601 date or datetime; naive means UTC.

    An unencoded "+" of an offset reaches the server as a space
    (``since=2025-05-01T10:00:00+02:00`` in a shell), so a space before the offset
    is read as the "+" it was.
    """

    def to_internal_value(self, value):
        if isinstance(value, str):
            value = _SPACED_OFFSET.sub(r"\1+\2", value.strip())
        return super().to_internal_value(value)


class JudgmentExportQuery(serializers.Serializer):
    format = serializers.ChoiceField(
        choices=list(exports.FORMATS), default="csv", help_text="File format: csv (default) or jsonl."
    )
    generator = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="A generator id or name; repeat for several. Keeps the generated trials of these "
        "generators; control trials follow `controls` alone.",
    )
    since = _Moment(
        required=False,
        help_text="Judged at or after (inclusive): an ISO 8601 date or datetime; naive means UTC.",
    )
    until = _Moment(
        required=False,
        help_text="Judged before (exclusive): an ISO 8601 date or datetime; naive means UTC.",
    )
    controls = serializers.ChoiceField(
        choices=list(exports.CONTROLS),
        default="include",
        help_text="Control trials (catch and calibration): include (default), exclude, or only. "
        "Practice judgments are never exported.",
    )

    def validate_generator(self, values: list[str]) -> tuple[int, ...]:
        workspace_id = self.context["study"].workspace_id
        known = dict(Generator.objects.filter(workspace_id=workspace_id).values_list("name", "id"))
        ids = set(known.values())
        resolved, unknown = [], []
        for value in values:
            if value in known:
                resolved.append(known[value])
            elif value.isdigit() and int(value) in ids:
                resolved.append(int(value))
            else:
                unknown.append(value)
        if unknown:
            raise ValidationError(
                f"no generator with this id or name in the study's workspace: {', '.join(map(repr, unknown))}"
            )
        return tuple(sorted(set(resolved)))

    def validate(self, attrs: dict) -> dict:
        since, until = attrs.get("since"), attrs.get("until")
        if since is not None and until is not None and until <= since:
            raise ValidationError({"until": "until must be later than since"})
        return attrs


class JudgmentExport(APIView):
    """Every judgment of a study (practice excluded), streamed as CSV or JSONL."""

    renderer_classes = (JSONRenderer,)
    content_negotiation_class = NoNegotiation

    @extend_schema(
        operation_id="study_judgments_export",
        summary="Export a study's judgments",
        description=exports.__doc__,
        parameters=[JudgmentExportQuery],
        responses={
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR,
                description="CSV with a header line, streamed.",
                examples=[OpenApiExample("csv", value=CSV_EXAMPLE, media_type="text/csv")],
            ),
            (200, "application/x-ndjson"): OpenApiResponse(
                OpenApiTypes.STR,
                description="One JSON object per line, streamed.",
                examples=[OpenApiExample("jsonl", value=JSONL_EXAMPLE, media_type="application/x-ndjson")],
            ),
        },
    )
    def get(self, request, slug: str):
        study = selectors.study_for_user(user=request.user, slug=slug)
        if study is None:
            raise Http404("no such study")
        query = JudgmentExportQuery(data=request.query_params, context={"study": study})
        query.is_valid(raise_exception=True)
        params = query.validated_data
        filters = exports.ExportFilters(
            generator_ids=params.get("generator", ()),
            since=params.get("since"),
            until=params.get("until"),
            controls=params["controls"],
        )
        file_format = params["format"]
        content_type, extension = exports.FORMATS[file_format]
        response = StreamingHttpResponse(
            exports.export_stream(study=study, filters=filters, file_format=file_format),
            content_type=content_type,
        )
        response["Content-Disposition"] = f'attachment; filename="{study.slug}-judgments.{extension}"'
        response["Cache-Control"] = "no-store"
        return response


# ------------------------------------------------------------------------------
# Studies
# ------------------------------------------------------------------------------
# Every setting (`study_settings`) at its default, but for those a typical study sets.
STUDY_REQUEST = {
    "workspace": "lab", "name": "COCO ladder", "slug": "coco-ladder", "corpus": 3, "generators": [7, 8],
    **study_settings.defaults(),
    "question": "realism", "instructions": "Pick the photograph.",
    "consent_text": "Your choices are recorded under a pseudonym.", "break_every": 20, "completion_code": "C1A2B3",
    "target_half_width": 0.05,
}
STUDY_EXAMPLE = {
    "id": 4, **STUDY_REQUEST, "generators_done": [], "status": "draft",
    "trials": {"generated": 0, "catch": 0, "calibration": 0, "practice": 0, "head_to_head": 0},
    "links": {
        "invite_url": "http://127.0.0.1:8000/s/coco-ladder/",
        "prolific_url": "http://127.0.0.1:8000/s/coco-ladder/?" + selectors.PROLIFIC_QUERY,
    },
    "created_at": "2025-05-01T09:12:00Z", "generator_history": [], "head_to_head_active": [], "item_selection": {},
}
OPENED_EXAMPLE = {
    **STUDY_EXAMPLE, "status": "open",
    "trials": {"generated": 9994, "catch": 500, "calibration": 250, "practice": 3, "head_to_head": 0},
    "trials_created": 10747,
}
PROGRESS_EXAMPLE = {
    "generators": [
        {"generator_id": 7, "name": "ladder-M", "trials": 4997, "done": 5120, "needed": 14991, "anchor": False},
        {"generator_id": 8, "name": "ladder-L", "trials": 4997, "done": 5087, "needed": 14991, "anchor": False},
    ],
    "pairs": [{"generator_id": 7, "opponent_id": 8, "name": "ladder-M", "opponent_name": "ladder-L", "trials": 4997,
               "done": 1200, "needed": 14991, "served": True}],
    "done": 10207, "needed": 29982, "catch": 1020, "catch_passed": 991, "catch_pass_rate": 0.9716,
    "calibration": 512, "calibration_left": 249, "calibration_left_rate": 0.4863,
    "active_annotators": 31, "open_assignments": 58, "participations": 212, "finished": 160,
}
_AFTER_OPEN = [f"`{setting.name}`" for setting in study_settings.SETTINGS if setting.changes_after_open]
DRAFT_RULE = (
    "The configuration changes only while the study is a draft: once opened (or closed) it is "
    f"fixed{' but for ' + ', '.join(_AFTER_OPEN) if _AFTER_OPEN else ''}, and a change is refused with 409 "
    "`study_not_draft`. The workspace and slug never change."
)


def _generators_named(study: Study, values: list[str], *, missing=ValidationError) -> list[Generator]:
    """Generators of the study's workspace by id or name, in the order given; the first
    value that names none is an error that quotes it."""
    found, unknown = selectors.generators_named(study=study, values=values)
    if unknown is not None:
        message = f"No generator {unknown!r} in workspace {study.workspace.slug!r}."
        raise Http404(message) if missing is Http404 else ValidationError({"generators": [message]})
    return found


@extend_schema_view(
    list=extend_schema(
        summary="Studies of your workspaces",
        parameters=[
            WORKSPACE_PARAM,
            OpenApiParameter("status", OpenApiTypes.STR, enum=list(Study.Status.values), description="Only studies in this state."),
        ],
        examples=[OpenApiExample("Studies", value=[STUDY_EXAMPLE], response_only=True)],
    ),
    retrieve=extend_schema(
        summary="One study: configuration, status, trial counts, annotator links",
        examples=[OpenApiExample("Study", value=STUDY_EXAMPLE, response_only=True)],
    ),
    create=extend_schema(
        summary="Create a draft study (owner or member)",
        description="Fields left out keep their defaults. The corpus and generators must belong to the "
        "study's workspace. Open it with POST /api/v1/studies/{slug}/open/. " + DRAFT_RULE,
        examples=[
            OpenApiExample("New study", value=STUDY_REQUEST, request_only=True),
            OpenApiExample("Created", value=STUDY_EXAMPLE, response_only=True, status_codes=["201"]),
        ],
    ),
    partial_update=extend_schema(
        summary="Change a draft study's configuration (owner or member)",
        description=DRAFT_RULE,
        examples=[
            OpenApiExample("More judgments", value={"judgments_per_trial": 5, "catch_rate": 0.15}, request_only=True),
            OpenApiExample("Changed", value={**STUDY_EXAMPLE, "judgments_per_trial": 5, "catch_rate": 0.15},
                           response_only=True),
        ],
    ),
    destroy=extend_schema(
        summary="Delete a draft study without trials (owner or member)",
        description="An opened or closed study, or a draft whose trials are built, is kept: 409.",
    ),
)
@extend_schema(tags=["studies"])
class StudyViewSet(
    ScopedPermissions,
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = StudySerializer
    lookup_field = "slug"
    lookup_value_regex = r"[-a-zA-Z0-9_]+"

    def get_queryset(self):
        studies = selectors.studies_for(user=self.request.user).order_by("-created_at", "-pk")
        studies = filter_workspace(studies, self.request.query_params.get("workspace"))
        if self.action == "list" and (state := self.request.query_params.get("status")):
            if state not in Study.Status.values:
                raise ValidationError({"status": [f"Give one of {', '.join(Study.Status.values)}."]})
            studies = studies.filter(status=state)
        return studies

    def _fresh(self, study: Study) -> Study:
        """The study again, with its trial counts."""
        return selectors.studies_for(user=self.request.user).get(pk=study.pk)

    def perform_create(self, serializer):
        fields = dict(serializer.validated_data)
        require_write(self.request, fields["workspace"])
        serializer.instance = self._fresh(services.study_create(**fields))

    def partial_update(self, request, slug: str):
        study = self.get_object()
        serializer = self.get_serializer(study, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        fields = {name: value for name, value in serializer.validated_data.items() if name not in ("workspace", "slug")}
        services.study_update(study=study, **fields)
        return Response(self.get_serializer(self._fresh(study)).data)

    def perform_destroy(self, instance):
        services.study_delete(study=instance)

    @extend_schema(
        summary="Build the study's trials and open it to annotators (owner or member)",
        description="Builds what is missing (all the trials on the first call: practice set aside, one "
        "generated trial per generator and item with a sample, catch and calibration controls at the "
        "study's rates), then opens the study; the invite and Prolific links are in `links`. "
        "A study with nothing to judge, or a closed one, is a 409.",
        request=StudyOpenSerializer,
        responses=StudyOpenedSerializer,
        examples=[
            OpenApiExample("Reproducible build", value={"seed": 3}, request_only=True),
            OpenApiExample("Opened", value=OPENED_EXAMPLE, response_only=True),
        ],
    )
    @action(detail=True, methods=["post"])
    def open(self, request, slug: str):
        study = self.get_object()
        options = StudyOpenSerializer(data=request.data)
        options.is_valid(raise_exception=True)
        created = services.study_build_trials(study=study, rng_seed=options.validated_data.get("seed"))
        services.study_open(study=study)
        opened = self._fresh(study)
        opened.trials_created = created
        return Response(StudyOpenedSerializer(opened, context=self.get_serializer_context()).data)

    @extend_schema(
        summary="Close the study (owner or member)",
        description="It issues no more assignments; those already issued may still be judged.",
        request=None,
        responses=StudySerializer,
        examples=[OpenApiExample("Closed", value={**OPENED_EXAMPLE, "status": "closed"}, response_only=True)],
    )
    @action(detail=True, methods=["post"])
    def close(self, request, slug: str):
        study = services.study_close(study=self.get_object())
        return Response(self.get_serializer(self._fresh(study)).data)

    @extend_schema(
        summary="Add generators to a draft or open study (owner or member)",
        description="Generators of the study's workspace, by id or name, join the study. Once its trials "
        "are built, the newcomers' generated trials are built at once (existing trials and judgments are "
        "untouched) and, having no judgments, are served first until they catch up. Each addition is "
        "recorded with its time in `generator_history`, which the report's configuration carries. "
        "A generator already in the study is left as it is; a closed study is a 409.",
        request=StudyGeneratorsSerializer,
        responses=StudyOpenedSerializer,
        examples=[
            OpenApiExample("New checkpoints", value={"generators": ["ladder-L-step40000", 12]}, request_only=True),
            OpenApiExample("Added", value={**OPENED_EXAMPLE, "trials_created": 1996}, response_only=True),
        ],
    )
    # JSON only: a form repeating `generators` past Django's field limit would be refused
    # before this view, by a page that is not JSON.
    @action(detail=True, methods=["post"], url_path="generators", parser_classes=[JSONParser])
    def add_generators(self, request, slug: str):
        study = self.get_object()
        body = StudyGeneratorsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        generators = _generators_named(study, body.validated_data["generators"])
        study, created = services.study_add_generators(
            study=study, generators=generators, rng_seed=body.validated_data.get("seed"))
        added = self._fresh(study)
        added.trials_created = created
        return Response(StudyOpenedSerializer(added, context=self.get_serializer_context()).data)

    @extend_schema(
        summary="Remove a generator from a draft or open study (owner or member)",
        description="The generator (id or name) leaves the study: no more of its trials are issued, and its "
        "trials and judgments are kept and still analysed. The removal is recorded in "
        "`generator_history`; adding the generator again serves its trials again.",
        request=None,
        responses=StudySerializer,
    )
    @action(detail=True, methods=["delete"], url_path=r"generators/(?P<generator>[^/]+)")
    def remove_generator(self, request, slug: str, generator: str):
        study = self.get_object()
        (found,) = _generators_named(study, [generator], missing=Http404)
        study = services.study_remove_generators(study=study, generators=[found])
        return Response(self.get_serializer(self._fresh(study)).data)

    @extend_schema(
        summary="The study's progress",
        description=selectors.study_progress.__doc__,
        responses=StudyProgressSerializer,
        examples=[OpenApiExample("Progress", value=PROGRESS_EXAMPLE, response_only=True)],
    )
    @action(detail=True, methods=["get"])
    def progress(self, request, slug: str):
        study = self.get_object()
        return Response(StudyProgressSerializer(selectors.study_progress(study=study)).data)
