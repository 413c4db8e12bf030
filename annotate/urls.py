"""The annotator's pages, under /s/<study-slug>/."""

from django.urls import path

from annotate import views

app_name = "annotate"

urlpatterns = [
    path("s/<slug:slug>/", views.entry, name="entry"),
    path("s/<slug:slug>/consent/", views.consent, name="consent"),
    path("s/<slug:slug>/trial/", views.trial, name="trial"),
    path("s/<slug:slug>/img/<str:key>/", views.image, name="image"),
    path("s/<slug:slug>/done/", views.done, name="done"),
]
