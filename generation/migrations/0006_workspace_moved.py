"""The foreign keys to Workspace now point at `workspaces.Workspace`: the same table, so
only the migration state changes."""

import django.db.models.deletion
from django.db import migrations, models


def _workspace_key(related_name: str, on_delete) -> models.ForeignKey:
    return models.ForeignKey(on_delete=on_delete, related_name=related_name, to="workspaces.workspace")


class Migration(migrations.Migration):
    dependencies = [
        ("generation", "0005_generationjob_heartbeat_interrupted"),
        ("workspaces", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.AlterField(
                    model_name=model_name,
                    name="workspace",
                    field=_workspace_key(related_name, on_delete),
                )
                for model_name, related_name, on_delete in [
                    ("corpus", "corpora", django.db.models.deletion.PROTECT),
                    ("series", "series", django.db.models.deletion.PROTECT),
                    ("generator", "generators", django.db.models.deletion.PROTECT),
                    ("importjob", "import_jobs", django.db.models.deletion.CASCADE),
                ]
            ],
        ),
    ]
