"""The analysis panel of the researcher's study page, under /studies/<slug>/analysis/."""

from django.urls import path

from analysis import views

app_name = "analysis"

urlpatterns = [
    path("studies/<slug:slug>/analysis/panel/", views.study_panel, name="study-panel"),
    path("studies/<slug:slug>/analysis/reports/<int:record_id>/freeze/", views.report_freeze, name="report-freeze"),
]
