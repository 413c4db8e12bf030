"""On CUDA the sampling loop runs as a captured graph: it must give the eager loop's images.

Skipped without a GPU (CI has none). Needs no Django and no fixtures, so it also runs
on a lent GPU machine: `python3 -m pytest -c /dev/null --noconftest THIS_FILE`.
"""

import numpy as np
import pytest
import torch

from generation.engine import LADDER, DiT, LoadedModel, Tokenizer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

CAPTIONS = [
    "a small red circle left of a large blue square",
    "a large green triangle above a small yellow circle",
    "a blue square",
    "a small purple triangle right of a red square",
    "",
]


def noisy_model() -> LoadedModel:
    """A randomly initialised ladder member whose zero-initialised layers are given weights too."""
    config = LADDER["S"]
    tokenizer = Tokenizer.build(CAPTIONS, config.max_text_len)
    torch.manual_seed(0)
    network = DiT(config, len(tokenizer))
    with torch.no_grad():
        for param in network.parameters():
            if param.dim() > 1 and not param.any():
                param.normal_(std=0.02)
    return LoadedModel(network, tokenizer, device="cuda")


def pixels(images) -> np.ndarray:
    return np.stack([np.asarray(image, dtype=np.int16) for image in images])


def test_the_graph_gives_the_eager_images():
    model = noisy_model()
    prompts, seeds = CAPTIONS * 3, list(range(15))
    for bf16, worst in ((False, 1), (True, 8)):
        eager = pixels(model.generate(prompts, seeds, steps=8, bf16=bf16, batch_size=16, cuda_graph=False))
        graphed = pixels(model.generate(prompts, seeds, steps=8, bf16=bf16, batch_size=16))
        difference = np.abs(eager - graphed)
        assert difference.max() <= worst and difference.mean() < 0.05, (bf16, difference.max(), difference.mean())


def test_a_short_batch_gives_the_images_of_a_full_one_and_graphs_are_reused():
    model = noisy_model()
    prompts, seeds = CAPTIONS * 3, list(range(100, 115))
    full = pixels(model.generate(prompts, seeds, steps=8, bf16=False, batch_size=16))
    model.generate(prompts[:3], seeds[:3], steps=8, bf16=False, batch_size=16)  # leaves rows 3.. of a 4-graph stale
    short = pixels(model.generate(prompts[5:8], seeds[5:8], steps=8, bf16=False, batch_size=16))
    difference = np.abs(full[5:8] - short)
    assert difference.max() <= 1, difference.max()
    assert sorted(size for size, *_ in model._graphs) == [4, 16]  # one graph per size, reused
