"""analysis endpoints of the researcher API (/api/v1/)."""

from django.urls import path

from analysis import api

urlpatterns = [
    path("studies/<slug:slug>/report/", api.StudyReport.as_view(), name="api-study-report"),
]
