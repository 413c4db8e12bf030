"""The researcher API under /api/v1/: each app's endpoints, in one place, then a 404 with
the API's error body for any other path under it (Django's own 404 page is HTML)."""

from django.urls import include, path, re_path
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.views import APIView


@extend_schema(exclude=True)
class UnknownPath(APIView):
    """A path no endpoint matches (`/generators/0.5/`): after the usual authentication,
    permission and throttle, a 404 in the error body, whatever the method."""

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        raise NotFound()


urlpatterns = [
    path("", include("workspaces.api_urls")),
    path("", include("generation.api_urls")),
    path("", include("annotate.api_urls")),
    path("", include("analysis.api_urls")),
    # Only paths ending in "/": one without it is first redirected by APPEND_SLASH, as before.
    re_path(r"^.*/\Z", UnknownPath.as_view()),
]
