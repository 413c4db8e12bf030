"""`workspaces.access`: the one answer to "which workspaces may this user read, write,
manage", for members of each role, outsiders, the inactive, the anonymous and superusers."""

import pytest
from django.contrib.auth.models import AnonymousUser, User

from annotate.selectors import studies_for, study_can_manage, study_for_user
from generation.models import Corpus
from generation.selectors import corpora_for
from tests.annotate import builders
from workspaces import access
from workspaces.models import Membership, Workspace

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_labs():
    ours, theirs = (Workspace.objects.create(name=name, slug=name) for name in ("ours", "theirs"))
    people = {}
    for role in ("owner", "member", "viewer"):
        people[role] = User.objects.create_user(role)
        Membership.objects.create(workspace=ours, user=people[role], role=role)
    people["outsider"] = User.objects.create_user("outsider")
    Membership.objects.create(workspace=theirs, user=people["outsider"], role="owner")
    people["annotator"] = User.objects.create_user("annotator")
    people["root"] = User.objects.create_superuser("root")
    people["gone"] = User.objects.create_user("gone", is_active=False)
    Membership.objects.create(workspace=ours, user=people["gone"], role="owner")
    for workspace in (ours, theirs):
        Corpus.objects.create(workspace=workspace, name="coco")
    return ours, theirs, people


@pytest.mark.parametrize(
    ("who", "reads", "writes"),
    [
        ("owner", {"ours"}, True),
        ("member", {"ours"}, True),
        ("viewer", {"ours"}, False),
        ("outsider", {"theirs"}, False),
        ("annotator", set(), False),
        ("root", {"ours", "theirs"}, True),
        ("gone", set(), False),
        ("anonymous", set(), False),
    ],
)
def test_who_reads_and_writes_what(two_labs, who, reads, writes):
    ours, _, people = two_labs
    user = AnonymousUser() if who == "anonymous" else people[who]
    assert {w.slug for w in access.workspaces_for(user=user)} == reads
    assert {c.workspace.slug for c in corpora_for(user=user)} == reads
    assert {c.workspace.slug for c in access.readable(Corpus.objects.all(), user=user)} == reads
    assert access.workspace_can_write(user=user, workspace_id=ours.pk) is writes
    assert access.user_is_researcher(user=user) is bool(reads)


def test_a_superusers_role_is_none_where_they_are_no_member(two_labs):
    _, _, people = two_labs
    assert {w.slug: w.role for w in access.workspaces_for(user=people["root"])} == {"ours": None, "theirs": None}
    assert {w.slug: w.role for w in access.workspaces_for(user=people["viewer"])} == {"ours": "viewer"}


def test_studies_follow_the_same_rule(two_labs):
    ours, _, people = two_labs
    study = builders.build_study(workspace=ours, generators=1, items=1)
    assert study_for_user(user=people["viewer"], slug=study.slug) == study
    assert study_for_user(user=people["outsider"], slug=study.slug) is None
    assert list(studies_for(user=people["outsider"])) == []
    assert study_can_manage(user=people["member"], study=study)
    assert not study_can_manage(user=people["viewer"], study=study)
    assert not study_can_manage(user=people["gone"], study=study)
