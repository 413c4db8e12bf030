"""The annotator's pages, under /s/<study-slug>/, and the researcher's, under /studies/<slug>/."""

from django.urls import path

from annotate import research_views, views

app_name = "annotate"

urlpatterns = [
    path("s/<slug:slug>/", views.entry, name="entry"),
    path("s/<slug:slug>/consent/", views.consent, name="consent"),
    path("s/<slug:slug>/practice/", views.practice, name="practice"),
    path("s/<slug:slug>/trial/", views.trial, name="trial"),
    path("s/<slug:slug>/img/<str:key>/", views.image, name="image"),
    path("s/<slug:slug>/done/", views.done, name="done"),
    path("studies/<slug:slug>/", research_views.study_detail, name="study-detail"),
    path("studies/<slug:slug>/progress/", research_views.study_progress, name="study-progress"),
    path("studies/<slug:slug>/invite/", research_views.study_invite, name="study-invite"),
    path("studies/<slug:slug>/release/", research_views.study_release, name="study-release"),
    path("studies/<slug:slug>/generators/", research_views.study_generators, name="study-generators"),
    path("studies/<slug:slug>/generators/remove/", research_views.study_generator_remove,
         name="study-generator-remove"),
    path("studies/<slug:slug>/head-to-head/", research_views.study_head_to_head, name="study-head-to-head"),
    path("studies/<slug:slug>/<str:action>/", research_views.study_action, name="study-action"),
]
