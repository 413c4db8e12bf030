"""Serializer pieces every app's API shares, and the workspace's own.

`StrictFieldsMixin`: a key the serializer does not know is an error naming it, never
silently dropped (a typo such as `param` for `params` would otherwise lose the value
without a word).
"""

from collections.abc import Mapping

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail

from workspaces.access import workspaces_for
from workspaces.models import Workspace


class StrictFieldsMixin:
    """Refuse request keys that are not fields of the serializer (code `unknown_field`).

    Read-only fields are known, so a client may send back what it read; they are ignored.
    """

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = [key for key in data if key not in self.fields]
            if unknown:
                raise serializers.ValidationError(
                    {key: [ErrorDetail("Unknown field.", code="unknown_field")] for key in unknown}
                )
        return super().to_internal_value(data)


def request_user(serializer_field) -> object:
    return serializer_field.context["request"].user


@extend_schema_field(
    {"type": "string", "description": "The workspace's slug (an id is accepted on input).", "example": "lab"}
)
class WorkspaceField(serializers.Field):
    """A workspace of the requesting user, by slug or id; shown as its slug."""

    default_error_messages = {
        "does_not_exist": "No workspace {value!r} among yours.",
        "incorrect_type": "Give a workspace's slug or id.",
    }

    def to_internal_value(self, data) -> Workspace:
        if isinstance(data, bool) or not isinstance(data, (int, str)) or data == "":
            self.fail("incorrect_type")
        workspaces = workspaces_for(user=request_user(self))
        found = workspaces.filter(slug=str(data)).first()
        if found is None and str(data).isdigit():
            found = workspaces.filter(pk=int(data)).first()
        if found is None:
            self.fail("does_not_exist", value=data)
        return found

    def to_representation(self, value: Workspace) -> str:
        return value.slug


class WorkspaceSerializer(serializers.ModelSerializer):
    role = serializers.CharField(
        read_only=True, allow_null=True, help_text="Your role: owner, member or viewer (null: superuser, no member)."
    )

    class Meta:
        model = Workspace
        fields = ["id", "slug", "name", "role", "created_at"]
