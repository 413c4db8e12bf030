"""workspaces endpoint of the researcher API (/api/v1/)."""

from django.urls import path

from workspaces import api

urlpatterns = [
    path("workspaces/", api.WorkspaceList.as_view(), name="workspace-list"),
]
