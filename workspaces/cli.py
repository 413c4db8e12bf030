"""What every app's management commands share: a progress bar on long work."""

from contextlib import contextmanager

from tqdm import tqdm


@contextmanager
def progress_bar(description: str, *, disable: bool = False, total: int | None = None, unit: str = " files"):
    """Yield an `on_progress(count)` callback that drives a tqdm bar on stderr (out of `total`, if known)."""
    with tqdm(desc=description, unit=unit, total=total, disable=disable, dynamic_ncols=True) as bar:

        def on_progress(count: int) -> None:
            bar.update(count - bar.n)

        yield on_progress
