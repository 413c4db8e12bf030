"""Which workspaces a user may read, write or manage: the one place that answers it.

A researcher reads what belongs to the workspaces they are a member of (a superuser
reads everything); writing, and managing a study (opening, closing), also needs a
role other than viewer. Every queryset a page or an endpoint serves is narrowed by
`readable`, so an object outside the user's workspaces is simply not found (404),
which reveals nothing about whether it exists.
"""

from django.db.models import OuterRef, QuerySet, Subquery

from workspaces.models import Membership, Workspace

WRITE_ROLES = (Membership.Role.OWNER, Membership.Role.MEMBER)


def _signed_in(user) -> bool:
    return bool(user) and user.is_authenticated and user.is_active


def user_is_researcher(*, user) -> bool:
    """Whether `user` may use the researcher pages and API: a superuser, or a member of some
    workspace. An invited annotator's account, or any account without a membership, may not.
    """
    if not _signed_in(user):
        return False
    return user.is_superuser or Membership.objects.filter(user=user).exists()


def workspaces_for(*, user) -> QuerySet[Workspace]:
    """The user's workspaces, each with `role`: the user's role, None where a superuser is no member."""
    if not _signed_in(user):
        return Workspace.objects.none()
    role = Membership.objects.filter(workspace=OuterRef("pk"), user=user).values("role")[:1]
    workspaces = Workspace.objects.annotate(role=Subquery(role))
    if user.is_superuser:
        return workspaces
    return workspaces.filter(memberships__user=user)


def readable(queryset: QuerySet, *, user, via: str = "workspace") -> QuerySet:
    """`queryset` narrowed to the rows `user` may read; `via` is the path from a row to its
    workspace (`"workspace"`, or `"generator__workspace"` for a generation job)."""
    if not _signed_in(user):
        return queryset.none()
    if user.is_superuser:
        return queryset
    return queryset.filter(**{f"{via}__memberships__user": user})


def workspace_role(*, user, workspace_id: int) -> str | None:
    """`user`'s role in the workspace ("owner", "member", "viewer"), or None for a non-member."""
    if not _signed_in(user):
        return None
    return (
        Membership.objects.filter(user=user, workspace_id=workspace_id).values_list("role", flat=True).first()
    )


def workspace_can_write(*, user, workspace_id: int) -> bool:
    """Whether `user` may create, change or delete what belongs to the workspace, and open or
    close its studies: a superuser, or a member who is not a viewer."""
    if not _signed_in(user):
        return False
    return user.is_superuser or workspace_role(user=user, workspace_id=workspace_id) in WRITE_ROLES
