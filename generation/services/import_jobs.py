"""Import jobs: an uploaded corpus or sample bundle imported by a worker, with progress.

The import is the CLI's (`corpus_import`, `samples_import`), all-or-nothing in one
transaction, so progress and the cancel flag cannot travel through that transaction:
every PROGRESS_EVERY records they are written and read on a connection of their own
(a short-lived thread's). A cancelled import raises `ImportCancelled` from its progress
callback, which rolls the transaction back and removes the files it stored.

On SQLite the import holds the database's only write lock until it commits, so there
a job shows its progress when it ends, and only a queued job can be cancelled.
"""

import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import uuid4

from django.core.files.storage import default_storage
from django.db import DatabaseError, connection, connections, transaction
from django.utils import timezone

from generation.errors import ImportCancelled, IngestError, NotCancellable, Rejection
from generation.models import Corpus, Generator, ImportJob
from generation.services.enqueue import IMPORT_JOB_TASK, enqueue_on_commit
from generation.services.imports import ImportResult, ImportSelection, corpus_import, samples_import
from workspaces.errors import ParityError
from workspaces.models import Workspace

log = logging.getLogger(__name__)

PROGRESS_EVERY = 50
UPLOADS = "uploads"
# A bundle of a million bad records must not become a JSON field of a million entries:
# the job keeps the first ones and the count (the CLI's --report writes them all).
MAX_STORED_REJECTIONS = 1000


def bundle_import(
    *,
    kind: str,
    workspace: Workspace,
    source: str,
    label: str,
    generator: Generator | None = None,
    corpus: Corpus | None = None,
    name: str = "",
    description: str = "",
    skip_bad: bool = False,
    on_progress: Callable[[int], None] | None = None,
    selection: dict | None = None,
) -> tuple[Corpus | None, ImportResult]:
    """Import the bundle at `source` as the CLI would; `label` (the upload's name) becomes a new corpus's source."""
    if kind == ImportJob.Kind.CORPUS:
        corpus, result = corpus_import(
            workspace=workspace, name=name, source=source, description=description,
            skip_bad=skip_bad, on_progress=on_progress, selection=ImportSelection.from_dict(selection),
        )
        Corpus.objects.filter(pk=corpus.pk).update(source=label)
        corpus.source = label
        return corpus, result
    result = samples_import(
        generator=generator, source=source, corpus=corpus, skip_bad=skip_bad, on_progress=on_progress
    )
    return corpus, result


def import_job_create(
    *,
    kind: str,
    workspace: Workspace,
    upload,
    filename: str,
    total: int,
    created_by=None,
    generator: Generator | None = None,
    corpus: Corpus | None = None,
    name: str = "",
    description: str = "",
    skip_bad: bool = False,
    selection: dict | None = None,
) -> ImportJob:
    """Keep `upload` (a Django File) in the default storage and queue its import on a worker."""
    stored = default_storage.save(f"{UPLOADS}/{uuid4().hex}/{filename}", upload)
    try:
        with transaction.atomic():
            job = ImportJob.objects.create(
                workspace=workspace, kind=kind, generator=generator, corpus=corpus, name=name,
                description=description, skip_bad=skip_bad, upload=stored, filename=filename,
                selection=selection or {},
                total=total, created_by=created_by,
            )
            enqueue_on_commit(IMPORT_JOB_TASK, job.pk)
    except BaseException:
        _discard(stored)
        raise
    return job


def import_job_run(*, job_id: int) -> ImportJob:
    """Run a queued job (or one a lost worker left running); a cancelled or finished one is left alone."""
    claimed = ImportJob.objects.filter(
        pk=job_id, status__in=[ImportJob.Status.QUEUED, ImportJob.Status.RUNNING]
    ).update(status=ImportJob.Status.RUNNING, started_at=timezone.now())
    job = ImportJob.objects.select_related("workspace", "generator", "corpus").get(pk=job_id)
    if not claimed:
        return job
    progress = _Progress(job.pk)
    outcome: dict = {}
    try:
        with _local_copy(job.upload) as source:
            folder = str(Path(source).parent)
            try:
                corpus, result = bundle_import(
                    kind=job.kind, workspace=job.workspace, source=source, label=job.filename,
                    generator=job.generator, corpus=job.corpus, name=job.name,
                    description=job.description, skip_bad=job.skip_bad, on_progress=progress,
                    selection=job.selection,
                )
            except ImportCancelled:
                outcome = {"status": ImportJob.Status.CANCELLED, "error": "Cancelled; nothing was written."}
            except ParityError as exc:
                shown = shown_error(exc, folder)
                outcome = {
                    "status": ImportJob.Status.FAILED, "error": str(shown),
                    **stored_rejections(getattr(shown, "rejections", []), folder),
                }
            else:
                outcome = {
                    "status": ImportJob.Status.SUCCEEDED, "corpus": corpus,
                    "created": result.created, "skipped": result.skipped, "converted": result.converted,
                    **stored_rejections(result.rejected, folder),
                }
    finally:
        if not outcome:  # a crash, logged by the worker: the job must not look queued forever
            outcome = {"status": ImportJob.Status.FAILED, "error": "The import failed on the worker; see its log."}
        _discard(job.upload)
        ImportJob.objects.filter(pk=job.pk).update(
            **outcome, done=progress.count, upload="", finished_at=timezone.now()
        )
    job.refresh_from_db()
    return job


