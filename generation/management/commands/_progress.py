"""Shared pieces of generation's commands: the rejection report, finding a named row.
(The progress bar every app's commands share is `workspaces.cli.progress_bar`.)"""

import json
from pathlib import Path

from django.core.management.base import CommandError

from generation.errors import Rejection


def write_report(path: Path, rejections: list[Rejection]) -> None:
    with path.open("w", encoding="utf-8") as report:
        for rejection in rejections:
            report.write(json.dumps(rejection.as_dict(), ensure_ascii=False) + "\n")


def one_named(rows, *, what: str, name: str, workspace: str | None):
    """The one row of `rows` (a queryset with a workspace) named `name`, in `workspace` if
    given; `CommandError` when none is, or when several workspaces have one."""
    rows = rows.filter(name=name).select_related("workspace")
    if workspace:
        rows = rows.filter(workspace__slug=workspace)
    found = list(rows[:2])
    if not found:
        raise CommandError(f"no {what} named {name!r}" + (f" in {workspace!r}" if workspace else ""))
    if len(found) > 1:
        raise CommandError(f"several workspaces have a {what} named {name!r}: add --workspace")
    return found[0]
