"""generate_pipelined: every item stored once, failures stay local, cancel, bounded backlog,
encoding on threads or in processes."""

import hashlib
import io
import multiprocessing
import threading
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from generation.engine import Encoded, Work, encode_png, generate_pipelined


def fake_generate(prompts, seeds):
    if any("poison" in prompt for prompt in prompts):
        raise RuntimeError("poisoned prompt")
    return [Image.new("RGB", (8, 8), (seed % 256, 0, 0)) for seed in seeds]


def work(count, poison=()):
    return [Work(key=i, prompt="poison" if i in poison else f"prompt {i}", seed=i) for i in range(count)]


class Recorder:
    def __init__(self, fail_keys=()):
        self.lock = threading.Lock()
        self.stored = Counter()
        self.results = {}
        self.fail_keys = set(fail_keys)

    def store(self, item, encoded):
        if item.key in self.fail_keys:
            raise OSError("disk full")
        assert hashlib.sha256(encoded.data).hexdigest() == encoded.sha256
        image = Image.open(io.BytesIO(encoded.data))
        assert image.format == "PNG" and (encoded.width, encoded.height, encoded.mode) == (8, 8, "RGB")
        assert image.getpixel((0, 0))[0] == item.seed % 256  # the image of this item
        with self.lock:
            self.stored[item.key] += 1

    def on_result(self, item, error):
        with self.lock:
            assert item.key not in self.results  # reported once
            self.results[item.key] = error


@pytest.mark.parametrize("encoders", [0, 2])
def test_every_item_is_stored_exactly_once(encoders):
    recorder = Recorder()
    stats = generate_pipelined(
        work(10), fake_generate, recorder.store, batch_size=3, workers=2, encoders=encoders,
        on_result=recorder.on_result,
    )
    assert recorder.stored == Counter(range(10))
    assert recorder.results == {i: None for i in range(10)}
    assert (stats.images, stats.failed, stats.sampled, stats.encoders) == (10, 0, 10, encoders)
    assert stats.seconds >= stats.sampling_seconds > 0
    assert stats.images_per_second > 0 and stats.sampling_images_per_second > 0


def array_generate(prompts, seeds):
    """One uint8 batch, as the built-in backend returns: red channel = seed."""
    if any("poison" in prompt for prompt in prompts):
        raise RuntimeError("poisoned prompt")
    batch = np.zeros((len(seeds), 8, 8, 3), dtype=np.uint8)
    batch[..., 0] = np.array(seeds, dtype=np.uint8)[:, None, None]
    return batch


@pytest.mark.parametrize("encoders", [0, 2])
def test_a_uint8_batch_is_stored_as_its_images(encoders):
    recorder = Recorder()
    stats = generate_pipelined(
        work(10, poison={4}), array_generate, recorder.store, batch_size=3, workers=2, encoders=encoders,
        on_result=recorder.on_result,
    )
    # Recorder checks each PNG against its item's seed; the poisoned batch is retried per item.
    assert recorder.stored == Counter(i for i in range(10) if i != 4)
    assert isinstance(recorder.results[4], RuntimeError)
    assert (stats.images, stats.failed) == (9, 1)


@pytest.mark.parametrize("encoders", [0, 2])
def test_a_batch_of_another_dtype_fails_image_by_image(encoders):
    recorder = Recorder()
    stats = generate_pipelined(
        work(4), lambda prompts, seeds: np.zeros((len(seeds), 8, 8, 3), dtype=np.float32), recorder.store,
        batch_size=2, workers=2, encoders=encoders, on_result=recorder.on_result,
    )
    assert (stats.images, stats.failed) == (0, 4)
    assert all(isinstance(error, TypeError) and "float32" in str(error) for error in recorder.results.values())


def test_a_poisoned_prompt_fails_alone():
    recorder = Recorder()
    stats = generate_pipelined(
        work(7, poison={4}), fake_generate, recorder.store, batch_size=3, on_result=recorder.on_result
    )
    assert set(recorder.stored) == {0, 1, 2, 3, 5, 6}
    assert isinstance(recorder.results[4], RuntimeError)
    assert (stats.images, stats.failed) == (6, 1)


def test_store_failures_are_reported_and_the_job_goes_on():
    recorder = Recorder(fail_keys={2, 5})
    stats = generate_pipelined(work(6), fake_generate, recorder.store, batch_size=4, on_result=recorder.on_result)
    assert set(recorder.stored) == {0, 1, 3, 4}
    assert isinstance(recorder.results[2], OSError) and isinstance(recorder.results[5], OSError)
    assert (stats.images, stats.failed) == (4, 2)


