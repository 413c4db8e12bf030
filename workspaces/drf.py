"""What every app's endpoints share: who may call the researcher API at all and with
which role they may write, the error body, pagination, and the query helpers for a
workspace filter. DRF's settings name the permission, pagination and exception handler
here, and DRF imports this module while loading itself: nothing here may import
rest_framework.views at module level.

Every error, from any endpoint, has one shape::

    {"error": {"code": "not_found", "message": "Not found.", "field": null}}

`field` names the request field at fault (the first one, for a validation error,
whose full report is under `details`), or is null. A domain error says its own code
and status (`workspaces.errors.ParityError`).
"""

import re

from django.db.models import ProtectedError, Q, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions, pagination, permissions, status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response
from rest_framework.settings import api_settings

from workspaces.access import user_is_researcher, workspace_can_write
from workspaces.errors import ParityError

VIEWER_MESSAGE = "Viewers of this workspace cannot change it."
WORKSPACE_PARAM = OpenApiParameter("workspace", OpenApiTypes.STR, description="Only this workspace's (slug or id).")

# ------------------------------------------------------------------------------
# Who may call it
# ------------------------------------------------------------------------------


class IsResearcher(permissions.BasePermission):
    """A superuser, or a member of at least one workspace; annotators never get in.

    What a researcher may see and change inside is decided by `workspaces.access`.
    """

    message = "The researcher API is only for members of a workspace."

    def has_permission(self, request, view) -> bool:
        return user_is_researcher(user=request.user)


class WorkspaceWriteAccess(permissions.BasePermission):
    """Reads for every member; writes for a member who is not a viewer (or a superuser)."""

    message = VIEWER_MESSAGE

    def has_object_permission(self, request, view, obj) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return workspace_can_write(user=request.user, workspace_id=obj.workspace_id)


def require_write(request, workspace) -> None:
    """For creation, where there is no object yet to check: the target workspace's role."""
    if not workspace_can_write(user=request.user, workspace_id=workspace.pk):
        raise exceptions.PermissionDenied(VIEWER_MESSAGE)


class ScopedPermissions:
    """A view mixin: the project's default permissions (who may call the API at all) plus the
    workspace role. The defaults are read for each request, not when this module loads, so
    that a change of settings.REST_FRAMEWORK reaches these views as it reaches every other."""

    def get_permissions(self) -> list[permissions.BasePermission]:
        return [permission() for permission in (*api_settings.DEFAULT_PERMISSION_CLASSES, WorkspaceWriteAccess)]


# ------------------------------------------------------------------------------
# Queries and negotiation
# ------------------------------------------------------------------------------


class NoNegotiation(BaseContentNegotiation):
    """Always the view's first renderer (JSON, for errors), whatever ?format= or Accept say.

    For views where `?format=` names a file format of their own rather than DRF's
    renderer override (URL_FORMAT_OVERRIDE), which would answer 404 for a format it has
    no renderer for.
    """

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def filter_workspace(queryset: QuerySet, value: str | None) -> QuerySet:
    """`?workspace=` by slug or id; a workspace that is not the user's simply matches nothing."""
    if not value:
        return queryset
    match = Q(workspace__slug=value)
    if value.isdigit():
        match |= Q(workspace_id=int(value))
    return queryset.filter(match)


def id_param(request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value in (None, ""):
        return None
    if not value.isdigit():
        raise exceptions.ValidationError({name: [f"Give the {name}'s id, a whole number."]})
    return int(value)


class PageNumberPagination(pagination.PageNumberPagination):
    """`?page=2&page_size=50`; for lists that stay small (workspaces, corpora, generators)."""

    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


# ------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------


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
    """DRF's handler, then the body reshaped to {"error": {...}}; domain errors say their own."""
    if isinstance(exc, ParityError):
        body = error_body(exc.code, str(exc), exc.field, details=exc.details())
        return Response(body, status=exc.status)
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
