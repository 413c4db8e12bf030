"""Shared pieces of the commands: a progress bar, the rejection report, finding a named row."""

import json
from contextlib import contextmanager
from pathlib import Path

from django.core.management.base import CommandError
from tqdm import tqdm

from generation.errors import Rejection


@contextmanager
def progress_bar(description: str, *, disable: bool = False, total: int | None = None, unit: str = " files"):
    """Yield an `on_progress(count)` callback that drives a tqdm bar on stderr (out of `total`, if known)."""
    with tqdm(desc=description, unit=unit, total=total, disable=disable, dynamic_ncols=True) as bar:

        def on_progress(count: int) -> None:
            bar.update(count - bar.n)

        yield on_progress


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
