"""Checkpoint files, and the loaded model that generates images from them.

A checkpoint is one self-contained file: model config, vocabulary, weights, and
where it stands on the scale axes (step, training images seen, training FLOPs)
with its validation loss. It is read with ``torch.load(weights_only=True)``,
so loading a file never runs code from it.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .config import ModelConfig
from .diffusion import grid_loss, sample
from .imaging import to_array, to_tensor
from .network import DiT, count_params
from .text import Tokenizer

FORMAT = "parity-engine/1"


@dataclass
class CheckpointInfo:
    """One written checkpoint and its place on the scale axes."""

    path: Path
    size: str  # the ladder name, e.g. "M"
    step: int  # optimiser steps taken (the ``train_step`` axis)
    params: int  # trainable parameters (``params``)
    train_images: int  # training images seen, repeats counted (``train_images``)
    train_flops: float  # estimated training FLOPs (``train_flops``), see train.py
    val_loss: float  # held-out flow loss on the level grid; NaN without a validation set


def autocast_for(device: torch.device, bf16: bool | None, *, cache: bool = True) -> contextlib.AbstractContextManager:
    """bf16 autocast when asked, or by default on CUDA; otherwise plain float32.

    ``cache=False`` for CUDA graph capture: autocast's cache of cast weights
    would outlive the capture it was made in (the PyTorch CUDA graphs notes).
    """
    if bf16 is None:
        bf16 = device.type == "cuda"
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=cache)


class LoadedModel:
    """A network with its vocabulary on a device, ready to generate.

    Attributes ``size``, ``params``, ``train_images``, ``train_flops`` and
    ``val_loss`` repeat what the checkpoint recorded.
    """

    def __init__(
        self,
        network: DiT,
        tokenizer: Tokenizer,
        *,
        device: torch.device | str = "cpu",
        size: str = "",
        step: int = 0,
        train_images: int = 0,
        train_flops: float = 0.0,
        val_loss: float = math.nan,
    ) -> None:
        self.device = torch.device(device)
        self.network = network.to(self.device).eval()
        self.tokenizer = tokenizer
        self.config: ModelConfig = network.config
        self.image_size = self.config.image_size
        self.size = size
        self.step = step
        self.params = count_params(network)
        self.train_images = train_images
        self.train_flops = train_flops
        self.val_loss = val_loss
        self._graphs: dict[tuple, GraphedSampler] = {}

    def generate(self, prompts: list[str], seeds: list[int], **options) -> list[Image.Image]:
        """One ``image_size`` RGB image per (prompt, seed), in order: `generate_array`'s
        images, with its options, as PIL images."""
        return [Image.fromarray(image, "RGB") for image in self.generate_array(prompts, seeds, **options)]

    def generate_array(
        self,
        prompts: list[str],
        seeds: list[int],
        *,
        steps: int = 30,
        guidance: float = 3.0,
        bf16: bool | None = None,
        batch_size: int = 256,
        cuda_graph: bool = True,
    ) -> np.ndarray:
        """One ``image_size`` RGB image per (prompt, seed), in order, as uint8 [N, H, W, 3].

        One array rather than a PIL image each: a generation job hands it to its PNG
        encoders as it is, with no work per image on the sampling thread.

        Image i depends only on the weights, ``prompts[i]``, ``seeds[i]``,
        ``steps`` and ``guidance``: its initial noise comes from its own CPU
        ``torch.Generator`` seeded with ``seeds[i]`` (the same noise on every
        device), prompts are padded to a fixed length, and every operation of
        the network acts on each image alone. On the CPU in float32 this makes
        an image bit-for-bit the same in any batch (the tests check it; it
        rests on the CPU kernels not changing algorithm with the batch size);
        on CUDA, kernels chosen per batch shape may differ in the last bits. ``bf16`` None means bf16
        autocast on CUDA, float32 on the CPU. Prompts are sampled
        ``batch_size`` at a time. On CUDA the whole sampling loop of a batch
        runs as one CUDA graph (`GraphedSampler`) unless ``cuda_graph`` is False.
        """
        if len(prompts) != len(seeds):
            raise ValueError("one seed per prompt")
        if bf16 is None:
            bf16 = self.device.type == "cuda"
        graphed = cuda_graph and self.device.type == "cuda"
        side = self.image_size
        images = np.empty((len(prompts), side, side, 3), dtype=np.uint8)
        with torch.inference_mode():
            for start in range(0, len(prompts), batch_size):
                chunk_prompts = prompts[start : start + batch_size]
                chunk_seeds = seeds[start : start + batch_size]
                noise = seeded_noise(chunk_seeds, (3, side, side))
                ids = self.tokenizer.encode(chunk_prompts)
                if graphed:
                    # Graphs come in powers of two up to the batch size, so a short last batch is cheap.
                    size = min(batch_size, 1 << (len(chunk_prompts) - 1).bit_length())
                    key = (size, steps, guidance, bf16)
                    if key not in self._graphs:
                        self._graphs[key] = GraphedSampler(self, size, steps=steps, guidance=guidance, bf16=bf16)
                    x = self._graphs[key](noise, ids)
                else:
                    x = sample(
                        self.network,
                        noise.to(self.device),
                        ids.to(self.device),
                        self.tokenizer.encode([""] * len(chunk_prompts)).to(self.device),
                        steps=steps,
                        guidance=guidance,
                        autocast=autocast_for(self.device, bf16),
                    )
                images[start : start + len(chunk_prompts)] = to_array(x)
        return images


def seeded_noise(seeds: Sequence[int], shape: tuple[int, ...]) -> torch.Tensor:
    """Standard normal noise [len(seeds), *shape] on the CPU; row i is what a CPU
    ``torch.Generator`` seeded with ``seeds[i]`` draws, whatever the other rows.

    One generator reseeded per row, drawing into its row of one tensor: the same
    numbers as a fresh generator and a tensor per row, in about 60 % of the time
    (this runs on the sampling thread, for every image).
    """
    noise = torch.empty(len(seeds), *shape)
    generator = torch.Generator()
    for row, seed in zip(noise, seeds):
        generator.manual_seed(int(seed))
        row.normal_(generator=generator)
    return noise


class GraphedSampler:
    """The whole sampling loop for one batch size, captured once as a CUDA graph.

    A network this small is bound by kernel launches, not arithmetic: a batch
    of 30 guided steps is thousands of small kernels, each launched from
    Python under the GIL. Replaying a captured graph launches them all at once
    (the pattern of the PyTorch CUDA graphs notes: static inputs, warm-up on a
    side stream, capture, copy in, replay). Every operation acts on each image
    alone, so the rows of a short batch are computed exactly as in a full one
    and the rows past it, left over from an earlier batch, cannot touch them.
    """

    def __init__(self, model: LoadedModel, size: int, *, steps: int, guidance: float, bf16: bool) -> None:
        device = model.device
        side = model.image_size
        self.noise = torch.zeros(size, 3, side, side, device=device)
        self.null_ids = model.tokenizer.encode([""] * size).to(device)
        self.ids = self.null_ids.clone()  # captions of BOS alone until the first batch

        def run() -> torch.Tensor:
            autocast = autocast_for(device, bf16, cache=False)
            return sample(model.network, self.noise, self.ids, self.null_ids, steps=steps, guidance=guidance, autocast=autocast)

        stream = torch.cuda.Stream(device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream):  # library handles and autotuning happen here, not in the capture
            for _ in range(2):
                run()
        torch.cuda.current_stream(device).wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out = run()

    def __call__(self, noise: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Images [n, 3, H, W] for noise [n, 3, H, W] and ids [n, L], n up to the graph's size.

        The result is a view of the graph's output: read it before the next call.
        """
        n = len(noise)
        self.noise[:n].copy_(noise)
        self.ids[:n].copy_(ids)
        self.graph.replay()
        return self.out[:n]


