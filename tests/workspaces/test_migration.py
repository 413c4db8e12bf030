"""Workspace and Membership moved from `generation` to `workspaces` by state only: a
database made before the move keeps its workspaces, members, their roles and what
hangs off them, and permissions granted on the models follow them.

The database is taken back to the last migrations before the move (the head of
1ca41c8), filled through that state's models, then migrated to today's head.
"""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [
    ("generation", "0005_generationjob_heartbeat_interrupted"),
    ("annotate", "0007_participation_browser"),
    ("analysis", "0001_initial"),
]


def before():
    """The project's apps at their last migration before the move; Django's at their head."""
    moved = {"workspaces", *(app for app, _ in BEFORE)}
    return [*BEFORE, *(node for node in leaves() if node[0] not in moved)]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def leaves():
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_a_database_made_before_the_move_keeps_its_rows():
    old = migrate(before())
    assert not old.all_models.get("workspaces")
    User = old.get_model("auth", "User")
    Permission = old.get_model("auth", "Permission")
    ContentType = old.get_model("contenttypes", "ContentType")
    Workspace = old.get_model("generation", "Workspace")
    Membership = old.get_model("generation", "Membership")
    Corpus = old.get_model("generation", "Corpus")
    Study = old.get_model("annotate", "Study")

    user = User.objects.create(username="ada")
    lab = Workspace.objects.create(name="Lab", slug="lab")
    Membership.objects.create(workspace=lab, user=user, role="viewer")
    corpus = Corpus.objects.create(workspace=lab, name="coco")
    Study.objects.create(workspace=lab, corpus=corpus, name="ladder", slug="ladder")
    # As a database made before the move has them (undoing the move also moved them back).
    assert not ContentType.objects.filter(app_label="workspaces").exists()
    workspace_type, _ = ContentType.objects.get_or_create(app_label="generation", model="workspace")
    change, _ = Permission.objects.get_or_create(
        content_type=workspace_type, codename="change_workspace", defaults={"name": "Can change workspace"}
    )
    user.user_permissions.add(change)

    migrate(leaves())

    from django.contrib.auth.models import User as NewUser

    from annotate.models import Study as NewStudy
    from generation.models import Corpus as NewCorpus
    from workspaces.models import Membership as NewMembership
    from workspaces.models import Workspace as NewWorkspace

    moved = NewWorkspace.objects.get()
    assert (moved.pk, moved.slug) == (lab.pk, "lab")
    assert NewMembership.objects.get().role == "viewer"
    assert list(NewUser.objects.get(username="ada").workspaces.all()) == [moved]
    assert NewCorpus.objects.get().workspace == moved
    assert NewStudy.objects.get().workspace == moved
    assert NewUser.objects.get(username="ada").has_perm("workspaces.change_workspace")
    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
    assert {"generation_workspace", "generation_membership"} <= set(tables)
    assert not {"workspaces_workspace", "workspaces_membership"} & set(tables)


@pytest.mark.django_db(transaction=True)
def test_the_move_is_undone_without_loss():
    migrate(leaves())
    from workspaces.models import Workspace

    Workspace.objects.create(name="Lab", slug="lab")
    old = migrate(before())
    assert old.get_model("generation", "Workspace").objects.get().slug == "lab"
    migrate(leaves())
    assert Workspace.objects.get().slug == "lab"
