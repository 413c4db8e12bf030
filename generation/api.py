"""generation endpoints of the researcher API: corpora and their items, series,
generators. Samples and import jobs are in `generation.api_imports`.

Every queryset comes from `generation.selectors`, so an object outside the
requesting user's workspaces is a 404 like one that does not exist; writes also
need a role other than viewer in the object's workspace (`workspaces.drf`).
Writes go through `generation.services`, like the CLI's.
"""

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import generics, mixins, pagination, viewsets

from generation import selectors, services
from generation.api_uploads import SKIP_BAD_PARAM, UploadView, import_upload, skip_bad_param
from generation.errors import NameTaken
from generation.models import Corpus, ImportJob
from generation.serializers import (
    CorpusSerializer,
    CorpusUploadSerializer,
    GeneratorSerializer,
    ImportJobSerializer,
    ImportResultSerializer,
    ItemSerializer,
    SeriesSerializer,
)
from workspaces.drf import WORKSPACE_PARAM, ScopedPermissions, filter_workspace, id_param, require_write

# ------------------------------------------------------------------------------
# Corpora and items
# ------------------------------------------------------------------------------
CORPUS_EXAMPLE = {
    "id": 3, "workspace": "lab", "name": "coco-val-5k", "description": "", "source": "/data/coco-val",
    "item_count": 5000, "created_at": "2025-01-30T09:12:00Z",
}


