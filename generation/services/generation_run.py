"""Running a generation job: a generator's backend over a corpus's items, on a worker.

The Celery task (`generation.tasks.generation_job_run_task`, queue `gpu`) and the
`generate` command both call `generation_job_run`. The engine's
`generate_pipelined` samples batch after batch on this thread while the previous
batches are encoded as PNG (in processes, for a CUDA backend) and stored by a
small thread pool, so the GPU does not wait on encoding. Every database write of a run (a sample row, the job's counters) goes
through one writer thread: SQLite takes one writer at a time anyway, and the pool
threads open no connection of their own that would be left open. Sample rows are
inserted as they come while the writer is idle, and those that arrive while it is
busy go in together, up to MAX_GROUP_ROWS a transaction: a row per transaction held a job to
1,100-1,300 samples/s on two cores (bench/generation_job.py), far below what a GPU samples.

Seeds. Sample `i` (0, 1, …, `seeds_per_item` − 1) of the item with key `K`, made
by the generator with id `G`, has the seed

    int.from_bytes(sha256(f"parity-seed/v1/{G}/{K}/{i}").digest()[:8], "big") >> 1

a non-negative integer below 2**63, the same on every run and every machine, and
independent of the batch, the job and the other items. It uses the generator's id,
not its name, so renaming a generator keeps its seeds.

Resuming. A run makes only the (item, seed) pairs that have no sample yet; pairs
that have one are counted as `skipped` (or, when this job made them in an earlier
run, as `done`). So a job whose worker was killed half-way is simply run again. The
run writes the job's heartbeat every few seconds from a timer thread; a job whose
heartbeat stops is marked `interrupted` (heartbeat.py) and is resumed
from the page, the API or `generate --resume`, or by its task delivered again (it
acks late). A run claims a queued or interrupted job, never one whose heartbeat is
fresh. Two runs of one job at once cannot make a sample twice (the unique
constraint on generator, item and seed), though their counters may then be off
until the next run.

Failures. An item whose generation or storage fails is recorded in the job's
`errors` (the first 1,000, with `error_count` counting all) and the rest go on. A
job ends `succeeded` with its failures listed, or `failed` when nothing could be
made at all; a rerun retries the failed items. A job is cancelled between batches.
"""

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings as django_settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import DatabaseError, IntegrityError, connections, transaction
from django.db.models import Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from generation.backends import backend_load
from generation.errors import BackendError
from generation.models import GenerationJob, Item, Sample
from generation.services.heartbeat import generation_jobs_interrupt_lost, heartbeat_every

log = logging.getLogger(__name__)

# Counters are written at most this often (and when the job ends).
PROGRESS_SECONDS = 0.5
# A job over a million items that all fail keeps the first errors and the count.
MAX_STORED_ERRORS = 1000
MAX_ERROR_CHARS = 500
ITEMS_PER_QUERY = 500
# Sample rows waiting for the writer beyond this make the threads that store wait.
MAX_PENDING_ROWS = 2000
# Rows inserted in one transaction at most.
MAX_GROUP_ROWS = 500
# Threads storing images while the backend makes the next batch.
DEFAULT_WORKERS = 4
# Processes encoding PNGs for a CUDA backend (on a CPU, sampling is slow enough
# for the store threads to encode): the engine's pipeline says why.
CUDA_ENCODERS = min(8, max(1, (os.cpu_count() or 1) - 2))
SEED_VERSION = "parity-seed/v1"

Status = GenerationJob.Status


