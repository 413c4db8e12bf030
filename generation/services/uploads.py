"""An uploaded bundle imported during the request, under the name its client gave it.

The readers go by a file's name (its extension, the origins in every error), and an
upload lies in a temporary file of the server's naming: the import reads it through a
link named as the client named it, and what it reports names the client's file only.
"""

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from generation.errors import IngestError
from generation.models import Corpus, Generator
from generation.services.import_jobs import bundle_import, shown_error, shown_rejection
from generation.services.imports import ImportResult
from workspaces.models import Workspace


def upload_import(
    *,
    path: str,
    label: str,
    kind: str,
    workspace: Workspace,
    generator: Generator | None = None,
    corpus: Corpus | None = None,
    name: str = "",
    description: str = "",
    skip_bad: bool = False,
    selection: dict | None = None,
) -> tuple[Corpus | None, ImportResult]:
    """Import the bundle at `path` (a temporary file) now, as `bundle_import` does, as if it were named `label`."""
    with _named(path, label) as source:
        folder = str(Path(source).parent)
        try:
            corpus, result = bundle_import(
                kind=kind, workspace=workspace, source=source, label=label, generator=generator,
                corpus=corpus, name=name, description=description, skip_bad=skip_bad, selection=selection,
            )
        except IngestError as exc:
            raise shown_error(exc, folder) from None
    return corpus, replace(result, rejected=[shown_rejection(r, folder) for r in result.rejected])


@contextmanager
def _named(path: str, label: str) -> Iterator[str]:
    """`path` under the name `label`: a link, not a copy."""
    with tempfile.TemporaryDirectory(prefix="parity-upload-") as folder:
        named = os.path.join(folder, label)
        os.symlink(path, named)
        yield named
