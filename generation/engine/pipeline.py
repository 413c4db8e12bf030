"""Sampling overlapped with encoding and storage, so the GPU never waits on PNG writes.

The calling thread samples batch after batch while the images of the previous
batches are encoded as PNG and handed to ``store`` (typically: write the bytes
to storage, record a row) on a small thread pool. Encoding runs either on those
threads (``encoders=0``) or in ``encoders`` worker processes. Threads suffice on
a CPU, where sampling is slow; on a GPU a small network samples thousands of
images a second, and Pillow holds the GIL for much of a small PNG's encoding,
so encoding threads slow the sampling thread itself (measured on an H100:
end-to-end 0.4-0.6 of pure sampling with threads). Processes take that work
off the GIL; an image crosses to them as one array per chunk.

The backlog is bounded: once two batches wait to be stored, sampling pauses
until the older one is done, so memory stays at about three batches whatever
the length of the job.

Failures stay local. If ``generate`` raises on a batch, that batch's items are
retried one at a time, so one bad prompt costs only itself; an item that still
fails, cannot be encoded, or whose ``store`` raises, is reported to
``on_result`` and the job goes on.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import logging
import multiprocessing
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

MAX_WAITING_BATCHES = 2


@dataclass
class Work:
    """One image to make: ``key`` identifies it to the caller (e.g. a sample row)."""

    key: Hashable
    prompt: str
    seed: int


@dataclass(frozen=True)
class Encoded:
    """One image as PNG bytes, with what a caller records about it."""

    data: bytes
    sha256: str
    width: int
    height: int
    mode: str
    blank: bool = False


STORED_MODES = ("RGB", "RGBA", "L")
# An image whose grey levels (0 to 255) vary less than this, as a standard deviation over
# a thumbnail, is blank: a safety filter's black square, a constant fill. Low on purpose:
# a model that draws a faint, empty background has failed, and annotators must see that
# (the demo's weakest generators make such images, sd 0.6 to 2).
BLANK_STD = 0.5
THUMBNAIL = 64


def near_constant(image: Image.Image) -> bool:
    """Whether the image is blank or near-constant (`BLANK_STD`)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        grey = np.asarray(image, dtype=np.float32) * (255.0 / 65535.0 if image.mode.startswith("I;16") else 1.0)
    else:
        small = image.copy()
        small.thumbnail((THUMBNAIL, THUMBNAIL))
        grey = np.asarray(small.convert("L"), dtype=np.float32)
    return bool(grey.size) and float(grey.std()) < BLANK_STD


def encode_png(image: Image.Image) -> Encoded:
    """``image`` as PNG (converted to RGB unless it is RGB, RGBA or L) and its SHA-256."""
    if not isinstance(image, Image.Image):
        raise TypeError(f"the backend returned a {type(image).__name__}, not a PIL image")
    if image.mode not in STORED_MODES:
        image = image.convert("RGB")
    out = io.BytesIO()
    image.save(out, "PNG")
    data = out.getvalue()
    return Encoded(data, hashlib.sha256(data).hexdigest(), image.width, image.height, image.mode,
                   blank=near_constant(image))


