"""annotate endpoints of the researcher API (/api/v1/)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from annotate import api

router = SimpleRouter()
router.register("studies", api.StudyViewSet, basename="study")

urlpatterns = [
    path("studies/<slug:slug>/judgments/", api.JudgmentExport.as_view(), name="api-study-judgments"),
    *router.urls,
]
