"""analysis endpoints of the researcher API (/api/v1/)."""

from django.urls import path

from analysis import api

# The history's routes take any slug (`str`), so that one that cannot exist is the API's JSON 404.
urlpatterns = [
    path("studies/<slug:slug>/report/", api.StudyReport.as_view(), name="api-study-report"),
    path("studies/<str:slug>/reports/", api.StudyReportList.as_view(), name="api-study-reports"),
    path("studies/<str:slug>/reports/<int:record_id>/", api.StudyReportRecord.as_view(),
         name="api-study-report-record"),
    path("studies/<str:slug>/reports/<int:record_id>/freeze/", api.StudyReportFreeze.as_view(),
         name="api-study-report-freeze"),
]
