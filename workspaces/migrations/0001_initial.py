"""Workspace and Membership, moved here from `generation` by state only: their tables
(`generation_workspace`, `generation_membership`) and rows stay as they were."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("generation", "0005_generationjob_heartbeat_interrupted"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name="Workspace",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("name", models.CharField(max_length=200, unique=True)),
                        ("slug", models.SlugField(max_length=100, unique=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                    ],
                    options={"db_table": "generation_workspace", "ordering": ["name"]},
                ),
                migrations.CreateModel(
                    name="Membership",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        (
                            "role",
                            models.CharField(
                                choices=[("owner", "Owner"), ("member", "Member"), ("viewer", "Viewer")],
                                default="member",
                                max_length=10,
                            ),
                        ),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "user",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="memberships",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "workspace",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="memberships",
                                to="workspaces.workspace",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "generation_membership",
                        "constraints": [
                            models.UniqueConstraint(fields=("workspace", "user"), name="membership_unique_user"),
                            models.CheckConstraint(
                                condition=models.Q(("role__in", ["owner", "member", "viewer"])),
                                name="membership_role_valid",
                            ),
                        ],
                    },
                ),
                migrations.AddField(
                    model_name="workspace",
                    name="members",
                    field=models.ManyToManyField(
                        related_name="workspaces", through="workspaces.Membership", to=settings.AUTH_USER_MODEL
                    ),
                ),
            ],
        ),
    ]
