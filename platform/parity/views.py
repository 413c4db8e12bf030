from django import forms
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from annotate.models import Study
from annotate.ratelimits import login_limit
from annotate.selectors import invitations_for_user
from generation.models import Corpus, Generator
from parity.tokens import token_create, token_revoke, tokens_for_user
from workspaces.access import readable, user_is_researcher


def home(request: HttpRequest) -> HttpResponse:
    researcher = user_is_researcher(user=request.user)
    corpora = Corpus.objects.select_related("workspace").annotate(item_count=Count("items")).order_by("name")
    generators = (
        Generator.objects.select_related("series").annotate(sample_count=Count("samples")).order_by("name")
    )
    studies = Study.objects.select_related("corpus").order_by("name")
    corpora, generators, studies = (readable(rows, user=request.user) for rows in (corpora, generators, studies))
    if not researcher:  # an invited account's page is its invitations
        corpora, generators, studies = corpora.none(), generators.none(), studies.none()
    context = {
        "corpora": corpora,
        "generators": generators,
        "studies": studies,
        "invitations": invitations_for_user(user=request.user),
        "researcher": researcher,
    }
    return render(request, "parity/home.html", context)


login = login_limit(retry_view="login")(
    auth_views.LoginView.as_view(template_name="parity/login.html", redirect_authenticated_user=True)
)


def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


# ------------------------------------------------------------------------------
# Personal API tokens
# ------------------------------------------------------------------------------
class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What it is for, e.g. 'training cluster'.")


def _researcher(request: HttpRequest) -> None:
    # The same rule as the API's: a token would be of no use to anyone else.
    if not user_is_researcher(user=request.user):
        raise PermissionDenied("API tokens are for members of a workspace.")


@login_required
@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest) -> HttpResponse:
    """List the user's tokens and make a new one, whose secret is shown on this response only."""
    _researcher(request)
    form = TokenForm(request.POST or None)
    secret = created = None
    if request.method == "POST" and form.is_valid():
        created, secret = token_create(user=request.user, name=form.cleaned_data["name"])
        form = TokenForm()
    context = {"form": form, "tokens": tokens_for_user(user=request.user), "secret": secret, "created": created}
    response = render(request, "parity/tokens.html", context, status=201 if secret else 200)
    # The secret must not linger in any cache.
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def token_revoke_view(request: HttpRequest, token_id: int) -> HttpResponse:
    _researcher(request)
    token = token_revoke(user=request.user, token_id=token_id)
    if token is None:
        raise Http404("no such token")
    messages.success(request, f"Token {token.name} is revoked: requests made with it now get 401.")
    return redirect("tokens")
