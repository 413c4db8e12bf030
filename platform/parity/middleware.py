"""Refuse a request whose path, query parameters or form fields carry text the site cannot take.

A NUL character reaching a PostgreSQL query is a server error (DataError), and any
view may pass a parameter to one: `/s/<slug>/?PROLIFIC_PID=%00` did, and so did the
API's filters. Checking here, before any view, covers every page and endpoint at once,
present and future. The rule is `generation.untrusted.value_fault`; the bodies of API
requests are checked by the API's parsers instead, after the upload views have chosen
how their files are received (reading the form here would decide that for them).

The refusal is a 400: the API's error body under /api/, a plain page elsewhere; both
name the parameter or field. An unfit cookie is dropped instead.
"""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

from generation.untrusted import sentence, value_fault
from workspaces.drf import error_body

API_PREFIX = "/api/"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def request_fault(request: HttpRequest) -> tuple[str, str | None] | None:
    """(message, the parameter or field at fault) for the first unfit text of `request`, or None."""
    if fault := value_fault(request.path_info):
        return sentence("The address", fault), None
    sources = [("query parameter", request.GET)]
    if (
        request.method == "POST"
        and not request.path_info.startswith(API_PREFIX)
        and request.content_type in FORM_TYPES
    ):
        sources.append(("form field", request.POST))
    for what, data in sources:
        for name, values in data.lists():
            if fault := value_fault(name):
                return sentence(f"The name of a {what}", fault), None
            for value in values:
                if fault := value_fault(value):
                    return sentence(f"The {what} {name!r}", fault), name
    return None


class UntrustedInputMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # A cookie is the browser's to send, not the visitor's to correct: an unfit one (a session
        # key with a NUL) is dropped, as if it had not been sent, rather than refused.
        if any(value_fault(name) or value_fault(value) for name, value in request.COOKIES.items()):
            request.COOKIES = {
                name: value for name, value in request.COOKIES.items()
                if not (value_fault(name) or value_fault(value))
            }
        found = request_fault(request)
        if found is None:
            return self.get_response(request)
        message, field = found
        if request.path_info.startswith(API_PREFIX):
            return JsonResponse(error_body("invalid", message, field), status=400)
        page = render_to_string("parity/refused.html", {"message": message})
        return HttpResponse(page, status=400)
