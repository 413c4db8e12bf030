"""The trainer: fits one ladder member on captioned images and writes its checkpoints.

Each checkpoint records its place on the scale axes: optimiser steps, training
images seen (steps x batch size, repeats counted) and training FLOPs. FLOPs are
estimated as 3 x the *measured* forward FLOPs of one image times the images
seen: the forward pass is counted once (`forward_flops`: every matmul,
attention included, at the real sequence length), and a backward pass
costs about twice a forward pass, the same argument as the 6·N·D rule of
Kaplan et al. 2020 (2·N per token forward, 4·N backward) but without its
neglect of attention and of the text tokens. Validation and sampling are not
counted.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from .checkpoint import (
    CheckpointInfo,
    LoadedModel,
    autocast_for,
    save_checkpoint,
    validation_loss,
)
from .config import ModelConfig, TrainConfig
from .diffusion import flow_loss, training_levels
from .imaging import to_tensor
from .network import DiT
from .text import Tokenizer


def forward_flops(network: DiT) -> float:
    """FLOPs of one forward pass on one image with a full-length caption.

    Measured, not modelled: forward hooks count 2 FLOPs per multiply-add of
    every linear and convolution layer as it runs, and the attention products
    (Q K^T and the weighted sum of V, 2 x 2 x queries x keys x width per layer)
    are added from the sequence lengths. Norms and activations are left out,
    as in the 6·N·D rule.
    """
    config = network.config
    device = next(network.parameters()).device
    total = 0

    def count(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Linear):
            total += 2 * module.in_features * output.numel()
        else:  # nn.Conv2d: every output value is one dot product over its window
            kh, kw = module.kernel_size
            total += 2 * (module.in_channels // module.groups) * kh * kw * output.numel()

    hooks = [m.register_forward_hook(count) for m in network.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    try:
        x = torch.zeros(1, 3, config.image_size, config.image_size, device=device)
        ids = torch.ones(1, config.max_text_len, dtype=torch.long, device=device)
        with torch.no_grad():
            network(x, torch.full((1,), 0.5, device=device), ids)
    finally:
        for hook in hooks:
            hook.remove()
    text, image = config.max_text_len, config.tokens
    total += 4 * config.width * (config.text_depth * text * text + config.depth * image * (text + image))
    return float(total)


def _lr_factor(settings: TrainConfig) -> Callable[[int], float]:
    """Linear warm-up, then a cosine from 1 down to ``min_lr_ratio`` at the last step."""

    def factor(step: int) -> float:
        if step < settings.warmup_steps:
            return (step + 1) / settings.warmup_steps
        span = max(1, settings.steps - settings.warmup_steps)
        progress = min(1.0, (step - settings.warmup_steps) / span)
        return settings.min_lr_ratio + (1 - settings.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def train(
    config: ModelConfig,
    captions: Sequence[str],
    images: Sequence[Image.Image],
    *,
    settings: TrainConfig,
    out_dir: Path,
    size: str,
    val_captions: Sequence[str] = (),
    val_images: Sequence[Image.Image] = (),
    device: torch.device | str = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> list[CheckpointInfo]:
    """Train a fresh network of ``config`` and write one checkpoint per save step.

    Parameters
    ----------
    captions, images
        The training pairs; images of any size are centre-cropped and resized
        to ``config.image_size``. The vocabulary is built from ``captions``.
    settings
        Steps, batch, learning rate, checkpoint steps, seed (which fixes the
        initial weights and every random draw of the run).
    out_dir
        Receives ``{size}-step{step:07d}.pt`` files (created if missing).
    val_captions, val_images
        Held-out pairs; each checkpoint's ``val_loss`` is `validation_loss` on
        them (NaN when empty).
    progress
        Called as ``progress(step, settings.steps)`` after every step.

    Returns
    -------
    One `CheckpointInfo` per checkpoint, in step order.
    """
    if len(captions) != len(images) or not captions:
        raise ValueError("need as many captions as images, and at least one")
    if len(val_captions) != len(val_images):
        raise ValueError("need as many validation captions as validation images")
    device = torch.device(device)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    tokenizer = Tokenizer.build(captions, config.max_text_len)
    with torch.random.fork_rng(devices=[]):  # seeded initial weights, global state untouched
        torch.manual_seed(settings.seed)
        network = DiT(config, len(tokenizer))
    network.to(device).train()
    ema = copy.deepcopy(network).requires_grad_(False) if settings.ema_decay else None
    flops_per_image = 3 * forward_flops(network)

    data = to_tensor(images, config.image_size).to(device)
    ids = tokenizer.encode(list(captions)).to(device)
    null_ids = tokenizer.encode([""]).to(device)
    optimizer = torch.optim.AdamW(network.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(settings))
    generator = torch.Generator(device=device).manual_seed(settings.seed)
    autocast = autocast_for(device, settings.bf16)
    batch = settings.batch_size
    save_steps = set(settings.save_steps)
    recent: list[torch.Tensor] = []
    infos: list[CheckpointInfo] = []

    for step in range(1, settings.steps + 1):
        index = torch.randint(len(data), (batch,), generator=generator, device=device)
        drop = torch.rand(batch, generator=generator, device=device) < settings.cfg_dropout
        batch_ids = torch.where(drop[:, None], null_ids, ids[index])
        x0 = data[index]
        t = training_levels(batch, generator=generator, device=device)
        noise = torch.randn(x0.shape, generator=generator, device=device)
        with autocast:
            loss = flow_loss(network, x0, batch_ids, t, noise).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if settings.grad_clip:
            torch.nn.utils.clip_grad_norm_(network.parameters(), settings.grad_clip)
        optimizer.step()
        scheduler.step()
        recent.append(loss.detach())
        if ema is not None:
            decay = min(settings.ema_decay, (1 + step) / (10 + step))
            with torch.no_grad():
                for average, param in zip(ema.parameters(), network.parameters()):
                    average.lerp_(param, 1 - decay)

        if step in save_steps:
            model = LoadedModel(
                copy.deepcopy(ema if ema is not None else network),
                tokenizer,
                device=device,
                size=size,
                step=step,
                train_images=step * batch,
                train_flops=step * batch * flops_per_image,
            )
            if val_captions:
                model.val_loss = validation_loss(model, val_captions, val_images, levels=settings.val_levels)
            path = out_dir / f"{size}-step{step:07d}.pt"
            train_loss = torch.stack(recent).mean().item()
            save_checkpoint(path, model, train={**asdict(settings), "train_loss": train_loss})
            recent = []
            infos.append(
                CheckpointInfo(
                    path=path,
                    size=size,
                    step=step,
                    params=model.params,
                    train_images=model.train_images,
                    train_flops=model.train_flops,
                    val_loss=model.val_loss,
                )
            )
        if progress is not None:
            progress(step, settings.steps)
    return infos
