"""annotate endpoints of the researcher API: the raw judgments export.

    GET /api/v1/studies/<slug>/judgments/?format=csv|jsonl&generator=...&since=...&until=...&controls=...

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
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from annotate import exports, selectors
from generation.models import Generator

CSV_EXAMPLE = (
    "judgment,study,trial,kind,generator,generator_id,item_key,reference_side,choice,chose_generated,"
    "client_response_ms,server_response_ms,annotator,issued_at,judged_at\r\n"
    "812,coco-ladder,77,generated,ladder-M,3,000123,left,right,true,1840,1912,"
    "4b0c9a8e-5f7e-4f1e-9a53-0d1f4f4f2a11,2025-05-02T09:14:03.120455+00:00,2025-05-02T09:14:05.301872+00:00\r\n"
)
JSONL_EXAMPLE = (
    '{"judgment":812,"study":"coco-ladder","trial":77,"kind":"generated","generator":"ladder-M",'
    '"generator_id":3,"item_key":"000123","reference_side":"left","choice":"right","chose_generated":true,'
    '"client_response_ms":1840,"server_response_ms":1912,"annotator":"4b0c9a8e-5f7e-4f1e-9a53-0d1f4f4f2a11",'
    '"issued_at":"2025-05-02T09:14:03.120455+00:00","judged_at":"2025-05-02T09:14:05.301872+00:00"}\n'
)

# A time, then a space where the "+" of a UTC offset was.
_SPACED_OFFSET = re.compile(r"^(.*\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d:?\d\d)$")


class _NoNegotiation(BaseContentNegotiation):
    """Always the view's first renderer (JSON, for errors), whatever ?format= or Accept say."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


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
    content_negotiation_class = _NoNegotiation

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
