"""Who sees and changes what: every read of the researcher API starts here.

A researcher sees what belongs to the workspaces they are a member of (a superuser
sees everything); writing also needs a role other than viewer. Every queryset an
endpoint serves comes from one of the `*_for` functions below, so no view can forget
the check, and an object outside the user's workspaces is simply not found (404),
which reveals nothing about whether it exists.
"""

import hashlib

from django.db.models import Count, OuterRef, QuerySet, Subquery

from generation.models import (
    Corpus,
    GenerationJob,
    Generator,
    ImportJob,
    Item,
    Membership,
    Sample,
    Series,
    Workspace,
)

WRITE_ROLES = (Membership.Role.OWNER, Membership.Role.MEMBER)
# Keys looked up per query: well under SQLite's limit on the parameters of one statement.
KEYS_PER_QUERY = 1000


def user_is_researcher(*, user) -> bool:
    """Whether `user` may use the researcher API: a superuser, or a member of some workspace.

    An invited annotator's account, or any account without a membership, may not.
    """
    if not user or not user.is_authenticated or not user.is_active:
        return False
    return user.is_superuser or Membership.objects.filter(user=user).exists()


def workspaces_for(*, user) -> QuerySet[Workspace]:
    """The user's workspaces, each with `role`: the user's role, None where a superuser is no member."""
    if not user or not user.is_authenticated:
        return Workspace.objects.none()
    role = Membership.objects.filter(workspace=OuterRef("pk"), user=user).values("role")[:1]
    workspaces = Workspace.objects.annotate(role=Subquery(role))
    if user.is_superuser:
        return workspaces
    return workspaces.filter(memberships__user=user)


def workspace_role(*, user, workspace_id: int) -> str | None:
    """`user`'s role in the workspace ("owner", "member", "viewer"), or None for a non-member."""
    if not user or not user.is_authenticated:
        return None
    return (
        Membership.objects.filter(user=user, workspace_id=workspace_id).values_list("role", flat=True).first()
    )


def workspace_can_write(*, user, workspace_id: int) -> bool:
    """Whether `user` may create, change or delete what belongs to the workspace."""
    if not user or not user.is_authenticated:
        return False
    return user.is_superuser or workspace_role(user=user, workspace_id=workspace_id) in WRITE_ROLES


def _in_workspaces(queryset: QuerySet, *, user) -> QuerySet:
    if not user or not user.is_authenticated:
        return queryset.none()
    if user.is_superuser:
        return queryset
    return queryset.filter(workspace__memberships__user=user)


def corpora_for(*, user) -> QuerySet[Corpus]:
    """The user's corpora, each with `item_count`."""
    return _in_workspaces(Corpus.objects.select_related("workspace"), user=user).annotate(
        item_count=Count("items")
    )


def items_for(*, user, corpus_id: int) -> QuerySet[Item]:
    """The items of a corpus the user sees; empty for any other corpus."""
    corpora = _in_workspaces(Corpus.objects.filter(pk=corpus_id), user=user)
    return Item.objects.filter(corpus__in=corpora.values("pk"))


def series_for(*, user) -> QuerySet[Series]:
    return _in_workspaces(Series.objects.select_related("workspace"), user=user)


def generators_for(*, user) -> QuerySet[Generator]:
    return _in_workspaces(Generator.objects.select_related("workspace", "series"), user=user)


def samples_for(*, user, generator_id: int) -> QuerySet[Sample]:
    """The samples of a generator the user sees; empty for any other generator."""
    generators = _in_workspaces(Generator.objects.filter(pk=generator_id), user=user)
    return Sample.objects.filter(generator__in=generators.values("pk")).select_related("item")


def import_jobs_for(*, user) -> QuerySet[ImportJob]:
    return _in_workspaces(ImportJob.objects.select_related("workspace"), user=user)


def generation_jobs_for(*, user) -> QuerySet[GenerationJob]:
    """The generation jobs of the user's generators (a job's workspace is its generator's)."""
    if not user or not user.is_authenticated:
        return GenerationJob.objects.none()
    found = GenerationJob.objects.select_related("generator__workspace", "corpus")
    if user.is_superuser:
        return found
    return found.filter(generator__workspace__memberships__user=user)


def item_keys_missing(*, corpus: Corpus, keys: list[str]) -> list[str]:
    """The keys of `keys` that no item of `corpus` has, in the order given."""
    found: set[str] = set()
    for start in range(0, len(keys), KEYS_PER_QUERY):
        chunk = keys[start:start + KEYS_PER_QUERY]
        found.update(Item.objects.filter(corpus=corpus, key__in=chunk).values_list("key", flat=True))
    return [key for key in keys if key not in found]


def held_out(keys: list[str], fraction: float) -> set[str]:
    """The validation keys of a corpus: the `fraction` of `keys` whose sha256 is lowest.

    It depends on the keys alone, so `train_ladder` holds out the same items for every
    size, and the demo generates its study's samples for exactly those unseen prompts.
    """
    if fraction <= 0 or len(keys) < 2:
        return set()
    count = min(len(keys) - 1, max(1, round(len(keys) * fraction)))
    return set(sorted(keys, key=lambda key: hashlib.sha256(key.encode()).hexdigest())[:count])
