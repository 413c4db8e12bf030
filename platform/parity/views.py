from django.db import connection
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from annotate.models import Study
from annotate.selectors import invitations_for_user
from generation.models import Corpus, Generator


def home(request: HttpRequest) -> HttpResponse:
    corpora = Corpus.objects.select_related("workspace").annotate(item_count=Count("items")).order_by("name")
    generators = (
        Generator.objects.select_related("series").annotate(sample_count=Count("samples")).order_by("name")
    )
    studies = Study.objects.select_related("corpus").order_by("name")
    if request.user.is_authenticated and not request.user.is_superuser:
        corpora = corpora.filter(workspace__members=request.user)
        generators = generators.filter(workspace__members=request.user)
        studies = studies.filter(workspace__members=request.user)
    elif not request.user.is_authenticated:
        corpora, generators, studies = corpora.none(), generators.none(), studies.none()
    context = {
        "corpora": corpora,
        "generators": generators,
        "studies": studies,
        "invitations": invitations_for_user(user=request.user),
    }
    return render(request, "parity/home.html", context)


def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
