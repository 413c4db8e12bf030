"""The denoising network: a small text-conditional diffusion transformer.

A DiT (Peebles & Xie 2023, "Scalable Diffusion Models with Transformers") on
4x4 patches: each image block is modulated by adaLN-Zero from the noise level
and the pooled caption, and its attention reads the caption's tokens as extra
keys and values (queries come from the image tokens only, so text costs keys,
not a longer sequence through the MLPs; the same idea as the joint attention
of SD3's MMDiT, Esser et al. 2024, without updating the text stream). The
MLPs carry a depthwise 3x3 convolution over the token grid (LocalViT): a plain
DiT this small, trained for a few hundred steps, draws scattered patches of
the right colours; with the locality prior it draws shapes.

The network knows nothing of noise schedules: it maps (noisy image, level t in
[0, 1], caption ids) to a tensor of the image's shape, whose meaning (here the
clean image) is fixed by `diffusion.py`. Shapes: images [B, 3, H, W] in [-1, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .text import TextEncoder


def count_params(model: nn.Module) -> int:
    """Number of parameters (the ``params`` scale axis); all of them are trained."""
    return sum(p.numel() for p in model.parameters())


def sincos_2d(side: int, width: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine positions [side*side, width], rows in raster order (as DiT)."""
    quarter = width // 4
    freqs = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    coords = torch.arange(side, dtype=torch.float64)
    ys, xs = torch.meshgrid(coords, coords, indexing="ij")
    parts = []
    for axis in (xs.reshape(-1), ys.reshape(-1)):
        angles = axis[:, None] * freqs[None]
        parts += [angles.sin(), angles.cos()]
    return torch.cat(parts, dim=1).float()


def timestep_features(t: torch.Tensor, width: int) -> torch.Tensor:
    """Sinusoidal features [B, width] of levels t in [0, 1] (scaled by 1000, as DDPM)."""
    half = width // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = 1000 * t.float()[:, None] * freqs[None]
    return torch.cat([angles.cos(), angles.sin()], dim=1)


class GridConv(nn.Module):
    """Depthwise 3x3 convolution over the token grid, channels last: [B, S*S, C] -> same.

    Each output mixes one channel of a token and its eight neighbours only, so
    no sum ever runs across the images of a batch.
    """

    def __init__(self, channels: int, side: int) -> None:
        super().__init__()
        self.side = side
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        grid = x.view(b, self.side, self.side, c).permute(0, 3, 1, 2)  # a channels-last view
        return self.conv(grid).permute(0, 2, 3, 1).reshape(b, n, c)


class LocalMLP(nn.Module):
    """Token MLP with a depthwise 3x3 convolution between its layers (LocalViT, Li et al. 2021).

    Gives the transformer the locality prior of a convolutional network, so
    neighbouring patches agree early in training (a shape is drawn as one
    shape, not as scattered patches) at a negligible cost in FLOPs.
    """

    def __init__(self, width: int, hidden: int, side: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.conv = GridConv(hidden, side)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # SiLU rather than GELU: as good here, and three times cheaper on a CPU.
        return self.fc2(F.silu(self.conv(F.silu(self.fc1(x)))))


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class ImageBlock(nn.Module):
    """adaLN-Zero transformer block; attention keys/values = caption tokens + image tokens."""

    def __init__(self, width: int, heads: int, mlp_ratio: int, side: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False)
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.text_kv = nn.Linear(width, 2 * width)  # its own projection, as MMDiT
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False)
        self.mlp = LocalMLP(width, mlp_ratio * width, side)
        # Shift, scale and gate for attention and MLP; zero-initialised so that
        # every block starts as the identity (adaLN-Zero, DiT section 3.2).
        self.ada = nn.Linear(width, 6 * width)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, text: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """x [B, N, W], cond [B, W], text [B, L, W], keep [B, 1, 1, L + N] -> [B, N, W]."""
        b, n, w = x.shape
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(F.silu(cond)).chunk(6, dim=1)
        h = _modulate(self.norm1(x), shift1, scale1)
        kv = torch.cat([self.text_kv(text), self.kv(h)], dim=1)
        k, v = kv.view(b, -1, 2, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        q = self.q(h).view(b, n, self.heads, w // self.heads).transpose(1, 2)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
        x = x + gate1[:, None] * self.proj(attended.transpose(1, 2).reshape(b, n, w))
        return x + gate2[:, None] * self.mlp(_modulate(self.norm2(x), shift2, scale2))


class DiT(nn.Module):
    """(x_t [B, 3, H, W], t [B], ids [B, L]) -> prediction [B, 3, H, W]."""

    def __init__(self, config: ModelConfig, vocab_size: int) -> None:
        super().__init__()
        self.config = config
        w, p = config.width, config.patch_size
        self.text = TextEncoder(vocab_size, w, config.text_depth, config.heads, config.max_text_len, config.mlp_ratio)
        self.patch = nn.Linear(3 * p * p, w)
        self.register_buffer("position", sincos_2d(config.image_size // p, w), persistent=False)
        self.time = nn.Sequential(nn.Linear(w, w), nn.SiLU(), nn.Linear(w, w))
        self.pooled = nn.Linear(w, w)
        side = config.image_size // p
        self.blocks = nn.ModuleList(ImageBlock(w, config.heads, config.mlp_ratio, side) for _ in range(config.depth))
        self.final_norm = nn.LayerNorm(w, elementwise_affine=False)
        self.final_ada = nn.Linear(w, 2 * w)
        self.out = nn.Linear(w, 3 * p * p)
        self._init()

    def _init(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        for block in self.blocks:
            nn.init.zeros_(block.ada.weight)
        for layer in (self.final_ada, self.out):  # the untrained network predicts zero
            nn.init.zeros_(layer.weight)

    def forward(self, x: torch.Tensor, t: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        p = self.config.patch_size
        patches = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(b, -1, c * p * p)
        tokens = self.patch(patches) + self.position

        text, text_keep, pooled = self.text(ids)
        width = self.config.width
        cond = self.time(timestep_features(t, width).to(tokens.dtype)) + self.pooled(pooled)
        image_keep = torch.ones(b, tokens.shape[1], dtype=torch.bool, device=x.device)
        keep = torch.cat([text_keep, image_keep], dim=1)[:, None, None, :]

        for block in self.blocks:
            tokens = block(tokens, cond, text, keep)
        shift, scale = self.final_ada(F.silu(cond)).chunk(2, dim=1)
        out = self.out(_modulate(self.final_norm(tokens), shift, scale))
        out = out.reshape(b, h // p, w // p, c, p, p).permute(0, 3, 1, 4, 2, 5)
        return out.reshape(b, c, h, w)
