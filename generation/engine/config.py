"""The two configurations of the engine: what the network is, and how it is trained.

`ModelConfig` fixes a network's shape; `LADDER` names a series of them whose
widths and depths grow together, so a scaling curve over the ``params`` axis can
be drawn from one corpus. `TrainConfig` fixes the optimisation; it never changes
the network, so two runs of one `ModelConfig` with different budgets give points
on the ``train_images`` / ``train_flops`` / ``train_step`` axes of the same series.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a text-conditional diffusion transformer (DiT, Peebles & Xie 2023).

    The image is cut into ``patch_size`` x ``patch_size`` patches, one token each;
    ``width`` is the token width of both the image blocks and the text encoder.
    """

    image_size: int = 32  # pixels per side; the corpus is resized (centre-cropped) to it
    patch_size: int = 4  # 32 / 4 = 64 image tokens: cheap enough to train on two CPU cores
    width: int = 64
    depth: int = 2  # image blocks
    heads: int = 4  # attention heads; width must divide evenly
    text_depth: int = 1  # transformer layers of the text encoder, trained from scratch
    max_text_len: int = 24  # tokens including the start token; the scene corpus needs 22
    mlp_ratio: int = 4

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError("image_size must be a multiple of patch_size")
        if self.width % self.heads or (self.width // self.heads) % 2:
            raise ValueError("width must split into heads of even width")
        if self.width % 4:
            raise ValueError("width must be a multiple of 4 (2-D sine-cosine positions)")
        if min(self.depth, self.text_depth, self.max_text_len, self.mlp_ratio) < 1:
            raise ValueError("depth, text_depth, max_text_len and mlp_ratio must be >= 1")

    @property
    def tokens(self) -> int:
        """Image tokens per image."""
        return (self.image_size // self.patch_size) ** 2


# A size ladder for the 32x32 scene corpus. Width and depth grow together (as in
# the DiT S/B/L/XL ladder): about 0.07M, 0.34M and 1.0M parameters, so S -> L
# spans 15x (checked by the tests). Sized so that the three train together in
# about three minutes on two CPU cores (bench/train_ladder_cpu.py); on a GPU
# wider members can be added under new names. XS trains in well under a second.
LADDER: dict[str, ModelConfig] = {
    "XS": ModelConfig(width=16, depth=1, heads=2, text_depth=1),  # tests only
    "S": ModelConfig(width=24, depth=2, heads=2, text_depth=1),
    "M": ModelConfig(width=48, depth=3, heads=4, text_depth=1),
    "L": ModelConfig(width=96, depth=3, heads=4, text_depth=1),
}


@dataclass
class TrainConfig:
    """How one network is trained.

    Checkpoints are written after each step in ``checkpoint_steps`` (an empty
    tuple means only after the last step). The learning rate warms up linearly
    over ``warmup_steps`` and then follows a cosine down to ``lr * min_lr_ratio``
    (Loshchilov & Hutter 2017), so that short runs still end on a small step.
    """

    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    checkpoint_steps: tuple[int, ...] = ()
    seed: int = 0
    # Share of captions replaced by the empty caption, so that one network also
    # gives the unconditional prediction classifier-free guidance needs (Ho &
    # Salimans 2022 use 0.1-0.2).
    cfg_dropout: float = 0.1
    warmup_steps: int = 50
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    # Checkpoints hold an exponential moving average of the weights, the usual
    # way diffusion models are sampled (Ho et al. 2020); 0 keeps the raw
    # weights. The effective decay is min(ema_decay, (1 + step) / (10 + step)),
    # so that a short run is not dominated by its random initialisation.
    ema_decay: float = 0.995
    val_levels: int = 10  # noise levels of the validation grid
    bf16: bool | None = None  # None: bf16 autocast on CUDA, fp32 elsewhere

    def __post_init__(self) -> None:
        self.checkpoint_steps = tuple(self.checkpoint_steps)
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("steps and batch_size must be >= 1 and lr > 0")
        if not 0 <= self.cfg_dropout < 1:
            raise ValueError("cfg_dropout must be in [0, 1)")
        if not 0 <= self.ema_decay < 1:
            raise ValueError("ema_decay must be in [0, 1)")
        if any(not 1 <= step <= self.steps for step in self.checkpoint_steps):
            raise ValueError("checkpoint_steps must lie in [1, steps]")
        if self.val_levels < 1:
            raise ValueError("val_levels must be >= 1")

    @property
    def save_steps(self) -> tuple[int, ...]:
        """The steps after which a checkpoint is written, ascending."""
        return tuple(sorted(set(self.checkpoint_steps))) or (self.steps,)
