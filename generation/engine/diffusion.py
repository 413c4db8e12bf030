"""The diffusion process: rectified-flow noising, its training loss, and the sampler.

Objective: flow matching on the straight path between data and noise
(rectified flow: Liu et al. 2023, "Flow Straight and Fast"; Lipman et al. 2023,
"Flow Matching for Generative Modeling")::

    x_t = (1 - t) * x_0 + t * eps,   t in [0, 1],   target v = eps - x_0

The network predicts the clean image x_0 and the loss is the mean squared
error on the velocity it implies, v_hat = (x_t - x_0_hat) / t ("x-prediction,
v-loss", Li & He 2025, "Back to Basics: Let Denoising Generative Models
Denoise"). They argue that clean images lie near a low-dimensional manifold
while noise and velocity do not, so a network narrow next to its patch
dimension (here 32 to 96 wide for 4 x 4 x 3 = 48 values per token) can
predict the former and not the latter; in trials on the scene corpus at the
demo budgets, v-prediction left speckle in every patch and x-prediction did
not. t is clipped at T_MIN in the loss's denominator, bounding the 1 / t^2
weight that the v-loss gives x_0 errors on the nearly clean levels. Training
levels are drawn logit-normal, t = sigmoid(n), n ~ N(0, 1): Esser et al. 2024
(SD3, section 3.1 and table 1) compared loss weightings and level samplers for
this objective and found it the best, because it puts the effort on the middle
levels, where the prediction is hardest; it plays the part that min-SNR
weighting (Hang et al. 2023) plays for eps- and v-prediction, down-weighting
the nearly clean levels whose loss is large but teaches little.

Sampling integrates dx/dt = v from t = 1 (pure noise) to t = 0 with Euler steps
on a uniform grid; with straight paths a few dozen steps suffice. Guidance is
classifier-free (Ho & Salimans 2022): v = v_null + g * (v_cond - v_null). The
sampler is deterministic given its initial noise, so the caller decides
reproducibility by how it draws that noise.
"""

from __future__ import annotations

import contextlib
import itertools

import torch
from torch import nn

T_MIN = 0.05  # smallest t in the loss's denominator: a weight of at most 400 on x_0 errors


def noisy(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t for levels t [B] (images [B, 3, H, W])."""
    t = t.view(-1, 1, 1, 1)
    return (1 - t) * x0 + t * noise


def training_levels(batch: int, *, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Logit-normal(0, 1) levels [batch] (Esser et al. 2024)."""
    return torch.sigmoid(torch.randn(batch, generator=generator, device=device))


def velocity(x_t: torch.Tensor, x0_hat: torch.Tensor, t: torch.Tensor, *, t_min: float = 0.0) -> torch.Tensor:
    """The velocity implied by a clean-image prediction: v = (x_t - x0_hat) / t."""
    return (x_t - x0_hat) / t.clamp(min=t_min).view(-1, 1, 1, 1)


def flow_loss(
    network: nn.Module, x0: torch.Tensor, ids: torch.Tensor, t: torch.Tensor, noise: torch.Tensor
) -> torch.Tensor:
    """Per-image mean squared error on the velocity, [B] float32 (x-prediction, v-loss)."""
    x_t = noisy(x0, noise, t)
    v_hat = velocity(x_t, network(x_t, t, ids).float(), t, t_min=T_MIN)
    return (v_hat - (noise - x0)).pow(2).mean(dim=(1, 2, 3))


def level_grid(levels: int) -> torch.Tensor:
    """Midpoints of ``levels`` equal slices of [0, 1]: the validation grid."""
    return (torch.arange(levels, dtype=torch.float32) + 0.5) / levels


@torch.no_grad()
def grid_loss(
    network: nn.Module,
    x0: torch.Tensor,
    ids: torch.Tensor,
    *,
    levels: int = 10,
    seed: int = 0,
    batch_size: int = 256,
    autocast: contextlib.AbstractContextManager | None = None,
) -> float:
    """The flow loss averaged over items and a uniform grid of levels, deterministic.

    Unlike the training loss, every level counts equally, so the number
    compares across models and runs whatever level sampler trained them. The
    noise of level k is drawn on the CPU from ``seed + k``, so it is the same
    on every device. x0 [N, 3, H, W] and ids [N, L] may live on any device;
    batches are moved to the network's device.
    """
    device = next(network.parameters()).device
    total = 0.0
    for k, level in enumerate(level_grid(levels).tolist()):
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed + k))
        for start in range(0, len(x0), batch_size):
            stop = start + batch_size
            x, n = x0[start:stop].to(device), noise[start:stop].to(device)
            t = torch.full((len(x),), level, device=device)
            with autocast or contextlib.nullcontext():
                total += flow_loss(network, x, ids[start:stop].to(device), t, n).double().sum().item()
    return total / (levels * len(x0))


@torch.inference_mode()
def sample(
    network: nn.Module,
    noise: torch.Tensor,
    ids: torch.Tensor,
    null_ids: torch.Tensor,
    *,
    steps: int,
    guidance: float,
    autocast: contextlib.AbstractContextManager | None = None,
) -> torch.Tensor:
    """Euler integration from noise [B, 3, H, W] at t = 1 to images at t = 0, in [-1, 1].

    ``ids`` [B, L] are the prompts, ``null_ids`` [B, L] the empty caption. A
    guidance of exactly 1 skips the unconditional pass. The state is kept in
    float32 whatever the autocast, so bf16 only affects the network's matmuls.
    """
    if steps < 1:
        raise ValueError("steps must be >= 1")
    x = noise.float()
    b = len(x)
    grid = torch.linspace(1.0, 0.0, steps + 1).tolist()
    both_ids = torch.cat([ids, null_ids])
    for t, t_next in itertools.pairwise(grid):
        with autocast or contextlib.nullcontext():
            if guidance == 1.0:
                x0_hat = network(x, torch.full((b,), t, device=x.device), ids).float()
            else:
                both = network(x.repeat(2, 1, 1, 1), torch.full((2 * b,), t, device=x.device), both_ids).float()
                x0_cond, x0_null = both[:b], both[b:]
                x0_hat = x0_null + guidance * (x0_cond - x0_null)
        # v = (x - x0_hat) / t is linear in x0_hat, so guiding x0_hat guides v
        # identically; t >= 1 / steps > 0 here, and the last step lands on x0_hat.
        x = x + (t_next - t) / t * (x - x0_hat)
    return x.clamp(-1, 1)
