"""The researcher API under /api/v1/: each app's endpoints, in one place."""

from django.urls import include, path

urlpatterns = [
    path("", include("generation.api_urls")),
    path("", include("annotate.api_urls")),
]
