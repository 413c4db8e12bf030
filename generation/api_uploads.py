"""Files uploaded to the researcher API: streamed to disk, capped, then imported.

An upload endpoint parses multipart/form-data only (anything else is 415) with one
upload handler, `CappedTemporaryFileUploadHandler`: Django's temporary-file handler,
so no upload is ever held whole in memory, counting the bytes so that a body past its
cap stops with 413 as soon as the cap is passed, whatever Content-Length claimed.

A bundle is imported by the CLI's services: during the request when it holds at most
PARITY_API_INLINE_IMPORT_MAX images (201, `upload_import`), else by a worker as an
`ImportJob` (202, with the job's URL in Location).
"""

from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from django.utils.text import get_valid_filename
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.reverse import reverse

from generation import services
from generation.errors import IngestError
from generation.ingest.archives import archive_format, archive_image_count
from generation.serializers import ImportJobSerializer, ImportResultSerializer
from generation.untrusted import MultiPartParser

# Room for the multipart boundaries and the form's text fields around the file.
FORM_OVERHEAD = 64 * 1024


SKIP_BAD_PARAM = OpenApiParameter(
    "skip_bad", OpenApiTypes.BOOL,
    description="Import the good records and list the bad ones (the CLI's --skip-bad); default: all or nothing.",
)


def skip_bad_param(request) -> bool:
    try:
        return serializers.BooleanField().to_internal_value(request.query_params.get("skip_bad", "false"))
    except serializers.ValidationError as exc:
        raise serializers.ValidationError({"skip_bad": exc.detail}) from None


class UploadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"
    default_detail = "The upload is too large."


def too_large(limit: int) -> UploadTooLarge:
    return UploadTooLarge(f"The upload is over the limit of {limit:,} bytes.")


class CappedTemporaryFileUploadHandler(TemporaryFileUploadHandler):
    """Every file to a temporary file on disk; 413 once the files pass `limit` bytes together."""

    def __init__(self, request=None, *, limit: int):
        super().__init__(request)
        self.limit = limit
        self.received = 0

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.limit:
            raise too_large(self.limit)
        return super().receive_data_chunk(raw_data, start)


class UploadView:
    """Mixin of a view that receives files: multipart only (its fields checked), streamed to disk, capped."""

    parser_classes = [MultiPartParser]

    def upload_limit(self) -> int:
        return settings.PARITY_MAX_UPLOAD_BYTES

    def initialize_request(self, request, *args, **kwargs):
        request.upload_handlers = [CappedTemporaryFileUploadHandler(request, limit=self.upload_limit())]
        return super().initialize_request(request, *args, **kwargs)

    def check_length(self, request) -> None:
        """413 before the body is read, where Content-Length already says too much."""
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > self.upload_limit() + FORM_OVERHEAD:
            raise too_large(self.upload_limit())


@dataclass
class ReceivedArchive:
    upload: object  # a TemporaryUploadedFile
    name: str  # a safe file name, ending as its format says (.tar, .zip)
    images: int


def received_archive(upload) -> ReceivedArchive:
    """The uploaded bundle, recognised by its content: a tar (compressed or not), a zip or a
    JSONL bundle, else 415."""
    path = Path(upload.temporary_file_path())
    found = archive_format(path)
    if found is None:
        raise exceptions.UnsupportedMediaType(
            upload.content_type or "", detail=f"{upload.name}: not a tar or zip archive, nor a JSONL bundle."
        )
    try:
        name = get_valid_filename(Path(upload.name).name)
    except SuspiciousFileOperation:
        name = "bundle"
    if found == "zip" and not name.endswith(".zip"):
        name += ".zip"
    if found == "tar" and not name.endswith((".tar", ".tar.gz", ".tgz")):
        name += ".tar"
    if found == "jsonl" and not name.endswith(".jsonl"):
        name += ".jsonl"
    try:
        images = archive_image_count(path, archive_format=found, limits=services.archive_limits())
    except IngestError as exc:
        # Named as the client named it, not by the server's temporary file.
        raise IngestError(str(exc).replace(str(path), name)) from None
    return ReceivedArchive(upload=upload, name=name, images=images)


def import_upload(*, request, upload, kind: str, workspace, generator=None, corpus=None,
                  name: str = "", description: str = "", skip_bad: bool = False,
                  selection: dict | None = None) -> Response:
    """Import an uploaded bundle now (201 with the counts) or queue it (202 with the job)."""
    archive = received_archive(upload)
    fields = {"kind": kind, "workspace": workspace, "generator": generator, "corpus": corpus, "name": name,
              "description": description, "skip_bad": skip_bad, "selection": selection}
    if archive.images <= settings.PARITY_API_INLINE_IMPORT_MAX:
        corpus, result = services.upload_import(path=archive.upload.temporary_file_path(), label=archive.name, **fields)
        body = {
            "corpus": corpus.pk if corpus else None, "created": result.created, "skipped": result.skipped,
            "converted": result.converted, "rejected": result.rejected,
        }
        if selection and (selection.get("where") or selection.get("sample")):
            body.update(filtered=[{"where": text, "removed": n} for text, n in result.filtered],
                        sampled=result.sampled)
        return Response(ImportResultSerializer(body).data, status=status.HTTP_201_CREATED)
    job = services.import_job_create(
        upload=upload, filename=archive.name, total=archive.images, created_by=request.user, **fields
    )
    url = reverse("import-job-detail", args=[job.pk], request=request)
    return Response(ImportJobSerializer(job).data, status=status.HTTP_202_ACCEPTED, headers={"Location": url})

