"""Workspace and Membership leave `generation`'s state (their tables stay, now owned by
`workspaces`); their content types follow, so permissions granted on them are kept."""

from django.db import migrations

MOVED = ["workspace", "membership"]


def content_types_move(apps, schema_editor, *, source: str, target: str) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    for model in MOVED:
        if not ContentType.objects.using(db).filter(app_label=target, model=model).exists():
            ContentType.objects.using(db).filter(app_label=source, model=model).update(app_label=target)


def forwards(apps, schema_editor):
    content_types_move(apps, schema_editor, source="generation", target="workspaces")


def backwards(apps, schema_editor):
    content_types_move(apps, schema_editor, source="workspaces", target="generation")


class Migration(migrations.Migration):
    dependencies = [
        ("generation", "0006_workspace_moved"),
        ("annotate", "0008_workspace_moved"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.DeleteModel(name="Membership"),
                migrations.DeleteModel(name="Workspace"),
            ],
        ),
        migrations.RunPython(forwards, backwards),
    ]
