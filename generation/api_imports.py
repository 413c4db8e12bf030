"""Upload endpoints of the researcher API: a generator's samples (one image, or a bundle),
and the import jobs that large uploads become.

Uploads are streamed to disk and capped (`generation.api_uploads`); what is uploaded goes
through the CLI's imports, with their validation and all-or-nothing rule.
"""

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
)
from rest_framework import generics, pagination, status
from rest_framework.response import Response

from generation import selectors, services
from generation.api_uploads import (
    SKIP_BAD_PARAM,
    UploadView,
    import_upload,
    skip_bad_param,
    too_large,
)
from generation.errors import IngestError
from generation.models import ImportJob
from generation.serializers import (
    ImportJobSerializer,
    ImportResultSerializer,
    SampleBundleSerializer,
    SampleSerializer,
    SampleUploadSerializer,
)
from workspaces.drf import WORKSPACE_PARAM, ScopedPermissions, filter_workspace, require_write

SAMPLE_EXAMPLE = {
    "id": 41, "generator": 7, "corpus": 3, "item_key": "0001", "seed": 0,
    "image": "http://127.0.0.1:8000/media/originals/5e/5e88….png",
    "sha256": "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8",
    "width": 512, "height": 512, "format": "PNG", "mode": "RGB", "byte_size": 301_544,
    "created_at": "2025-01-30T09:12:00Z",
}
RESULT_EXAMPLE = {"corpus": 3, "created": 120, "skipped": 0, "converted": 0, "rejected": []}
JOB_EXAMPLE = {
    "id": 5, "kind": "samples", "status": "running", "progress": 0.42, "workspace": "lab", "generator": 7,
    "corpus": 3, "name": "", "filename": "ladder-M.tar", "skip_bad": False, "total": 5000, "done": 2100,
    "created": 0, "skipped": 0, "converted": 0, "rejections": [], "rejection_count": 0, "error": "", "cancel_requested": False,
    "created_at": "2025-01-30T09:12:00Z", "started_at": "2025-01-30T09:12:02Z", "finished_at": None,
}
REFUSED_EXAMPLE = OpenApiExample(
    "Import refused", status_codes=["400"], response_only=True,
    value={"error": {
        "code": "import_refused", "field": None,
        "message": "import refused: 1 bad sample; nothing was written …",
        "details": [{"origin": "ladder-M.tar:manifest.jsonl:3 (samples/0003.png)",
                     "reason": "unknown item key '0003': corpus 'coco-val-5k' has no such item"}],
    }},
)


class SampleCursorPagination(pagination.CursorPagination):
    """A generator may have millions of samples: a cursor stays fast while samples are added."""

    ordering = "id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


@extend_schema(tags=["samples"])
class GeneratorSamples(UploadView, generics.ListAPIView):
    serializer_class = SampleSerializer
    pagination_class = SampleCursorPagination

    def upload_limit(self) -> int:
        return settings.PARITY_MAX_IMAGE_BYTES

    def generator(self):
        # 404 for a generator outside the user's workspaces, before any byte of an upload is read.
        return get_object_or_404(selectors.generators_for(user=self.request.user), pk=self.kwargs["generator_id"])

    def get_queryset(self):
        samples = selectors.samples_for(user=self.request.user, generator_id=self.generator().pk)
        if key := self.request.query_params.get("item_key"):
            samples = samples.filter(item__key=key)
        return samples

    @extend_schema(
        summary="Samples of a generator (cursor pagination)",
        parameters=[OpenApiParameter("item_key", OpenApiTypes.STR, description="Only the samples of this item key.")],
        examples=[OpenApiExample("Samples", value=[SAMPLE_EXAMPLE], response_only=True)],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Upload one sample: an image, its item key and seed (owner or member)",
        description=(
            "multipart/form-data. The image is validated as an import validates it. A sample for the same "
            "generator, item and seed is a 409 `duplicate` with `details.existing_id`; an image over "
            "PARITY_MAX_IMAGE_BYTES is a 413; any other content type than multipart/form-data a 415."
        ),
        request={"multipart/form-data": SampleUploadSerializer},
        responses={
            201: SampleSerializer,
            413: OpenApiResponse(description="The image is over PARITY_MAX_IMAGE_BYTES."),
            415: OpenApiResponse(description="Not multipart/form-data."),
        },
        examples=[
            OpenApiExample("Uploaded", value=SAMPLE_EXAMPLE, response_only=True, status_codes=["201"]),
            OpenApiExample(
                "Duplicate", status_codes=["409"], response_only=True,
                value={"error": {"code": "duplicate", "field": None, "details": {"existing_id": 41},
                                 "message": "generator 'ladder-M' already has a sample for key '0001' with seed 0"}},
            ),
        ],
    )
    def post(self, request, *args, **kwargs):
        generator = self.generator()
        require_write(request, generator.workspace)
        self.check_length(request)
        upload = SampleUploadSerializer(data=request.data, context={"request": request, "generator": generator})
        upload.is_valid(raise_exception=True)
        data = upload.validated_data
        if data["file"].size > settings.PARITY_MAX_IMAGE_BYTES:
            raise too_large(settings.PARITY_MAX_IMAGE_BYTES)
        try:
            sample = services.sample_add(
                generator=generator, corpus=data["corpus"], key=data["item_key"], seed=data["seed"],
                data=data["file"].read(), origin=data["file"].name,
            )
        except IngestError as exc:
            exc.field = "file"
            raise
        return Response(SampleSerializer(sample, context=self.get_serializer_context()).data, status=status.HTTP_201_CREATED)