def sample_seed(*, generator_id: int, item_key: str, index: int) -> int:
    """The seed of sample `index` of an item for a generator (see the module's docstring)."""
    digest = hashlib.sha256(f"{SEED_VERSION}/{generator_id}/{item_key}/{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def generation_job_run(
    *,
    job_id: int,
    device: str | None = None,
    batch_size: int | None = None,
    workers: int = DEFAULT_WORKERS,
    on_progress: Callable[[int], None] | None = None,
) -> GenerationJob:
    """Run (or resume) a queued or running job; a job that has ended is returned as it is.

    `device` and `batch_size` default to the backend's choice (its `batch_size`
    option, else its default). `on_progress(handled)` is called with the samples
    dealt with so far (done, skipped or failed), from one thread.
    Ctrl-C (or any other interruption that is not an error) marks the job
    `interrupted`, to be resumed, and propagates.
    """
    if not _claim(job_id):
        return GenerationJob.objects.get(pk=job_id)
    job = GenerationJob.objects.select_related("generator", "corpus").get(pk=job_id)
    generator = job.generator
    run = _Run(job, on_progress)
    run.start_heartbeat()  # before the backend loads, which may take longer than the timeout
    try:
        try:
            backend = backend_load(backend=generator.backend, config=generator.backend_config, device=device)
            backend.prepare(generator.settings)
        except BackendError as exc:
            return run.finish(Status.FAILED, error=str(exc))
        except Exception as exc:
            log.exception("generation job %s: backend %r failed to load", job.pk, generator.backend)
            return run.finish(Status.FAILED, error=f"backend {generator.backend!r} failed to load: {_described(exc)}")
        try:
            return _generate(run, backend, batch_size=batch_size or backend.batch_size, workers=workers)
        finally:
            backend.close()
    except Exception as exc:
        if not run.finished:
            run.finish(Status.FAILED, error=f"the job stopped: {_described(exc)}")
        raise
    except BaseException:
        if not run.finished:  # interrupted, not failed: resumable
            run.finish(Status.INTERRUPTED)
        raise
    finally:
        run.close()


def _claim(job_id: int) -> bool:
    """Mark the job running if it is queued or interrupted (its worker lost); cancel it if asked to.

    A running job whose heartbeat is fresh is left to its worker.
    """
    generation_jobs_interrupt_lost(jobs=GenerationJob.objects.filter(pk=job_id))
    jobs = GenerationJob.objects.filter(pk=job_id, status__in=[Status.QUEUED, Status.INTERRUPTED])
    jobs.filter(cancel_requested=True).update(status=Status.CANCELLED, finished_at=timezone.now())
    now = timezone.now()
    return bool(jobs.update(status=Status.RUNNING, heartbeat_at=now, started_at=Coalesce("started_at", Value(now))))


def _generate(run: "_Run", backend, *, batch_size: int, workers: int) -> GenerationJob:
    from generation.engine.pipeline import generate_pipelined  # torch: on a worker only

    settings = dict(run.job.generator.settings)
    run.begin(device=backend.device_name, batch_size=batch_size)
    try:
        stats = generate_pipelined(
            run.work(),
            lambda prompts, seeds: backend.generate(prompts, seeds, **settings),
            run.store,
            batch_size=batch_size,
            workers=workers,
            encoders=CUDA_ENCODERS if backend.device_name.startswith("cuda") else 0,
            on_result=run.on_result,
            should_stop=run.should_stop,
        )
    except Exception as exc:
        log.exception("generation job %s failed", run.job.pk)
        return run.finish(Status.FAILED, error=f"the job stopped: {_described(exc)}")
    # Stored rows the writer has not inserted yet are samples made: the status rests on them.
    run.settle()
    if run.cancelled:
        status = Status.CANCELLED
    elif run.failed and not (run.done or run.skipped):
        status = Status.FAILED
    else:
        status = Status.SUCCEEDED
    return run.finish(status, images_per_second=stats.images_per_second if stats.images else None)


