"""Corpus and sample imports: the CLI's, and the upload's underneath.

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

from generation.errors import Duplicate, IngestError, Rejection
from generation.ingest.archives import ArchiveLimits
from generation.ingest.images import ImageFacts, ImageLimits, inspect_image
from generation.ingest.sources import Record, bundle_records, corpus_records
from generation.models import Corpus, Generator, Item, Sample
from generation.selection import (
    FilterRun,
    Filtered,
    SelectionError,
    Where,
    facts_of,
    parse_where,
    sample_keys,
)
from workspaces.models import Workspace

BATCH = 256
SHOWN_REJECTIONS = 20


@dataclass
class ImportResult:
    created: int = 0
    skipped: int = 0
    converted: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    # With a selection: per filter, the records it removed; the sample's size.
    filtered: list[tuple[str, int]] = field(default_factory=list)
    sampled: int | None = None
    # Samples stored that are blank or near-constant (`ImageFacts.blank`).
    blank: int = 0


def import_limits() -> ImageLimits:
    return ImageLimits(
        max_bytes=settings.PARITY_MAX_IMAGE_BYTES, max_pixels=settings.PARITY_MAX_IMAGE_PIXELS
    )


def archive_limits() -> ArchiveLimits:
    return ArchiveLimits(members=settings.PARITY_MAX_ARCHIVE_MEMBERS, expanded=settings.PARITY_MAX_UPLOAD_BYTES)


@dataclass(frozen=True)
class ImportSelection:
    """Which records of a source an import keeps (`generation.selection`): those passing
    `wheres`, then, with `sample`, that many of them by `seed` (stratified by the
    metadata field `stratify_by`, `allocation` as in a study)."""

    wheres: tuple[Where, ...] = ()
    sample: int | None = None
    seed: int = 0
    stratify_by: str = ""
    allocation: str = "proportional"

    def as_dict(self) -> dict:
        return {"where": [w.text for w in self.wheres], "sample": self.sample, "seed": self.seed,
                "stratify_by": self.stratify_by, "allocation": self.allocation}

    @classmethod
    def from_dict(cls, data: dict | None) -> "ImportSelection":
        """The selection `as_dict` wrote (an import job keeps it); an empty dict selects everything."""
        data = data or {}
        return cls(wheres=tuple(parse_where(text) for text in data.get("where") or ()), sample=data.get("sample"),
                   seed=data.get("seed") or 0, stratify_by=data.get("stratify_by") or "",
                   allocation=data.get("allocation") or "proportional")


def corpus_import(
    *,
    workspace: Workspace,
    name: str,
    source: str,
    description: str = "",
    skip_bad: bool = False,
    on_progress: Callable[[int], None] | None = None,
    selection: ImportSelection = ImportSelection(),
) -> tuple[Corpus, ImportResult]:
    """Create corpus `name` in `workspace` from the files at `source`.

    With a `selection`, only the records it keeps become items; each filter's count of
    records removed and the sample are in the result (`filtered`, `sampled`) and on the
    corpus (`Corpus.selection`). A sample reads the source twice: once for the keys and
    metadata it draws from, once for the chosen records' images.
    """
    limits = import_limits()
    chosen, filtered = _chosen_keys(source, selection, limits) if selection.sample else (None, None)
    records = corpus_records(source, max_bytes=limits.max_bytes, limits=archive_limits())
    result = ImportResult()
    files = _StoredFiles(default_storage)
    wheres = list(selection.wheres) if chosen is None else []
    run = FilterRun(wheres)
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
                if chosen is not None and key not in chosen:
                    continue
                if wheres and not _passes(run, facts, record.meta):
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
            if wheres:
                filtered = _filtered(run)
            result.created += len(Item.objects.bulk_create(batch))
            if result.created == 0:
                raise IngestError(f"{source}: no item to import", rejections=result.rejected)
            if selection != ImportSelection():
                result.filtered = filtered.removed if filtered else []
                result.sampled = None if chosen is None else len(chosen)
                corpus.selection = {**selection.as_dict(), "filters": [
                    {"where": text, "removed": n} for text, n in result.filtered], "sampled": result.sampled}
                corpus.save(update_fields=["selection"])
    except BaseException:
        files.remove_created()
        raise
    return corpus, result


def _facts_for_filters(facts: ImageFacts) -> dict:
    return facts_of(facts.width, facts.height, byte_size=facts.byte_size, format=facts.format, mode=facts.mode)


def _passes(run: FilterRun, facts: ImageFacts, meta: dict) -> bool:
    try:
        return run.passes(_facts_for_filters(facts), meta)
    except SelectionError as exc:
        raise IngestError(str(exc)) from None


def _filtered(run: FilterRun) -> Filtered:
    try:
        return run.result()
    except SelectionError as exc:
        raise IngestError(str(exc)) from None


def _chosen_keys(source: str, selection: ImportSelection, limits: ImageLimits) -> tuple[set[str], Filtered]:
    """First pass of a sampled import: the keys of the records that pass the filters, sampled.

    Records that will be rejected are left to the second pass, which reports them.
    """
    keys, strata = [], []
    run = FilterRun(list(selection.wheres))
    for record in corpus_records(source, max_bytes=limits.max_bytes, limits=archive_limits()):
        if isinstance(record, Rejection):
            continue
        try:
            key = _checked_key(record)
            facts = inspect_image(record.data, origin=record.origin, limits=limits)
        except Rejection:
            continue
        if not _passes(run, facts, record.meta):
            continue
        keys.append(key)
        strata.append((record.meta or {}).get(selection.stratify_by.removeprefix("meta.")) if selection.stratify_by
                      else None)
    filtered = _filtered(run)
    try:
        chosen = sample_keys(keys, selection.sample, seed=selection.seed,
                             strata=[s if s is None or isinstance(s, (str, int, float, bool)) else str(s)
                                     for s in strata] if selection.stratify_by else None,
                             allocation=selection.allocation)
    except SelectionError as exc:
        raise IngestError(str(exc)) from None
    return set(chosen), filtered


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
    bundle = records is None
    if bundle:
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
            if bundle and result.created > 1 and result.blank == result.created:
                raise IngestError(
                    f"{source}: all {result.created} samples are blank (one colour, as a safety filter returns "
                    "them): nothing imported; check the generator's output")
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
        result.blank += facts.blank
        rows.append(Sample(generator=generator, item_id=item_id, seed=record.seed, blank=facts.blank,
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