def import_job_cancel(*, job: ImportJob) -> ImportJob:
    """Cancel a queued job at once; ask a running one to stop at its next progress tick."""
    now = timezone.now()
    if ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.QUEUED).update(
        status=ImportJob.Status.CANCELLED, cancel_requested=True, finished_at=now, upload=""
    ):
        _discard(job.upload)
    else:
        job.refresh_from_db()
        if job.status != ImportJob.Status.RUNNING:
            raise NotCancellable(f"import job {job.pk} has ended ({job.status}); there is nothing to cancel")
        if connection.vendor == "sqlite":
            raise NotCancellable(
                f"import job {job.pk} is running, and on SQLite a running import cannot be stopped; "
                "it writes everything or nothing when it ends"
            )
        ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.RUNNING).update(cancel_requested=True)
    job.refresh_from_db()
    return job


def shown_error(exc: ParityError, folder: str) -> ParityError:
    """The error with the server's folder taken out of every origin: a client sees its own file's name."""
    if not isinstance(exc, IngestError):
        return exc
    message = str(exc).replace(folder + os.sep, "")
    return IngestError(message, rejections=[shown_rejection(r, folder) for r in exc.rejections])


def shown_rejection(rejection: Rejection, folder: str) -> Rejection:
    return Rejection(rejection.origin.replace(folder + os.sep, ""), rejection.reason)


def stored_rejections(rejections: list[Rejection], folder: str) -> dict:
    """The job's `rejections` (the first MAX_STORED_REJECTIONS, as a client sees them) and `rejection_count`."""
    kept = [shown_rejection(r, folder).as_dict() for r in rejections[:MAX_STORED_REJECTIONS]]
    return {"rejections": kept, "rejection_count": len(rejections)}


class _Progress:
    """The import's `on_progress`: every PROGRESS_EVERY records, write the count, read the cancel flag."""

    def __init__(self, job_id: int):
        self.job_id = job_id
        self.count = 0

    def __call__(self, count: int) -> None:
        self.count = count
        if count % PROGRESS_EVERY == 0 and _outside_import(self._sync):
            raise ImportCancelled(f"import job {self.job_id} was cancelled")

    def _sync(self) -> bool:
        ImportJob.objects.filter(pk=self.job_id).update(done=self.count)
        return ImportJob.objects.filter(pk=self.job_id, cancel_requested=True).exists()


def _outside_import(work: Callable[[], bool]) -> bool:
    """`work()` on a connection of its own, outside the import's transaction; False on SQLite."""
    if connection.vendor == "sqlite":
        return False
    answer = []

    def run() -> None:
        try:
            answer.append(work())
        except DatabaseError:
            log.warning("import job progress not written", exc_info=True)
        finally:
            connections.close_all()  # this thread's connections only

    thread = threading.Thread(target=run, name="import-progress")
    thread.start()
    thread.join()
    return bool(answer and answer[0])


@contextmanager
def _local_copy(name: str) -> Iterator[str]:
    """A path on this machine for the stored upload: its own where the storage is a local folder."""
    try:
        local = default_storage.path(name)
    except NotImplementedError:
        local = None
    if local:
        yield local
        return
    with tempfile.TemporaryDirectory(prefix="parity-import-") as folder:
        path = Path(folder) / Path(name).name
        with default_storage.open(name, "rb") as stored, path.open("wb") as copy:
            shutil.copyfileobj(stored, copy)
        yield str(path)


def _discard(name: str) -> None:
    if not name:
        return
    try:
        default_storage.delete(name)
        os.rmdir(default_storage.path(str(Path(name).parent)))
    except (NotImplementedError, OSError):
        pass