class _Run:
    """The counters of one run of a job, and the one thread that writes to the database."""

    def __init__(self, job: GenerationJob, on_progress: Callable[[int], None] | None):
        self.job = job
        self.on_progress = on_progress
        self.lock = threading.Lock()
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parity-generation-db")
        self.pending: list[tuple[object, Sample]] = []  # (work, row) stored, not yet inserted
        self.inserting = False  # an _insert_pending is queued or running on the writer
        # Samples this job made in earlier runs are done already.
        self.done = Sample.objects.filter(job=job).count()
        self.skipped = self.failed = self.error_count = 0
        self.errors: list[dict] = []
        self.made = 0  # by this run, for its images/s
        self.started = time.monotonic()
        self.synced = 0.0
        self.cancelled = False
        self.finished = False
        self.beating = False  # read on the writer thread: no heartbeat once the run has ended
        self.heartbeat_stop = threading.Event()
        self.heartbeat = threading.Thread(target=self._heartbeat, name="parity-generation-heartbeat", daemon=True)

    # -- on the calling thread ---------------------------------------------------
    def start_heartbeat(self) -> None:
        self.beating = True
        self.heartbeat.start()

    def work(self) -> Iterator:
        """The (item, seed) pairs still to make, item by item in key order (or the job's order)."""
        from generation.engine.pipeline import Work

        job = self.job
        for items in _item_chunks(job):
            rows = Sample.objects.filter(
                generator_id=job.generator_id, item_id__in=[pk for pk, _, _ in items]
            ).values_list("item_id", "seed", "job_id")
            existing = {(item_id, seed): made_by for item_id, seed, made_by in rows}
            skipped = 0
            for pk, key, caption in items:
                for index in range(job.seeds_per_item):
                    seed = sample_seed(generator_id=job.generator_id, item_key=key, index=index)
                    if (pk, seed) in existing:
                        skipped += existing[(pk, seed)] != job.pk
                        continue
                    yield Work(key=(pk, key), prompt=caption, seed=seed)
            if skipped:
                with self.lock:
                    self.skipped += skipped
                self.writer.submit(self._tick)

    def should_stop(self) -> bool:
        """Between batches: write the counters (at most every PROGRESS_SECONDS), read the cancel flag."""
        self.cancelled = self.writer.submit(self._sync_and_check).result()
        return self.cancelled

    def begin(self, *, device: str, batch_size: int) -> None:
        self.started = time.monotonic()  # images/s counts sampling, not loading the backend
        fields = {"device": device[:200], "batch_size": batch_size, "failed": 0, "errors": [], "error_count": 0}
        self._call(lambda: GenerationJob.objects.filter(pk=self.job.pk).update(done=self.done, **fields))

    def finish(self, status: str, *, error: str = "", images_per_second: float | None = None) -> GenerationJob:
        # A heartbeat queued on the writer before the status below must not mark the job running again.
        self.beating = False
        if error:
            self._add_error({"error": error[:MAX_ERROR_CHARS]})
        fields = {"status": status}
        if status != Status.INTERRUPTED:
            fields["finished_at"] = timezone.now()
        if images_per_second is not None:
            fields["images_per_second"] = images_per_second
        # A group task queued earlier may still hold rows back: the counters come after them.
        self._call(lambda: (self._insert_remaining(), self._write(**fields)))
        self.finished = True
        self.job.refresh_from_db()
        return self.job

    def settle(self) -> None:
        """Insert every stored row, so that the counters hold all that this run made."""
        self._call(self._insert_remaining)

    def close(self) -> None:
        self.beating = False
        self.heartbeat_stop.set()
        if self.heartbeat.is_alive():
            self.heartbeat.join()
        self.writer.submit(connections.close_all).result()  # the writer thread's connection
        self.writer.shutdown()

    # -- on the heartbeat thread -------------------------------------------------
    def _heartbeat(self) -> None:
        """Have the writer write the heartbeat every heartbeat_every() seconds, while a batch samples too."""
        while not self.heartbeat_stop.wait(heartbeat_every()):
            try:
                self.writer.submit(self._beat)
            except RuntimeError:  # the writer has shut down: the run is over
                return

    # -- on pool threads -----------------------------------------------------------
    def store(self, work, encoded) -> None:
        """Store the PNG by its hash, and have the writer record the sample."""
        name = f"originals/{encoded.sha256[:2]}/{encoded.sha256}.png"
        if not default_storage.exists(name):
            saved = default_storage.save(name, ContentFile(encoded.data))
            if saved != name:  # another thread stored the same bytes meanwhile: keep one copy
                default_storage.delete(saved)
        item_id, _ = work.key
        row = Sample(
            generator_id=self.job.generator_id, item_id=item_id, seed=work.seed, job_id=self.job.pk,
            image=name, sha256=encoded.sha256, width=encoded.width, height=encoded.height,
            format="PNG", mode=encoded.mode, byte_size=len(encoded.data), blank=encoded.blank,
        )
        with self.lock:
            self.pending.append((work, row))
            start, crowded = not self.inserting, len(self.pending) > MAX_PENDING_ROWS
            self.inserting = True
        if start:
            self.writer.submit(self._insert_pending)
        if crowded:  # the database falls behind: wait until the writer has caught up
            self._call(lambda: None)

    def on_result(self, work, error: BaseException | None) -> None:
        """The pipeline's report: a failure is counted and kept; a success was counted on insert."""
        if error is None:
            return
        _, key = work.key
        with self.lock:
            self.failed += 1
        self._add_error({"item_key": key, "seed": work.seed, "error": _described(error)[:MAX_ERROR_CHARS]})
        self.writer.submit(self._tick)

    # -- on the writer thread ------------------------------------------------------
    def _insert_pending(self) -> None:
        """Insert one group of the rows stored so far; queue itself again while rows are left.

        One group per task, so that the calling thread's check between batches waits
        for one group at most, not for the whole backlog.
        """
        try:
            self._insert_group()
        finally:
            with self.lock:
                self.inserting = bool(self.pending)
            if self.inserting:
                self.writer.submit(self._insert_pending)

    def _insert_remaining(self) -> None:
        """Insert every row still pending: at the end of a run, when no store is left to add one."""
        while True:
            with self.lock:
                if not self.pending:
                    return
            self._insert_group()

    def _insert_group(self) -> None:
        """Up to MAX_GROUP_ROWS pending rows in one transaction; row by row if that fails."""
        with self.lock:
            group, self.pending = self.pending[:MAX_GROUP_ROWS], self.pending[MAX_GROUP_ROWS:]
        if not group:
            return
        try:
            with transaction.atomic():
                Sample.objects.bulk_create([row for _, row in group])
            with self.lock:
                self.done += len(group)
                self.made += len(group)
        except Exception:  # noqa: BLE001 - one row's conflict or error must not lose the others
            for work, row in group:
                self._insert(work, row)
        self._tick()

    def _insert(self, work, row: Sample) -> None:
        row.pk, row._state.adding = None, True  # as before the failed group insert
        try:
            with transaction.atomic():
                row.save(force_insert=True)
        except IntegrityError:  # another run of this job made it meanwhile
            with self.lock:
                self.skipped += 1
        except Exception as error:  # noqa: BLE001 - recorded as the item's failure
            self.on_result(work, error)
        else:
            with self.lock:
                self.done += 1
                self.made += 1

    def _tick(self) -> None:
        if self.on_progress is not None:
            with self.lock:
                handled = self.done + self.skipped + self.failed
            self.on_progress(handled)
        if time.monotonic() - self.synced >= PROGRESS_SECONDS:
            self._write()

    def _beat(self) -> None:
        if not self.beating:
            return
        jobs, now = GenerationJob.objects.filter(pk=self.job.pk), timezone.now()
        try:
            if jobs.filter(status=Status.RUNNING).update(heartbeat_at=now):
                return
            # Taken for lost while it ran (a heartbeat too late): it runs, so it is running again.
            healed = jobs.filter(status__in=[Status.INTERRUPTED, Status.QUEUED]).update(
                status=Status.RUNNING, heartbeat_at=now
            )
        except DatabaseError:  # the next one may get through; nobody reads this future
            log.warning("generation job %s: heartbeat not written", self.job.pk, exc_info=True)
            return
        if healed:
            log.warning(
                "generation job %s was taken for lost while its worker ran: its heartbeat came later than "
                "PARITY_JOB_HEARTBEAT_TIMEOUT (%s s)", self.job.pk, django_settings.PARITY_JOB_HEARTBEAT_TIMEOUT,
            )

    def _sync_and_check(self) -> bool:
        if time.monotonic() - self.synced >= PROGRESS_SECONDS:
            self._write()
        return GenerationJob.objects.filter(pk=self.job.pk, cancel_requested=True).exists()

    def _write(self, **fields) -> None:
        with self.lock:
            counters = {
                "done": self.done, "skipped": self.skipped, "failed": self.failed,
                "errors": list(self.errors), "error_count": self.error_count,
            }
            elapsed = time.monotonic() - self.started
            if self.made and elapsed > 0:
                counters["images_per_second"] = self.made / elapsed
        GenerationJob.objects.filter(pk=self.job.pk).update(**{**counters, **fields})
        self.synced = time.monotonic()

    # -- helpers -----------------------------------------------------------------
    def _add_error(self, entry: dict) -> None:
        with self.lock:
            self.error_count += 1
            if len(self.errors) < MAX_STORED_ERRORS:
                self.errors.append(entry)

    def _call(self, function: Callable):
        return self.writer.submit(function).result()


def _item_chunks(job: GenerationJob) -> Iterator[list[tuple[int, str, str]]]:
    """(id, key, caption) of the job's items, ITEMS_PER_QUERY at a time."""
    items = Item.objects.filter(corpus_id=job.corpus_id)
    if job.item_keys:
        for start in range(0, len(job.item_keys), ITEMS_PER_QUERY):
            keys = job.item_keys[start:start + ITEMS_PER_QUERY]
            found = {key: (pk, key, caption) for pk, key, caption in
                     items.filter(key__in=keys).values_list("id", "key", "caption")}
            yield [found[key] for key in keys if key in found]
        return
    last = None
    while True:
        page = items.order_by("key")
        if last is not None:
            page = page.filter(key__gt=last)
        rows = list(page.values_list("id", "key", "caption")[:ITEMS_PER_QUERY])
        if not rows:
            return
        yield rows
        last = rows[-1][1]


def _described(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
