"""PIL images <-> tensors in [-1, 1], and the choice of device.

Training images of any size are centre-cropped to a square and resized with a
Lanczos filter, so a corpus stored at 512 px trains a 32 px model directly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image


def pick_device(prefer: str | None = None) -> torch.device:
    """CUDA when present, else the CPU; ``prefer`` ("cpu", "cuda", "cuda:1", ...) overrides.

    A preferred CUDA device that is not there raises rather than silently
    falling back, so a benchmark never reports CPU figures as GPU figures.
    """
    if prefer is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(prefer)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("CUDA was asked for but is not available")
    return device


def square(image: Image.Image, size: int) -> Image.Image:
    """RGB, centre-cropped to a square, resized to ``size`` x ``size``."""
    image = image.convert("RGB")
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    image = image.crop((left, top, left + side, top + side))
    if side != size:
        image = image.resize((size, size), Image.Resampling.LANCZOS)
    return image


def to_tensor(images: Sequence[Image.Image], size: int) -> torch.Tensor:
    """Float32 [N, 3, size, size] in [-1, 1]."""
    if not images:
        return torch.zeros(0, 3, size, size)
    array = np.stack([np.asarray(square(image, size), dtype=np.uint8) for image in images])
    return torch.from_numpy(array).permute(0, 3, 1, 2).float().div(127.5).sub(1)


def to_array(x: torch.Tensor) -> np.ndarray:
    """[N, 3, H, W] in [-1, 1] (any device and float dtype) -> uint8 [N, H, W, 3] on the host.

    The conversion runs where ``x`` lies, so from a GPU one small uint8 batch crosses.
    """
    array = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return array.permute(0, 2, 3, 1).contiguous().cpu().numpy()