def validation_loss(
    model: LoadedModel,
    captions: Sequence[str],
    images: Sequence[Image.Image],
    *,
    levels: int = 10,
    seed: int = 0,
    batch_size: int = 256,
    bf16: bool = False,
) -> float:
    """Held-out flow loss of ``model``, averaged over items and ``levels`` noise levels.

    Deterministic for the same arguments (fixed level grid, fixed noise per
    level drawn on the CPU); float32 unless ``bf16``. This is the automatic
    metric the analysis compares with the human preference rate.
    """
    if len(captions) != len(images) or not captions:
        raise ValueError("need as many captions as images, and at least one")
    x0 = to_tensor(images, model.image_size)
    ids = model.tokenizer.encode(list(captions))
    return grid_loss(
        model.network,
        x0,
        ids,
        levels=levels,
        seed=seed,
        batch_size=batch_size,
        autocast=autocast_for(model.device, bf16),
    )


def save_checkpoint(path: Path, model: LoadedModel, *, train: dict | None = None) -> None:
    """Write ``model`` (weights moved to the CPU) atomically: a reader never sees half a file."""
    payload = {
        "format": FORMAT,
        "size": model.size,
        "config": asdict(model.config),
        "vocabulary": list(model.tokenizer.words),
        "weights": {k: v.detach().cpu() for k, v in model.network.state_dict().items()},
        "step": model.step,
        "params": model.params,
        "train_images": model.train_images,
        "train_flops": float(model.train_flops),
        "val_loss": float(model.val_loss),
        "train": train or {},
    }
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    torch.save(payload, partial)
    os.replace(partial, path)


def load_checkpoint(path: str | Path, *, device: torch.device | str = "cpu") -> LoadedModel:
    """Read a checkpoint written by `train` onto ``device``."""
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} checkpoint")
    config = ModelConfig(**payload["config"])
    tokenizer = Tokenizer(payload["vocabulary"], config.max_text_len)
    network = DiT(config, len(tokenizer))
    network.load_state_dict(payload["weights"])
    return LoadedModel(
        network,
        tokenizer,
        device=device,
        size=payload["size"],
        step=payload["step"],
        train_images=payload["train_images"],
        train_flops=payload["train_flops"],
        val_loss=payload["val_loss"],
    )