@extend_schema_view(
    list=extend_schema(
        summary="Corpora of your workspaces",
        parameters=[WORKSPACE_PARAM],
        examples=[OpenApiExample("Corpora", value=[CORPUS_EXAMPLE], response_only=True)],
    ),
    retrieve=extend_schema(
        summary="One corpus, with its item count",
        examples=[OpenApiExample("Corpus", value=CORPUS_EXAMPLE, response_only=True)],
    ),
    create=extend_schema(
        summary="Create a corpus from an uploaded archive (owner or member)",
        description=(
            "multipart/form-data with `workspace`, `name`, optional `description` and `file`: a tar or zip "
            "with captions.jsonl or captions.csv at its top (the folder layout `manage.py import_corpus` "
            "reads), a WebDataset shard, or a JSONL bundle: one `{\"key\", \"caption\", \"image\"}` per line, "
            "the image base64 (plain or a data: URI). All or nothing unless `?skip_bad=true`. An archive of at most "
            "PARITY_API_INLINE_IMPORT_MAX images is imported during the request (201, with the counts); a "
            "larger one by a worker (202, the import job, its URL in Location)."
        ),
        parameters=[SKIP_BAD_PARAM],
        request={"multipart/form-data": CorpusUploadSerializer},
        responses={
            201: ImportResultSerializer,
            202: ImportJobSerializer,
            413: OpenApiResponse(description="The upload is over PARITY_MAX_UPLOAD_BYTES."),
            415: OpenApiResponse(description="Not multipart/form-data, or the file is no tar or zip."),
        },
        examples=[OpenApiExample(
            "Imported", value={"corpus": 3, "created": 120, "skipped": 0, "converted": 2, "rejected": []},
            response_only=True, status_codes=["201"],
        )],
    ),
)
@extend_schema(tags=["corpora"])
class CorpusViewSet(UploadView, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Corpora are read here, and made by an upload (or `manage.py import_corpus`)."""

    serializer_class = CorpusSerializer

    def get_queryset(self):
        corpora = selectors.corpora_for(user=self.request.user).order_by("name", "pk")
        return filter_workspace(corpora, self.request.query_params.get("workspace"))

    def get_serializer_class(self):
        return CorpusUploadSerializer if self.action == "create" else CorpusSerializer

    def create(self, request, *args, **kwargs):
        self.check_length(request)
        skip_bad = skip_bad_param(request)
        upload = CorpusUploadSerializer(data=request.data, context=self.get_serializer_context())
        upload.is_valid(raise_exception=True)
        fields = upload.validated_data
        require_write(request, fields["workspace"])
        if Corpus.objects.filter(workspace=fields["workspace"], name=fields["name"]).exists():
            raise NameTaken(f"workspace {fields['workspace'].slug!r} already has a corpus named {fields['name']!r}")
        return import_upload(
            request=request, upload=fields["file"], kind=ImportJob.Kind.CORPUS, workspace=fields["workspace"],
            name=fields["name"], description=fields["description"], skip_bad=skip_bad,
            selection=upload.selection(),
        )


class ItemCursorPagination(pagination.CursorPagination):
    """Corpora reach millions of items: a cursor stays fast and stable while items are added."""

    ordering = "key"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


@extend_schema(
    tags=["corpora"],
    summary="Items of a corpus, by key (cursor pagination)",
    parameters=[
        OpenApiParameter("key", OpenApiTypes.STR, description="Only the item with exactly this key."),
        OpenApiParameter("search", OpenApiTypes.STR, description="Only items whose caption contains this text (any case)."),
    ],
    examples=[
        OpenApiExample(
            "Items",
            value=[{
                "id": 17, "key": "0001", "caption": "a red cube on a blue floor", "meta": {"split": "val"},
                "image": "http://127.0.0.1:8000/media/originals/9f/9f86d0….png",
                "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                "width": 512, "height": 512, "format": "PNG", "mode": "RGB",
            }],
            response_only=True,
        )
    ],
)
class ItemList(generics.ListAPIView):
    serializer_class = ItemSerializer
    pagination_class = ItemCursorPagination

    def get_queryset(self):
        corpus_id = self.kwargs["corpus_id"]
        # 404 for a corpus outside the user's workspaces, not an empty list.
        get_object_or_404(selectors.corpora_for(user=self.request.user), pk=corpus_id)
        items = selectors.items_for(user=self.request.user, corpus_id=corpus_id)
        if key := self.request.query_params.get("key"):
            items = items.filter(key=key)
        if search := self.request.query_params.get("search"):
            items = items.filter(caption__icontains=search)
        return items


# ------------------------------------------------------------------------------
# Series
# ------------------------------------------------------------------------------
SERIES_EXAMPLE = {"id": 2, "workspace": "lab", "name": "ladder", "description": "DiT, 4 sizes", "created_at": "2025-01-30T09:12:00Z"}


@extend_schema_view(
    list=extend_schema(
        summary="Series of your workspaces",
        parameters=[WORKSPACE_PARAM],
        examples=[OpenApiExample("Series", value=[SERIES_EXAMPLE], response_only=True)],
    ),
    retrieve=extend_schema(summary="One series", examples=[OpenApiExample("Series", value=SERIES_EXAMPLE, response_only=True)]),
    create=extend_schema(
        summary="Create a series (owner or member)",
        examples=[
            OpenApiExample("New series", value={"workspace": "lab", "name": "ladder", "description": "DiT, 4 sizes"}, request_only=True),
            OpenApiExample("Created", value=SERIES_EXAMPLE, response_only=True, status_codes=["201"]),
        ],
    ),
)
@extend_schema(tags=["series"])
class SeriesViewSet(ScopedPermissions, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = SeriesSerializer

    def get_queryset(self):
        series = selectors.series_for(user=self.request.user).order_by("name", "pk")
        return filter_workspace(series, self.request.query_params.get("workspace"))

    def perform_create(self, serializer):
        require_write(self.request, serializer.validated_data["workspace"])
        serializer.instance = services.series_create(**serializer.validated_data)


# ------------------------------------------------------------------------------
# Generators
# ------------------------------------------------------------------------------
GENERATOR_REQUEST = {
    "workspace": "lab", "series": 2, "name": "ladder-M", "params": 350_000_000,
    "train_images": 1_200_000_000, "train_flops": 2.4e21, "train_step": 400_000,
    "settings": {"sampler": "ddim", "steps": 50, "guidance": 4.5, "resolution": 512},
    "metrics": {"fid": 12.3, "val_loss": 0.41},
}
GENERATOR_EXAMPLE = {
    "id": 7, **GENERATOR_REQUEST, "description": "", "backend": "upload", "backend_config": {},
    "created_at": "2025-01-30T09:12:00Z",
}


@extend_schema_view(
    list=extend_schema(
        summary="Generators of your workspaces",
        parameters=[
            WORKSPACE_PARAM,
            OpenApiParameter("series", OpenApiTypes.INT, description="Only this series' generators (its id)."),
        ],
        examples=[OpenApiExample("Generators", value=[GENERATOR_EXAMPLE], response_only=True)],
    ),
    retrieve=extend_schema(summary="One generator", examples=[OpenApiExample("Generator", value=GENERATOR_EXAMPLE, response_only=True)]),
    create=extend_schema(
        summary="Create a generator (owner or member)",
        examples=[
            OpenApiExample("New generator", value=GENERATOR_REQUEST, request_only=True),
            OpenApiExample("Created", value=GENERATOR_EXAMPLE, response_only=True, status_codes=["201"]),
        ],
    ),
    update=extend_schema(summary="Replace a generator's fields (owner or member)"),
    partial_update=extend_schema(
        summary="Change some of a generator's fields (owner or member)",
        examples=[OpenApiExample("New metrics", value={"metrics": {"fid": 11.8, "val_loss": 0.40}}, request_only=True)],
    ),
    destroy=extend_schema(summary="Delete a generator and its samples; refused (409) while a study's trials use it"),
)
@extend_schema(tags=["generators"])
class GeneratorViewSet(ScopedPermissions, viewsets.ModelViewSet):
    serializer_class = GeneratorSerializer

    def get_queryset(self):
        generators = selectors.generators_for(user=self.request.user).order_by("name", "pk")
        generators = filter_workspace(generators, self.request.query_params.get("workspace"))
        if self.action == "list" and (series := id_param(self.request, "series")) is not None:
            generators = generators.filter(series_id=series)
        return generators

    def perform_create(self, serializer):
        fields = dict(serializer.validated_data)
        require_write(self.request, fields["workspace"])
        serializer.instance = services.generator_create(**fields)

    def perform_update(self, serializer):
        fields = {name: value for name, value in serializer.validated_data.items() if name != "workspace"}
        serializer.instance = services.generator_update(generator=serializer.instance, **fields)

    def perform_destroy(self, instance):
        services.generator_delete(generator=instance)
