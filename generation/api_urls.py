"""generation endpoints of the researcher API (/api/v1/)."""

urlpatterns = []