@dataclass
class PipelineStats:
    images: int = 0  # stored successfully
    failed: int = 0  # failed in generate or in store
    seconds: float = 0.0  # wall time of the whole job
    sampling_seconds: float = 0.0  # time spent inside generate (retries included)
    sampled: int = 0  # images generate returned (stored or not)
    encoders: int = 0  # encoder processes used (0: encoding on the store threads)

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
    store: Callable[[Work, Encoded], None],
    *,
    batch_size: int,
    workers: int = 4,
    encoders: int = 0,
    on_result: Callable[[Work, BaseException | None], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> PipelineStats:
    """Generate, encode and store every item of ``work``; return counts and timings.

    Parameters
    ----------
    work
        Items, consumed lazily ``batch_size`` at a time.
    generate
        ``generate(prompts, seeds)`` -> one image per prompt, in order: PIL
        images, or one uint8 array [N, H, W, C] (C 3 or 4; or [N, H, W]), which
        goes to the encoder processes in slices, with no work per image here.
    store
        ``store(item, encoded)`` once per image encoded, on a pool thread.
    workers
        Pool threads running ``store`` (and encoding, when ``encoders`` is 0).
    encoders
        Processes encoding PNGs, started with ``spawn`` (safe after CUDA has
        started). 0 encodes on the store threads. A daemonic process, such as
        a Celery prefork child, may not start processes: there it falls back
        to 0 with a warning (``stats.encoders`` says which ran).
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
    if batch_size < 1 or workers < 1 or encoders < 0:
        raise ValueError("batch_size and workers must be >= 1, encoders >= 0")
    if encoders and multiprocessing.current_process().daemon:
        log.warning(
            "a daemonic process cannot start encoder processes: encoding on %d threads",
            workers,
        )
        encoders = 0
    stats = PipelineStats(encoders=encoders)
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

    def store_one(item: Work, encoded: Encoded | BaseException) -> None:
        if isinstance(encoded, BaseException):
            report(item, encoded)
            return
        try:
            store(item, encoded)
        except Exception as error:  # noqa: BLE001 - reported, and the job goes on
            report(item, error)
        else:
            report(item, None)

    def encode_and_store(item: Work, image: Image.Image) -> None:
        store_one(item, _encode_or_error(image))

    def store_encoded(items: list[Work], future: Future) -> None:
        try:
            results = future.result()
        except Exception as error:  # noqa: BLE001 - the chunk never reached an encoder
            results = [error] * len(items)
        for item, result in zip(items, results):
            store_one(item, result)

    def hand_over(made: tuple[list[Work], Sequence], pool: Executor, encoding: Executor | None) -> list[Future]:
        done, images = made
        if not done:
            return []
        if encoding is None:
            return [pool.submit(encode_and_store, item, images[i]) for i, item in enumerate(done)]
        futures = []
        size = -(-len(done) // encoders)
        for start in range(0, len(done), size):
            part = images[start : start + size]
            packed = (None, part) if isinstance(part, np.ndarray) else _pack(part)
            futures.append(pool.submit(store_encoded, done[start : start + size], encoding.submit(_encode_chunk, packed)))
        return futures

    waiting: deque[list[Future]] = deque()
    items = iter(work)
    with (
        _encoder_pool(encoders) as encoding,
        ThreadPoolExecutor(workers, thread_name_prefix="parity-store") as pool,
    ):
        try:
            while not (should_stop is not None and should_stop()):
                chunk = list(itertools.islice(items, batch_size))
                if not chunk:
                    break
                made = _sample(chunk, generate, report, stats)
                while len(waiting) >= MAX_WAITING_BATCHES:
                    _finish(waiting.popleft())
                waiting.append(hand_over(made, pool, encoding))
            while waiting:
                _finish(waiting.popleft())
        finally:
            for futures in waiting:  # after an error: do not start stores nobody will check
                for future in futures:
                    future.cancel()
    stats.seconds = time.perf_counter() - started
    return stats


class _encoder_pool:
    """A started ``ProcessPoolExecutor`` of ``count`` spawned processes, or None for 0."""

    def __init__(self, count: int) -> None:
        self.executor = None
        if count:
            self.executor = ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("spawn"))
            for _ in range(count):  # start them all now, while the first batch samples
                self.executor.submit(int)

    def __enter__(self) -> ProcessPoolExecutor | None:
        return self.executor

    def __exit__(self, *exc) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)


def _encode_or_error(image: Image.Image | np.ndarray) -> Encoded | BaseException:
    try:
        if isinstance(image, np.ndarray):  # a row of a uint8 batch
            if image.dtype != np.uint8:
                raise TypeError(f"the backend returned an array of {image.dtype}, not uint8")
            image = Image.fromarray(image)
        return encode_png(image)
    except Exception as error:  # noqa: BLE001 - this image fails alone
        return error


def _pack(images: list) -> tuple[str | None, np.ndarray | list]:
    """Images of one mode and size as one array (pickled in one piece), else the list."""
    first = images[0]
    alike = isinstance(first, Image.Image) and first.mode in STORED_MODES
    alike = alike and all(
        isinstance(image, Image.Image) and (image.mode, image.size) == (first.mode, first.size) for image in images
    )
    return (first.mode, np.stack([np.asarray(image) for image in images])) if alike else (None, images)


def _encode_chunk(
    packed: tuple[str | None, np.ndarray | Sequence],
) -> list[Encoded | BaseException]:
    """In an encoder process: one result per image, an exception for one that fails.

    ``packed``: (mode, array) from `_pack`, or (None, images or a uint8 batch).
    """
    mode, images = packed
    if mode is not None:
        images = [Image.fromarray(array, mode) for array in images]
    return [_encode_or_error(image) for image in images]


def _finish(futures: list[Future]) -> None:
    for future in futures:
        future.result()  # re-raises only what on_result raised


def _sample(
    chunk: list[Work],
    generate: Callable[[list[str], list[int]], Sequence],
    report: Callable[[Work, BaseException | None], None],
    stats: PipelineStats,
) -> tuple[list[Work], Sequence]:
    """(items made, their images) for ``chunk``; a failing batch is retried item by item."""
    started = time.perf_counter()
    try:
        made = (chunk, _call(chunk, generate))
    except Exception as error:  # noqa: BLE001
        done, images = [], []
        if len(chunk) == 1:
            report(chunk[0], error)
        else:
            for item in chunk:
                try:
                    images += list(_call([item], generate))
                    done.append(item)
                except Exception as item_error:  # noqa: BLE001
                    report(item, item_error)
        made = (done, images)
    stats.sampling_seconds += time.perf_counter() - started
    stats.sampled += len(made[0])
    return made


def _call(chunk: list[Work], generate: Callable[[list[str], list[int]], Sequence]) -> Sequence:
    images = generate([item.prompt for item in chunk], [item.seed for item in chunk])
    if len(images) != len(chunk):
        raise ValueError(f"generate returned {len(images)} images for {len(chunk)} prompts")
    return images
