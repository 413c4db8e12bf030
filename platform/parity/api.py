"""What every endpoint of the researcher API shares: who may call it, the error body,
the write rate limit on token requests, and pagination. Each is named once in
settings.REST_FRAMEWORK, so a view gets them all by default and cannot forget one.
(DRF imports this module while loading itself: nothing here may import
rest_framework.views at module level.)

Every error, from any endpoint, has one shape::

    {"error": {"code": "not_found", "message": "Not found.", "field": null}}

`field` names the request field at fault (the first one, for a validation error,
whose full report is under `details`), or is null.
"""

import re

from django.conf import settings
from django.db.models import ProtectedError
from rest_framework import exceptions, pagination, permissions, status, throttling
from rest_framework.response import Response

from annotate import errors as annotate_errors
from generation import errors as generation_errors
from generation.selectors import user_is_researcher
from parity.auth import BearerTokenAuthentication
from parity.rates import rate_split

# ------------------------------------------------------------------------------
# Who may call it
# ------------------------------------------------------------------------------


class IsResearcher(permissions.BasePermission):
    """A superuser, or a member of at least one workspace; annotators never get in.

    What a researcher may see and change inside is decided by `generation.selectors`.
    """

    message = "The researcher API is only for members of a workspace."

    def has_permission(self, request, view) -> bool:
        return user_is_researcher(user=request.user)


# ------------------------------------------------------------------------------
# Rate limit
# ------------------------------------------------------------------------------
class TokenWriteThrottle(throttling.SimpleRateThrottle):
    """Writes (POST, PUT, PATCH, DELETE) made with a personal token, counted per user.

    A script with a bug should not hammer the database; a person in the browser is
    not limited here. The rate is `settings.PARITY_API_WRITE_RATE` ("600/m", "10/5m";
    None turns it off), counted in the default cache.
    """

    scope = "token_write"

    def get_rate(self) -> str | None:
        return settings.PARITY_API_WRITE_RATE

    def parse_rate(self, rate: str | None) -> tuple[int | None, int | None]:
        if rate is None:
            return None, None
        return rate_split(rate)

    def get_cache_key(self, request, view) -> str | None:
        if request.method in permissions.SAFE_METHODS:
            return None
        if not isinstance(request.successful_authenticator, BearerTokenAuthentication):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


# ------------------------------------------------------------------------------
# Pagination
# ------------------------------------------------------------------------------


class PageNumberPagination(pagination.PageNumberPagination):
    """`?page=2&page_size=50`; for lists that stay small (workspaces, corpora, generators)."""

    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


# ------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------
# Domain errors by class (the first match wins), with their status.
DOMAIN_STATUS: list[tuple[type[Exception], int, str | None]] = [
    (generation_errors.NameTaken, status.HTTP_409_CONFLICT, None),
    (generation_errors.InUse, status.HTTP_409_CONFLICT, None),
    (generation_errors.Duplicate, status.HTTP_409_CONFLICT, "duplicate"),
    (generation_errors.NotCancellable, status.HTTP_409_CONFLICT, "not_cancellable"),
    (generation_errors.NotResumable, status.HTTP_409_CONFLICT, "not_resumable"),
    (generation_errors.IngestError, status.HTTP_400_BAD_REQUEST, "import_refused"),
    # Not "not yours": whether someone else's assignment exists is nobody's business.
    (annotate_errors.AssignmentUnknown, status.HTTP_404_NOT_FOUND, "not_found"),
    (annotate_errors.AssignmentNotYours, status.HTTP_404_NOT_FOUND, "not_found"),
    (annotate_errors.StudyClosed, status.HTTP_409_CONFLICT, None),
    (annotate_errors.StudyNotReady, status.HTTP_409_CONFLICT, None),
    (annotate_errors.StudyNotDraft, status.HTTP_409_CONFLICT, None),
    (annotate_errors.QuotaReached, status.HTTP_409_CONFLICT, None),
    (annotate_errors.AssignmentExpired, status.HTTP_409_CONFLICT, None),
    (annotate_errors.InviteRefused, status.HTTP_400_BAD_REQUEST, None),
    (generation_errors.ParityError, status.HTTP_400_BAD_REQUEST, "invalid"),
]


def snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def error_body(code: str, message: str, field: str | None = None, details=None) -> dict:
    body = {"code": code, "message": message, "field": field}
    if details is not None:
        body["details"] = details
    return {"error": body}


def first_error(detail, path: tuple[str, ...] = ()) -> tuple[str | None, exceptions.ErrorDetail | str]:
    """The dotted field path and the first message of a validation error's detail."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            inner = () if key == "non_field_errors" else (*path, str(key))
            found = first_error(value, inner)
            if found[1] != "":
                return found
        return (".".join(path) or None), ""
    if isinstance(detail, list):
        for index, value in enumerate(detail):
            # A list of messages belongs to the field; a list of objects has indexed members.
            inner = (*path, str(index)) if isinstance(value, (dict, list)) else path
            found = first_error(value, inner)
            if found[1] != "":
                return found
        return (".".join(path) or None), ""
    return (".".join(path) or None), detail


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's handler, then the body reshaped to {"error": {...}}; domain errors mapped first."""
    if isinstance(exc, generation_errors.ParityError):
        return _domain_error(exc)
    if isinstance(exc, ProtectedError):
        return Response(
            error_body("in_use", "It is in use and cannot be deleted."), status=status.HTTP_409_CONFLICT
        )
    # Imported here: DRF imports this module while rest_framework.views is still loading.
    from rest_framework.views import exception_handler as drf_exception_handler

    response = drf_exception_handler(exc, context)
    if response is None:
        # Not an error a client can act on: Django's 500, logged with its traceback.
        return None
    if isinstance(exc, exceptions.ValidationError):
        field, detail = first_error(exc.detail)
        code = getattr(detail, "code", None) or "invalid"
        response.data = error_body(code, str(detail) or "Invalid input.", field, details=exc.detail)
    else:
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else ""
        code = getattr(detail, "code", None) or snake_case(type(exc).__name__)
        # A parse error of generation.untrusted names the field of the body at fault.
        response.data = error_body(code, str(detail) or "Error.", getattr(exc, "field", None))
    return response


def _domain_error(exc: generation_errors.ParityError) -> Response:
    for cls, http_status, code in DOMAIN_STATUS:
        if isinstance(exc, cls):
            break
    details = None
    if isinstance(exc, generation_errors.IngestError) and exc.rejections:
        details = [rejection.as_dict() for rejection in exc.rejections]
    elif isinstance(exc, generation_errors.Duplicate):
        details = {"existing_id": exc.existing_id}
    elif isinstance(exc, annotate_errors.InviteRefused):
        details = {"unknown": exc.unknown, "ambiguous": exc.ambiguous}
    body = error_body(
        code or snake_case(type(exc).__name__), str(exc), getattr(exc, "field", None), details=details
    )
    return Response(body, status=http_status)
