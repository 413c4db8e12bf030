"""Shared pieces of the commands: a progress bar and the rejection report."""

import json
from contextlib import contextmanager
from pathlib import Path

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
