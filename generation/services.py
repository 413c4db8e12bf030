"""Writes of the generation domain: corpus and sample imports; series and generators.

An import is all-or-nothing by default: every record is validated, every problem is
collected, and if any record is bad nothing is written — no rows (one transaction)
and no stored files (the ones this import created are removed). With `skip_bad` the
good records are imported and the bad ones are returned for a report.
"""

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import Storage, default_storage
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from generation import selectors
from generation.backends import backend_check
from generation.errors import Duplicate, IngestError, InUse, NameTaken, NotCancellable, Rejection
from generation.heartbeat import generation_jobs_interrupt_lost
from generation.ingest.archives import ArchiveLimits
from generation.ingest.images import ImageFacts, ImageLimits, inspect_image
from generation.ingest.sources import Record, bundle_records, corpus_records
from generation.models import Corpus, GenerationJob, Generator, Item, Sample, Series
from workspaces.errors import ParityError
from workspaces.models import Workspace

BATCH = 256
SHOWN_REJECTIONS = 20


@dataclass
class ImportResult:
    created: int = 0
    skipped: int = 0
    converted: int = 0
    rejected: list[Rejection] = field(default_factory=list)


def import_limits() -> ImageLimits:
    return ImageLimits(
        max_bytes=settings.PARITY_MAX_IMAGE_BYTES, max_pixels=settings.PARITY_MAX_IMAGE_PIXELS
    )


def archive_limits() -> ArchiveLimits:
    return ArchiveLimits(members=settings.PARITY_MAX_ARCHIVE_MEMBERS, expanded=settings.PARITY_MAX_UPLOAD_BYTES)


