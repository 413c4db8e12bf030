"""Pure PyTorch text-to-image engine: networks, schedules, samplers, training. No Django.

A small text-conditional diffusion transformer trained from scratch on a
corpus' captions, in a ladder of sizes (`LADDER`), so that generated images can
be judged against real ones along the scale axes ``params``, ``train_images``,
``train_flops`` and ``train_step``. Everything here imports torch, Pillow and
numpy only; the caller chooses the device.

    infos = train(LADDER["S"], captions, images, settings=TrainConfig(steps=500),
                  out_dir=path, size="S", val_captions=vc, val_images=vi)
    model = load_checkpoint(infos[-1].path, device=pick_device())
    images = model.generate(["a small red circle"], [7], steps=30, guidance=3.0)
"""

from .checkpoint import (
    CheckpointInfo,
    LoadedModel,
    load_checkpoint,
    save_checkpoint,
    validation_loss,
)
from .config import LADDER, ModelConfig, TrainConfig
from .imaging import pick_device
from .network import DiT, count_params
from .pipeline import PipelineStats, Work, generate_pipelined
from .text import Tokenizer
from .train import forward_flops, train

__all__ = [
    "LADDER",
    "CheckpointInfo",
    "DiT",
    "LoadedModel",
    "ModelConfig",
    "PipelineStats",
    "Tokenizer",
    "TrainConfig",
    "Work",
    "count_params",
    "forward_flops",
    "generate_pipelined",
    "load_checkpoint",
    "pick_device",
    "save_checkpoint",
    "train",
    "validation_loss",
]
