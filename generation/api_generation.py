"""Generation-job endpoints of the researcher API: queue a run of a generator's backend
over a corpus, follow its progress, cancel it, resume it once its worker is gone.

A new job is sent to a GPU worker (the Celery queue `gpu`), which makes the samples in
batches and writes its progress on the job (generation/services/generation_run.py). A
job's workspace is its generator's: jobs are read through `selectors.generation_jobs_for`,
and changed only by an owner or member of that workspace.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    extend_schema_view,
)
from rest_framework import generics, mixins, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from generation import selectors, services
from generation.models import GenerationJob
from generation.serializers import GenerationJobSerializer
from workspaces.drf import id_param, require_write

ON_THE_WORKER = (
    "A GPU worker picks the job up (`queued` → `running`), makes the samples that do not exist yet in batches, "
    "and writes its counts every half second: `done` made, `skipped` already there, `failed` with the first "
    "1,000 `errors`. It ends `succeeded` (failures, if any, listed), `failed` (nothing could be made) or `cancelled`. "
    "While it runs, its worker writes `heartbeat_at` every few seconds; a running job whose heartbeat is older than "
    "PARITY_JOB_HEARTBEAT_TIMEOUT has lost its worker and becomes `interrupted`, to be resumed."
)
JOB_REQUEST = {"generator": 7, "corpus": 3, "item_keys": ["0001", "0002"], "seeds_per_item": 4}
JOB_EXAMPLE = {
    "id": 12, **JOB_REQUEST, "status": "queued", "cancel_requested": False, "progress": 0.0,
    "total": 8, "done": 0, "skipped": 0, "failed": 0, "errors": [], "error_count": 0, "device": "", "batch_size": None,
    "images_per_second": None, "created_at": "2025-01-30T09:12:00Z", "started_at": None, "heartbeat_at": None,
    "finished_at": None,
}
RUNNING_EXAMPLE = {
    **JOB_EXAMPLE, "status": "running", "progress": 0.5, "done": 3, "skipped": 1, "device": "cuda:0 (NVIDIA H100 80GB HBM3)",
    "batch_size": 8, "images_per_second": 3.2, "started_at": "2025-01-30T09:13:00Z",
    "heartbeat_at": "2025-01-30T09:13:05Z",
}


@extend_schema_view(
    list=extend_schema(
        summary="Generation jobs of your generators, newest first",
        parameters=[
            OpenApiParameter("generator", OpenApiTypes.INT, description="Only this generator's jobs (its id)."),
            OpenApiParameter(
                "status", OpenApiTypes.STR, enum=list(GenerationJob.Status.values), description="Only jobs in this state."
            ),
        ],
        examples=[OpenApiExample("Jobs", value=[RUNNING_EXAMPLE], response_only=True)],
    ),
    retrieve=extend_schema(
        summary="One generation job: status, progress and counts",
        examples=[OpenApiExample("Running", value=RUNNING_EXAMPLE, response_only=True)],
    ),
    create=extend_schema(
        summary="Queue a generation job: a generator's samples for a corpus's items (owner or member)",
        description=(
            "The generator needs a backend to run (not `upload`) and the corpus must belong to its workspace. "
            "`item_keys` picks items (every item when left out); `seeds_per_item` samples are made per item. "
            "`total` is counted now, items × seeds. " + ON_THE_WORKER
        ),
        examples=[
            OpenApiExample("New job", value=JOB_REQUEST, request_only=True),
            OpenApiExample("Queued", value=JOB_EXAMPLE, response_only=True, status_codes=["201"]),
        ],
    ),
)
@extend_schema(tags=["generation jobs"])
class GenerationJobViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = GenerationJobSerializer

    def get_queryset(self):
        found = selectors.generation_jobs_for(user=self.request.user).order_by("-created_at", "-pk")
        services.generation_jobs_interrupt_lost(jobs=found)  # a job whose worker is gone is shown as it is
        if self.action != "list":
            return found
        if (generator := id_param(self.request, "generator")) is not None:
            found = found.filter(generator_id=generator)
        if state := self.request.query_params.get("status"):
            if state not in GenerationJob.Status.values:
                raise ValidationError({"status": [f"Give one of {', '.join(GenerationJob.Status.values)}."]})
            found = found.filter(status=state)
        return found

    def perform_create(self, serializer):
        fields = serializer.validated_data
        require_write(self.request, fields["generator"].workspace)
        serializer.instance = services.generation_job_create(**fields)


@extend_schema(
    tags=["generation jobs"],
    summary="Cancel a generation job (owner or member)",
    description=(
        "A queued or interrupted job is cancelled at once, and so is a running one whose worker is gone (no "
        "heartbeat for PARITY_JOB_HEARTBEAT_TIMEOUT). A running one gets `cancel_requested`, and its worker stops "
        "between batches, keeping the samples already made (or, should its worker fall silent, the job ends "
        "`cancelled` when that is seen); a new job for the same items makes only the rest. "
        "A job that has ended: 409 `not_cancellable`."
    ),
    request=None,
    responses={200: GenerationJobSerializer},
    examples=[OpenApiExample(
        "Cancelled", response_only=True,
        value={**JOB_EXAMPLE, "status": "cancelled", "cancel_requested": True, "finished_at": "2025-01-30T09:14:00Z"},
    )],
)
class GenerationJobCancel(generics.GenericAPIView):
    serializer_class = GenerationJobSerializer

    @staticmethod
    def act(*, job: GenerationJob) -> GenerationJob:
        return services.generation_job_cancel(job=job)

    def get_queryset(self):
        return selectors.generation_jobs_for(user=self.request.user)

    def post(self, request, pk: int):
        job = self.get_object()
        require_write(request, job.generator.workspace)
        job = self.act(job=job)
        return Response(GenerationJobSerializer(job, context=self.get_serializer_context()).data, status=status.HTTP_200_OK)


@extend_schema(
    tags=["generation jobs"],
    summary="Resume an interrupted generation job (owner or member)",
    description=(
        "A job whose worker was lost (killed, stopped, its machine gone: no heartbeat for "
        "PARITY_JOB_HEARTBEAT_TIMEOUT) is `interrupted`. Resuming queues it again for a GPU worker, which makes "
        "only the samples still missing: seeds are fixed per generator and item, and the samples made before "
        "count as `done`. A job that is not interrupted: 409 `not_resumable`."
    ),
    request=None,
    responses={200: GenerationJobSerializer},
    examples=[OpenApiExample(
        "Queued again", response_only=True,
        value={**RUNNING_EXAMPLE, "status": "queued", "heartbeat_at": None},
    )],
)
class GenerationJobResume(GenerationJobCancel):
    @staticmethod
    def act(*, job: GenerationJob) -> GenerationJob:
        return services.generation_job_resume(job=job)
