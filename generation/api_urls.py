"""generation endpoints of the researcher API (/api/v1/)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from generation import api

router = SimpleRouter()
router.register("corpora", api.CorpusViewSet, basename="corpus")
router.register("series", api.SeriesViewSet, basename="series")
router.register("generators", api.GeneratorViewSet, basename="generator")

urlpatterns = [
    path("workspaces/", api.WorkspaceList.as_view(), name="workspace-list"),
    path("corpora/<int:corpus_id>/items/", api.ItemList.as_view(), name="corpus-items"),
    *router.urls,
]
