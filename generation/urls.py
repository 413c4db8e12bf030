"""The researcher's generator pages, under /generators/<id>/."""

from django.urls import path

from generation import views

app_name = "generation"

urlpatterns = [
    path("generators/<int:pk>/", views.generator_detail, name="generator-detail"),
    path("generators/<int:pk>/jobs/", views.generation_job_start, name="job-start"),
    path("generators/<int:pk>/jobs/<int:job_id>/progress/", views.generation_job_progress, name="job-progress"),
    path("generators/<int:pk>/jobs/<int:job_id>/cancel/", views.generation_job_cancel, name="job-cancel"),
    path("generators/<int:pk>/jobs/<int:job_id>/resume/", views.generation_job_resume, name="job-resume"),
]