@extend_schema(
    tags=["samples"],
    summary="Upload a bundle of samples: a tar or zip with manifest.jsonl, or a JSONL bundle (owner or member)",
    description=(
        "multipart/form-data with `file`: the layout `manage.py import_samples` reads, one "
        '`{"key", "file", "seed"}` per manifest line; or a JSONL bundle, one `{"key", "seed", "image"}` '
        "per line with the image base64 (plain or a data: URI). All or nothing unless `?skip_bad=true`. A bundle "
        "of at most PARITY_API_INLINE_IMPORT_MAX images is imported during the request (201, with the "
        "counts); a larger one by a worker (202, the import job, its URL in Location)."
    ),
    parameters=[SKIP_BAD_PARAM],
    request={"multipart/form-data": SampleBundleSerializer},
    responses={
        201: ImportResultSerializer,
        202: ImportJobSerializer,
        413: OpenApiResponse(description="The upload is over PARITY_MAX_UPLOAD_BYTES."),
        415: OpenApiResponse(description="Not multipart/form-data, or the file is no tar or zip."),
    },
    examples=[
        OpenApiExample("Imported", value=RESULT_EXAMPLE, response_only=True, status_codes=["201"]),
        OpenApiExample("Queued", value={**JOB_EXAMPLE, "status": "queued", "progress": 0.0, "done": 0,
                                        "started_at": None}, response_only=True, status_codes=["202"]),
        REFUSED_EXAMPLE,
    ],
)
class SampleBundleUpload(UploadView, generics.GenericAPIView):
    serializer_class = SampleBundleSerializer

    def post(self, request, generator_id: int):
        generator = get_object_or_404(selectors.generators_for(user=request.user), pk=generator_id)
        require_write(request, generator.workspace)
        self.check_length(request)
        skip_bad = skip_bad_param(request)
        bundle = SampleBundleSerializer(data=request.data, context={"request": request, "generator": generator})
        bundle.is_valid(raise_exception=True)
        return import_upload(
            request=request, upload=bundle.validated_data["file"], kind=ImportJob.Kind.SAMPLES,
            workspace=generator.workspace, generator=generator, corpus=bundle.validated_data["corpus"],
            skip_bad=skip_bad,
        )


# ------------------------------------------------------------------------------
# Import jobs
# ------------------------------------------------------------------------------


@extend_schema(
    tags=["import jobs"],
    summary="Import jobs of your workspaces, newest first",
    parameters=[WORKSPACE_PARAM],
    examples=[OpenApiExample("Jobs", value=[JOB_EXAMPLE], response_only=True)],
)
class ImportJobList(generics.ListAPIView):
    serializer_class = ImportJobSerializer

    def get_queryset(self):
        found = selectors.import_jobs_for(user=self.request.user).order_by("-created_at", "-pk")
        return filter_workspace(found, self.request.query_params.get("workspace"))


@extend_schema(
    tags=["import jobs"],
    summary="One import job: status, progress, counts and rejections",
    examples=[OpenApiExample("Running", value=JOB_EXAMPLE, response_only=True)],
)
class ImportJobDetail(generics.RetrieveAPIView):
    serializer_class = ImportJobSerializer

    def get_queryset(self):
        return selectors.import_jobs_for(user=self.request.user)


@extend_schema(
    tags=["import jobs"],
    summary="Cancel an import job (owner or member)",
    description=(
        "A queued job is cancelled at once; a running one stops at its next progress tick and writes "
        "nothing (on SQLite a running import cannot be stopped: 409). A job that has ended: 409."
    ),
    request=None,
    responses={200: ImportJobSerializer},
    examples=[OpenApiExample("Cancelled", value={**JOB_EXAMPLE, "status": "cancelled", "cancel_requested": True},
                             response_only=True)],
)
class ImportJobCancel(ScopedPermissions, generics.GenericAPIView):
    serializer_class = ImportJobSerializer

    def get_queryset(self):
        return selectors.import_jobs_for(user=self.request.user)

    def post(self, request, pk: int):
        job = services.import_job_cancel(job=self.get_object())
        return Response(ImportJobSerializer(job).data)