def test_should_stop_ends_the_job_between_batches():
    recorder = Recorder()
    calls = []

    def generate(prompts, seeds):
        calls.append(len(prompts))
        return fake_generate(prompts, seeds)

    stats = generate_pipelined(work(20), generate, recorder.store, batch_size=4, should_stop=lambda: len(calls) >= 2)
    assert calls == [4, 4]
    assert set(recorder.stored) == set(range(8))  # what was sampled is still stored
    assert stats.images == 8


def test_an_error_in_on_result_propagates():
    def on_result(item, error):
        raise KeyError("bug")

    with pytest.raises(KeyError):
        generate_pipelined(work(3), fake_generate, lambda item, encoded: None, batch_size=2, on_result=on_result)


def test_generate_returning_too_few_images_counts_as_failures():
    stats = generate_pipelined(work(3), lambda prompts, seeds: [], lambda item, encoded: None, batch_size=3)
    assert (stats.images, stats.failed) == (0, 3)


def test_at_most_two_batches_wait_for_storage():
    """Stores are held until sampling has run two batches ahead; the pipeline must then
    wait for the oldest batch rather than sample a third."""
    batch = 3
    lock = threading.Lock()
    released = {}  # batch index -> Event
    state = {"generated": 0, "stored": 0, "worst": 0}

    def generate(prompts, seeds):
        with lock:
            waiting = state["generated"] - state["stored"]
            state["worst"] = max(state["worst"], waiting)
            if waiting >= 2 * batch:  # full backlog: let the oldest held batch through
                oldest = min(index for index, event in released.items() if not event.is_set())
                released[oldest].set()
            state["generated"] += len(prompts)
            for seed in seeds:
                released.setdefault(seed // batch, threading.Event())
        return fake_generate(prompts, seeds)

    def store(item, encoded):
        assert released[item.seed // batch].wait(timeout=30)  # a deadlock guard, not a timing check
        with lock:
            state["stored"] += 1

    def release_the_rest():
        for event in released.values():
            event.set()

    items = work(8 * batch)
    stats = generate_pipelined(
        items,
        generate,
        store,
        batch_size=batch,
        workers=4,
        should_stop=lambda: state["generated"] == len(items) and release_the_rest(),
    )
    assert stats.images == len(items)
    assert state["worst"] == 2 * batch


def mixed_generate(prompts, seeds):
    """A backend whose batches mix modes, sizes and a thing that is not an image."""
    made = []
    for prompt, seed in zip(prompts, seeds):
        if prompt.endswith("3"):
            made.append("not an image")
        elif seed % 2:
            made.append(Image.new("P", (5, 7), seed % 256))
        else:
            made.append(Image.new("RGB", (8, 8), (seed % 256, 0, 0)))
    return made


@pytest.mark.parametrize("encoders", [0, 2])
def test_an_image_that_cannot_be_encoded_fails_alone_and_others_are_stored_as_png(encoders):
    stored = {}
    results = {}

    def store(item, encoded):
        stored[item.key] = encoded

    stats = generate_pipelined(
        work(8), mixed_generate, store, batch_size=8, encoders=encoders,
        on_result=lambda item, error: results.setdefault(item.key, error),
    )
    assert set(stored) == {0, 1, 2, 4, 5, 6, 7}
    assert isinstance(results[3], TypeError) and "returned a str, not a PIL image" in str(results[3])
    assert (stats.images, stats.failed) == (7, 1)
    assert (stored[1].mode, stored[1].width, stored[1].height) == ("RGB", 5, 7)  # palette images become RGB
    assert stored[2] == encode_png(Image.new("RGB", (8, 8), (2, 0, 0)))  # the same bytes either way


def run_in_a_daemon(queue):
    stats = generate_pipelined(work(4), fake_generate, lambda item, encoded: None, batch_size=2, encoders=2)
    queue.put((stats.images, stats.encoders))


def test_a_daemonic_process_encodes_on_threads_instead_of_failing():
    """A Celery prefork child is daemonic and may not start processes."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=run_in_a_daemon, args=(queue,), daemon=True)
    process.start()
    try:
        assert queue.get(timeout=60) == (4, 0)
    finally:
        process.join(timeout=10)


def test_encoded_records_what_a_store_needs():
    encoded = encode_png(Image.new("L", (3, 2), 9))
    assert isinstance(encoded, Encoded)
    assert (encoded.mode, encoded.width, encoded.height) == ("L", 3, 2)
    assert encoded.sha256 == hashlib.sha256(encoded.data).hexdigest()
    assert Image.open(io.BytesIO(encoded.data)).getpixel((0, 0)) == 9
