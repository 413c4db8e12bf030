"""generation endpoints of the researcher API (/api/v1/)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from generation import api, api_generation, api_imports

router = SimpleRouter()
router.register("corpora", api.CorpusViewSet, basename="corpus")
router.register("series", api.SeriesViewSet, basename="series")
router.register("generators", api.GeneratorViewSet, basename="generator")
router.register("generation-jobs", api_generation.GenerationJobViewSet, basename="generation-job")

urlpatterns = [
    path("corpora/<int:corpus_id>/items/", api.ItemList.as_view(), name="corpus-items"),
    path("generators/<int:generator_id>/samples/", api_imports.GeneratorSamples.as_view(), name="generator-samples"),
    path(
        "generators/<int:generator_id>/samples/bundle/",
        api_imports.SampleBundleUpload.as_view(),
        name="generator-sample-bundle",
    ),
    path("jobs/", api_imports.ImportJobList.as_view(), name="import-job-list"),
    path("jobs/<int:pk>/", api_imports.ImportJobDetail.as_view(), name="import-job-detail"),
    path("jobs/<int:pk>/cancel/", api_imports.ImportJobCancel.as_view(), name="import-job-cancel"),
    path(
        "generation-jobs/<int:pk>/cancel/",
        api_generation.GenerationJobCancel.as_view(),
        name="generation-job-cancel",
    ),
    path(
        "generation-jobs/<int:pk>/resume/",
        api_generation.GenerationJobResume.as_view(),
        name="generation-job-resume",
    ),
    *router.urls,
]
