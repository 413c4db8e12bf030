"""A tiny trained model shared by the engine tests: XS, a few dozen steps, on CPU."""

import pytest
import torch

from demo.scenes import iter_scenes
from generation.engine import LADDER, TrainConfig, train

STEPS = 40


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One torch thread: these networks are far too small for two to pay, and on a
    shared machine OpenMP threads that wait on each other run several times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def corpus():
    train_scenes = list(iter_scenes(96, size=32, seed=11))
    val_scenes = list(iter_scenes(16, size=32, seed=12))
    return train_scenes, val_scenes


@pytest.fixture(scope="session")
def trained(corpus, tmp_path_factory):
    """(checkpoint infos at steps 1, 20 and 40, validation captions, validation images)."""
    train_scenes, val_scenes = corpus
    settings = TrainConfig(steps=STEPS, batch_size=16, lr=3e-3, warmup_steps=5, checkpoint_steps=(1, 20, STEPS), seed=3)
    infos = train(
        LADDER["XS"],
        [s.caption for s in train_scenes],
        [s.image for s in train_scenes],
        settings=settings,
        out_dir=tmp_path_factory.mktemp("xs"),
        size="XS",
        val_captions=[s.caption for s in val_scenes],
        val_images=[s.image for s in val_scenes],
    )
    return infos, [s.caption for s in val_scenes], [s.image for s in val_scenes]