def corpus_import(
    *,
    workspace: Workspace,
    name: str,
    source: str,
    description: str = "",
    skip_bad: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[Corpus, ImportResult]:
    """Create corpus `name` in `workspace` from the files at `source`."""
    limits = import_limits()
    records = corpus_records(source, max_bytes=limits.max_bytes, limits=archive_limits())
    result = ImportResult()
    files = _StoredFiles(default_storage)
    try:
        with transaction.atomic():
            if Corpus.objects.filter(workspace=workspace, name=name).exists():
                raise IngestError(f"workspace {workspace.slug!r} already has a corpus named {name!r}")
            corpus = Corpus.objects.create(
                workspace=workspace, name=name, source=source, description=description
            )
            first_seen: dict[str, str] = {}
            batch: list[Item] = []
            for record in _counted(records, on_progress):
                try:
                    if isinstance(record, Rejection):
                        raise record
                    key = _checked_key(record)
                    caption = _checked_caption(record)
                    if key in first_seen:
                        raise Rejection(record.origin, f"duplicate key {key!r} (first at {first_seen[key]})")
                    first_seen[key] = record.origin
                    facts = inspect_image(record.data, origin=record.origin, limits=limits)
                except Rejection as rejection:
                    result.rejected.append(rejection)
                    continue
                if result.rejected and not skip_bad:
                    continue  # the import will be refused: validate the rest, store nothing more
                result.converted += facts.converted
                batch.append(Item(corpus=corpus, key=key, caption=caption, meta=record.meta,
                                  image=files.save(facts, record.data), **_fact_fields(facts)))
                if len(batch) >= BATCH:
                    result.created += len(Item.objects.bulk_create(batch))
                    batch = []
            _refuse_if_bad(result, skip_bad, what="item")
            result.created += len(Item.objects.bulk_create(batch))
            if result.created == 0:
                raise IngestError(f"{source}: no item to import", rejections=result.rejected)
    except BaseException:
        files.remove_created()
        raise
    return corpus, result


def samples_import(
    *,
    generator: Generator,
    source: str = "",
    corpus: Corpus | None = None,
    skip_bad: bool = False,
    on_progress: Callable[[int], None] | None = None,
    records: Iterable[Record | Rejection] | None = None,
) -> ImportResult:
    """Add the samples of the bundle at `source` to `generator`; item keys are `corpus`'s.

    `records` instead of `source` imports records already read (one uploaded image).
    A sample that already exists with the same bytes is skipped, so a rerun is harmless;
    one that exists with other bytes is a rejection.
    """
    corpus = corpus or _only_corpus(generator.workspace)
    limits = import_limits()
    if records is None:
        records = bundle_records(source, max_bytes=limits.max_bytes, limits=archive_limits())
    result = ImportResult()
    files = _StoredFiles(default_storage)
    try:
        with transaction.atomic():
            first_seen: dict[tuple[str, int], str] = {}
            pending: list[tuple[Record, ImageFacts]] = []
            for record in _counted(records, on_progress):
                try:
                    if isinstance(record, Rejection):
                        raise record
                    record.key = _checked_key(record)  # trimmed, as the corpus import stores keys
                    pair = (record.key, record.seed)
                    if pair in first_seen:
                        raise Rejection(
                            record.origin,
                            f"duplicate key {pair[0]!r} with seed {pair[1]} (first at {first_seen[pair]})",
                        )
                    first_seen[pair] = record.origin
                    pending.append((record, inspect_image(record.data, origin=record.origin, limits=limits)))
                except Rejection as rejection:
                    result.rejected.append(rejection)
                if len(pending) >= BATCH:
                    _store_samples(pending, generator, corpus, files, result, skip_bad)
                    pending = []
            _store_samples(pending, generator, corpus, files, result, skip_bad)
            _refuse_if_bad(result, skip_bad, what="sample")
    except BaseException:
        files.remove_created()
        raise
    return result


def sample_add(*, generator: Generator, corpus: Corpus, key: str, seed: int, data: bytes, origin: str) -> Sample:
    """One uploaded sample, through the bundle import's checks; `Duplicate` if it exists already."""

    def existing() -> int | None:
        return Sample.objects.filter(
            generator=generator, item__corpus=corpus, item__key=key, seed=seed
        ).values_list("pk", flat=True).first()

    def refuse(pk: int) -> Duplicate:
        return Duplicate(
            f"generator {generator.name!r} already has a sample for key {key!r} with seed {seed}",
            existing_id=pk,
        )

    if (pk := existing()) is not None:
        raise refuse(pk)
    record = Record(key=key, seed=seed, data=data, origin=origin)
    try:
        samples_import(generator=generator, corpus=corpus, records=[record])
    except IngestError:
        if (pk := existing()) is not None:  # another upload of the same sample won the race
            raise refuse(pk) from None
        raise
    return Sample.objects.select_related("item").get(generator=generator, item__corpus=corpus, item__key=key, seed=seed)


def _store_samples(pending, generator, corpus, files, result, skip_bad) -> None:
    if not pending:
        return
    keys = {record.key for record, _ in pending}
    items = dict(Item.objects.filter(corpus=corpus, key__in=keys).values_list("key", "id"))
    existing = {
        (item_id, seed): sha
        for item_id, seed, sha in Sample.objects.filter(
            generator=generator, item_id__in=items.values()
        ).values_list("item_id", "seed", "sha256")
    }
    rows = []
    for record, facts in pending:
        item_id = items.get(record.key)
        if item_id is None:
            result.rejected.append(
                Rejection(record.origin, f"unknown item key {record.key!r}: corpus {corpus.name!r} has no such item")
            )
            continue
        old = existing.get((item_id, record.seed))
        if old == facts.sha256:
            result.skipped += 1
            continue
        if old is not None:
            result.rejected.append(
                Rejection(record.origin, f"generator {generator.name!r} already has a different sample "
                                         f"for key {record.key!r} with seed {record.seed}")
            )
            continue
        if result.rejected and not skip_bad:
            continue
        result.converted += facts.converted
        rows.append(Sample(generator=generator, item_id=item_id, seed=record.seed,
                           image=files.save(facts, record.data), **_fact_fields(facts)))
    try:
        result.created += len(Sample.objects.bulk_create(rows))
    except IntegrityError as exc:
        # Another import of the same generator committed these samples meanwhile.
        raise IngestError(f"samples of {generator.name!r} changed during the import: {exc}") from None


def _only_corpus(workspace: Workspace) -> Corpus:
    corpora = list(Corpus.objects.filter(workspace=workspace)[:2])
    if len(corpora) == 1:
        return corpora[0]
    if not corpora:
        raise IngestError(f"workspace {workspace.slug!r} has no corpus: import one first")
    raise IngestError(f"workspace {workspace.slug!r} has several corpora: say which one the item keys belong to")


def _refuse_if_bad(result: ImportResult, skip_bad: bool, *, what: str) -> None:
    if not result.rejected or skip_bad:
        return
    count = len(result.rejected)
    lines = [f"  {rejection}" for rejection in result.rejected[:SHOWN_REJECTIONS]]
    if count > SHOWN_REJECTIONS:
        lines.append(f"  … and {count - SHOWN_REJECTIONS} more")
    raise IngestError(
        f"import refused: {count} bad {what}{'s' if count != 1 else ''}; nothing was written "
        f"(--skip-bad imports the good ones and reports the rest)\n" + "\n".join(lines),
        rejections=result.rejected,
    )


def _checked_key(record: Record) -> str:
    key = record.key.strip()
    if not key:
        raise Rejection(record.origin, "key is empty")
    if len(key) > 255:
        raise Rejection(record.origin, f"key has {len(key)} characters, over the limit of 255")
    return key


def _checked_caption(record: Record) -> str:
    caption = (record.caption or "").strip()
    if not caption:
        raise Rejection(record.origin, "caption is empty")
    limit = settings.PARITY_MAX_CAPTION_CHARS
    if len(caption) > limit:
        raise Rejection(record.origin, f"caption has {len(caption):,} characters, over the limit of {limit:,}")
    return caption


def _fact_fields(facts: ImageFacts) -> dict:
    return {
        "sha256": facts.sha256,
        "width": facts.width,
        "height": facts.height,
        "format": facts.format,
        "mode": facts.mode,
        "byte_size": facts.byte_size,
    }


def _counted(records: Iterable, on_progress: Callable[[int], None] | None) -> Iterator:
    for count, record in enumerate(records, start=1):
        yield record
        if on_progress:
            on_progress(count)


class _StoredFiles:
    """Content-addressed originals: the name is the sha256, so equal images are stored once.

    Remembers the files this import created so that a refused import leaves none behind.
    """

    def __init__(self, storage: Storage):
        self.storage = storage
        self.created: list[str] = []

    def save(self, facts: ImageFacts, data: bytes) -> str:
        name = f"originals/{facts.sha256[:2]}/{facts.sha256}.{facts.extension}"
        if not self.storage.exists(name):
            saved = self.storage.save(name, ContentFile(data))
            self.created.append(saved)
            return saved
        return name

    def remove_created(self) -> None:
        for name in self.created:
            self.storage.delete(name)
        self.created.clear()


# ------------------------------------------------------------------------------
# Series and generators
# ------------------------------------------------------------------------------
# Fields of a generator that `generator_update` may change; its workspace is fixed.
GENERATOR_FIELDS = (
    "name", "description", "series", "params", "train_images", "train_flops", "train_step",
    "settings", "metrics", "backend", "backend_config",
)


def series_create(*, workspace: Workspace, name: str, description: str = "") -> Series:
    try:
        with transaction.atomic():
            return Series.objects.create(workspace=workspace, name=name, description=description)
    except IntegrityError:
        raise NameTaken(f"workspace {workspace.slug!r} already has a series named {name!r}") from None


def generator_create(*, workspace: Workspace, name: str, **fields) -> Generator:
    """A new generator of `workspace`; `fields` are any of `GENERATOR_FIELDS`."""
    generator = Generator(workspace=workspace, name=name)
    return generator_update(generator=generator, **fields)


def generator_update(*, generator: Generator, **fields) -> Generator:
    unknown = set(fields) - set(GENERATOR_FIELDS)
    if unknown:
        raise TypeError(f"not a generator field: {', '.join(sorted(unknown))}")
    for name, value in fields.items():
        setattr(generator, name, value)
    backend_check(backend=generator.backend, config=generator.backend_config, settings=generator.settings)
    if generator.series is not None and generator.series.workspace_id != generator.workspace_id:
        raise ParityError(f"series {generator.series.name!r} belongs to another workspace")
    try:
        with transaction.atomic():
            generator.save()
    except IntegrityError:
        if Generator.objects.filter(workspace=generator.workspace_id, name=generator.name).exclude(
            pk=generator.pk
        ).exists():
            raise NameTaken(f"the workspace already has a generator named {generator.name!r}") from None
        raise
    return generator


def generator_delete(*, generator: Generator) -> None:
    """Delete a generator with its samples and jobs; refused while a study's trials use them."""
    try:
        with transaction.atomic():
            generator.delete()
    except ProtectedError:
        raise InUse(f"generator {generator.name!r} has trials in a study; it cannot be deleted") from None


# ------------------------------------------------------------------------------
# Generation jobs
# ------------------------------------------------------------------------------
# A generator whose samples are uploaded has no backend to run.
UPLOAD_BACKEND = "upload"
# `GenerationJob.total` is a PositiveIntegerField: the largest value every database stores.
MAX_JOB_SAMPLES = 2**31 - 1


def generation_job_create(
    *,
    generator: Generator,
    corpus: Corpus,
    item_keys: list[str] | None = None,
    seeds_per_item: int = 1,
    enqueue: bool = True,
) -> GenerationJob:
    """Queue a run of `generator`'s backend over `corpus`'s items: those of `item_keys`, or every item.

    `total` is the samples the job is to make, items × `seeds_per_item`, counted now.
    The job is sent to the `gpu` queue once the transaction commits; `enqueue=False`
    leaves it for the caller to run (the `generate` command runs it in-process).
    """
    keys = list(item_keys or [])
    if generator.backend == UPLOAD_BACKEND:
        raise ParityError(f"generator {generator.name!r} has no backend to run: its samples are uploaded")
    if corpus.workspace_id != generator.workspace_id:
        raise ParityError(f"corpus {corpus.name!r} belongs to another workspace than generator {generator.name!r}")
    if seeds_per_item < 1:
        raise ParityError("a job makes at least one seed per item")
    if len(set(keys)) != len(keys):
        raise ParityError("an item key is listed twice")
    if keys and (missing := selectors.item_keys_missing(corpus=corpus, keys=keys)):
        raise ParityError(f"corpus {corpus.name!r} has no item with key {missing[0]!r}")
    items = len(keys) if keys else corpus.items.count()
    if items == 0:
        raise ParityError(f"corpus {corpus.name!r} has no items")
    total = items * seeds_per_item
    if total > MAX_JOB_SAMPLES:
        raise ParityError(f"a job makes at most {MAX_JOB_SAMPLES:,} samples; this one would make {total:,}")
    job = GenerationJob.objects.create(
        generator=generator, corpus=corpus, item_keys=keys, seeds_per_item=seeds_per_item, total=total
    )
    if enqueue:
        from generation.tasks import generation_job_run  # tasks import this module

        transaction.on_commit(lambda: generation_job_run.delay(job.pk))
    return job


def generation_job_cancel(*, job: GenerationJob) -> GenerationJob:
    """Cancel a queued or interrupted job at once; ask a running one to stop, which its worker
    does between batches.

    A running job whose worker is gone (generation/heartbeat.py) is cancelled at once, and
    one whose worker goes silent after the request ends cancelled when the loss is seen.
    A job that has ended cannot be cancelled (`NotCancellable`); asking twice is harmless.
    """
    jobs = GenerationJob.objects.filter(pk=job.pk)
    generation_jobs_interrupt_lost(jobs=jobs)
    cancelled = jobs.filter(status__in=[GenerationJob.Status.QUEUED, GenerationJob.Status.INTERRUPTED]).update(
        status=GenerationJob.Status.CANCELLED, cancel_requested=True, finished_at=timezone.now()
    )
    if not cancelled and not jobs.filter(status=GenerationJob.Status.RUNNING).update(cancel_requested=True):
        job.refresh_from_db()
        raise NotCancellable(f"generation job {job.pk} has ended ({job.status}); there is nothing to cancel")
    job.refresh_from_db()
    return job
