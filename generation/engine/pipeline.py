"""Sampling overlapped with encoding and storage, so the GPU never waits on PNG writes.

The calling thread samples batch after batch; a small thread pool runs
``store`` (typically: encode a PNG, write it to storage, record a row) on the
images of the previous batches meanwhile. PNG encoding in Pillow and tensor
work in torch both release the GIL, so threads are enough. The pool's backlog
is bounded: once two batches of images wait to be stored, sampling pauses
until the older one is done, so memory stays at about three batches whatever
the length of the job.

Failures stay local. If ``generate`` raises on a batch, that batch's items are
retried one at a time, so one bad prompt costs only itself; an item that still
fails, or whose ``store`` raises, is reported to ``on_result`` and the job goes
on.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from PIL import Image

MAX_WAITING_BATCHES = 2


@dataclass
class Work:
    """One image to make: ``key`` identifies it to the caller (e.g. a sample row)."""

    key: Hashable
    prompt: str
    seed: int


@dataclass
class PipelineStats:
    images: int = 0  # stored successfully
    failed: int = 0  # failed in generate or in store
    seconds: float = 0.0  # wall time of the whole job
    sampling_seconds: float = 0.0  # time spent inside generate (retries included)
    sampled: int = 0  # images generate returned (stored or not)

    @property
    def images_per_second(self) -> float:
        """End-to-end throughput: stored images per wall-clock second."""
        return self.images / self.seconds if self.seconds else 0.0

    @property
    def sampling_images_per_second(self) -> float:
        """Throughput of generate alone."""
        return self.sampled / self.sampling_seconds if self.sampling_seconds else 0.0


def generate_pipelined(
    work: Iterable[Work],
    generate: Callable[[list[str], list[int]], list[Image.Image]],
    store: Callable[[Work, Image.Image], None],
    *,
    batch_size: int,
    workers: int = 4,
    on_result: Callable[[Work, BaseException | None], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> PipelineStats:
    """Generate and store every item of ``work``; return counts and timings.

    Parameters
    ----------
    work
        Items, consumed lazily ``batch_size`` at a time.
    generate
        ``generate(prompts, seeds)`` -> one image per prompt, in order.
    store
        Called once per generated image, on a pool thread.
    workers
        Pool threads running ``store``.
    on_result
        ``on_result(item, None)`` after a successful store, ``on_result(item,
        exc)`` after a failure. It is called from pool threads (store results)
        and from the calling thread (generate failures), so it must be
        thread-safe. An exception it raises (or any other error of the job)
        ends the job: stores already running finish, stores not yet started
        are cancelled, and the exception propagates.
    should_stop
        Checked before each batch; once it returns True no further batch is
        sampled, and the images already sampled are still stored.
    """
    if batch_size < 1 or workers < 1:
        raise ValueError("batch_size and workers must be >= 1")
    stats = PipelineStats()
    lock = threading.Lock()
    started = time.perf_counter()

    def report(item: Work, error: BaseException | None) -> None:
        with lock:
            if error is None:
                stats.images += 1
            else:
                stats.failed += 1
        if on_result is not None:
            on_result(item, error)

    def store_one(item: Work, image: Image.Image) -> None:
        try:
            store(item, image)
        except Exception as error:  # noqa: BLE001 - reported, and the job goes on
            report(item, error)
        else:
            report(item, None)

    waiting: deque[list[Future]] = deque()
    items = iter(work)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="parity-store") as pool:
        try:
            while not (should_stop is not None and should_stop()):
                chunk = list(itertools.islice(items, batch_size))
                if not chunk:
                    break
                made = _sample(chunk, generate, report, stats)
                while len(waiting) >= MAX_WAITING_BATCHES:
                    _finish(waiting.popleft())
                waiting.append([pool.submit(store_one, item, image) for item, image in made])
            while waiting:
                _finish(waiting.popleft())
        finally:
            for futures in waiting:  # after an error: do not start stores nobody will check
                for future in futures:
                    future.cancel()
    stats.seconds = time.perf_counter() - started
    return stats


def _finish(futures: list[Future]) -> None:
    for future in futures:
        future.result()  # re-raises only what on_result raised


def _sample(
    chunk: list[Work],
    generate: Callable[[list[str], list[int]], list[Image.Image]],
    report: Callable[[Work, BaseException | None], None],
    stats: PipelineStats,
) -> list[tuple[Work, Image.Image]]:
    """Images for ``chunk``; a failing batch is retried item by item."""
    started = time.perf_counter()
    try:
        made = _call(chunk, generate)
    except Exception as error:  # noqa: BLE001
        if len(chunk) == 1:
            report(chunk[0], error)
            made = []
        else:
            made = []
            for item in chunk:
                try:
                    made += _call([item], generate)
                except Exception as item_error:  # noqa: BLE001
                    report(item, item_error)
    stats.sampling_seconds += time.perf_counter() - started
    stats.sampled += len(made)
    return made


def _call(
    chunk: list[Work], generate: Callable[[list[str], list[int]], list[Image.Image]]
) -> list[tuple[Work, Image.Image]]:
    images = generate([item.prompt for item in chunk], [item.seed for item in chunk])
    if len(images) != len(chunk):
        raise ValueError(f"generate returned {len(images)} images for {len(chunk)} prompts")
    return list(zip(chunk, images))
