"""annotate endpoints of the researcher API (/api/v1/)."""

from django.urls import path

from annotate import api

urlpatterns = [
    path("studies/<slug:slug>/judgments/", api.JudgmentExport.as_view(), name="api-study-judgments"),
]
