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

import importlib

# Names are imported on first use (PEP 562), so that `generation.engine.pipeline`
# loads without torch: its PNG encoder processes start in a fraction of a second.
_HOMES = {
    "CheckpointInfo": "checkpoint",
    "LoadedModel": "checkpoint",
    "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "validation_loss": "checkpoint",
    "LADDER": "config",
    "ModelConfig": "config",
    "TrainConfig": "config",
    "pick_device": "imaging",
    "DiT": "network",
    "count_params": "network",
    "Encoded": "pipeline",
    "PipelineStats": "pipeline",
    "Work": "pipeline",
    "encode_png": "pipeline",
    "generate_pipelined": "pipeline",
    "Tokenizer": "text",
    "forward_flops": "training",
    "train": "training",
}


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])


__all__ = sorted(_HOMES)  # noqa: PLE0605 - a list of the names above
