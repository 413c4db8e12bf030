"""Functions for the `callable` backend in tests: generate(prompts, seeds, **settings) -> images.

`interrupt` is set by a test to make `solid` raise KeyboardInterrupt (as Ctrl-C or a
dying worker would cut a run short) on a given call, once `ready` is set. A generator
names one by its name in `PARITY_CALLABLES`, which `allow` sets for a test.
"""

import threading
import time

from PIL import Image

interrupt = {"on_call": None, "ready": threading.Event(), "calls": 0}
FUNCTIONS = ("solid", "made_meanwhile", "broken_on", "with_device", "not_images", "slow")


def allow(settings) -> None:
    """Let generators run the `callable` backend with this module's functions, each by its own name."""
    settings.PARITY_GENERATION_BACKENDS = {**settings.PARITY_GENERATION_BACKENDS, "callable": "callable"}
    settings.PARITY_CALLABLES = {name: f"{__name__}:{name}" for name in FUNCTIONS}


def colour(prompt: str, seed: int) -> tuple[int, int, int]:
    return (seed % 251, len(prompt) * 7 % 256, (seed // 251) % 256)


def solid(prompts, seeds, *, size=8, **settings):
    """One flat image per (prompt, seed): its colour depends on both, so every sample differs."""
    interrupt["calls"] += 1
    if interrupt["on_call"] is not None and interrupt["calls"] >= interrupt["on_call"]:
        interrupt["ready"].wait(timeout=30)
        raise KeyboardInterrupt
    return [Image.new("RGB", (size, size), colour(p, s)) for p, s in zip(prompts, seeds)]


def made_meanwhile(prompts, seeds, *, rival, **settings):
    """As `solid`, while another run of the job records the sample of the batch's last prompt."""
    from generation.models import Generator, Item, Sample

    generator = Generator.objects.get(name=rival)
    item = Item.objects.get(corpus__workspace=generator.workspace, caption=prompts[-1])
    Sample.objects.create(
        generator=generator, item=item, seed=seeds[-1], image="originals/rival.png", sha256="1" * 64,
        width=8, height=8, format="PNG", mode="RGB", byte_size=100,
    )
    return solid(prompts, seeds)


def broken_on(prompts, seeds, *, word="broken", **settings):
    """Fails on a whole batch that holds a prompt with `word`, so the items are retried one by one."""
    if any(word in prompt for prompt in prompts):
        raise ValueError(f"cannot draw {word!r} prompts")
    return solid(prompts, seeds)


def with_device(prompts, seeds, *, device=None, **settings):
    return [Image.new("RGB", (4, 4), (0, 0, 0 if device is None else 255)) for _ in prompts]


def not_images(prompts, seeds, **settings):
    return ["not an image" for _ in prompts]


def slow(prompts, seeds, *, seconds=0.5, drawn="", **settings):
    """As `solid`, `seconds` a batch; the seeds drawn are appended to the file `drawn`, when given."""
    time.sleep(seconds)
    images = solid(prompts, seeds)
    if drawn:
        with open(drawn, "a") as out:
            out.write("".join(f"{seed}\n" for seed in seeds))
    return images
