"""workspaces endpoint of the researcher API: the user's workspaces and role in each."""

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import generics

from workspaces.access import workspaces_for
from workspaces.serializers import WorkspaceSerializer


@extend_schema(
    tags=["workspaces"],
    summary="Your workspaces, with your role in each",
    examples=[
        OpenApiExample(
            "Workspaces",
            value=[{"id": 1, "slug": "lab", "name": "Lab", "role": "owner", "created_at": "2025-01-30T09:12:00Z"}],
            response_only=True,
        )
    ],
)
class WorkspaceList(generics.ListAPIView):
    serializer_class = WorkspaceSerializer

    def get_queryset(self):
        return workspaces_for(user=self.request.user).order_by("name")
