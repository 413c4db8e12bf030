"""Words to vectors: a vocabulary built from the training captions and a small encoder.

The corpus' captions use a few dozen words, so a word-level vocabulary learnt
from them is exact and tiny, and an encoder trained from scratch with the
diffusion loss learns what the words mean for the picture. The vocabulary is
saved in every checkpoint, so a checkpoint encodes prompts exactly as in
training; words it never saw map to ``[UNK]``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

PAD, UNK, BOS = "[PAD]", "[UNK]", "[BOS]"
SPECIALS = (PAD, UNK, BOS)  # ids 0, 1, 2
_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")  # words, and each punctuation mark alone


def split_words(text: str) -> list[str]:
    """Lower-case words and punctuation marks: ``"A red, b"`` -> ``["a", "red", ",", "b"]``."""
    return _WORD.findall(text.lower())


class Tokenizer:
    """Caption -> fixed-length id sequence ``[BOS] w1 w2 ... [PAD] ...``.

    Every sequence has the same length (``max_len``), so a prompt's tensors never
    depend on the other prompts of its batch. The empty caption is ``[BOS]``
    alone: the "null" condition of classifier-free guidance. Longer captions are
    cut at ``max_len`` tokens.
    """

    def __init__(self, words: Sequence[str], max_len: int) -> None:
        self.words = list(words)
        if self.words[: len(SPECIALS)] != list(SPECIALS):
            raise ValueError("a vocabulary starts with the special tokens")
        self.ids = {word: index for index, word in enumerate(self.words)}
        self.max_len = max_len

    @classmethod
    def build(cls, captions: Iterable[str], max_len: int) -> Tokenizer:
        """A vocabulary of every word of ``captions``, sorted so that it is deterministic."""
        found = {word for caption in captions for word in split_words(caption)}
        return cls([*SPECIALS, *sorted(found - set(SPECIALS))], max_len)

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, captions: Sequence[str]) -> torch.Tensor:
        """Long tensor [len(captions), max_len]."""
        unk, bos, get, width = self.ids[UNK], self.ids[BOS], self.ids.get, self.max_len
        rows = []
        for caption in captions:
            ids = [bos, *(get(w, unk) for w in split_words(caption))][:width]
            rows.append(ids + [0] * (width - len(ids)))  # PAD is 0
        # One tensor from the lists: a tensor per row cost more than the words.
        return torch.tensor(rows, dtype=torch.long).reshape(len(captions), width)


class _TextBlock(nn.Module):
    """Pre-norm transformer layer over the caption tokens (padding masked out)."""

    def __init__(self, width: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, mlp_ratio * width), nn.SiLU(), nn.Linear(mlp_ratio * width, width))

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """x [B, L, W], keep [B, 1, 1, L] (True for real tokens) -> [B, L, W]."""
        b, n, w = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
        x = x + self.proj(attended.transpose(1, 2).reshape(b, n, w))
        return x + self.mlp(self.norm2(x))


class TextEncoder(nn.Module):
    """Token ids [B, L] -> token features [B, L, W], a padding mask and a pooled vector.

    Learned word and position embeddings and ``depth`` transformer layers. The
    pooled vector (mean over real tokens) conditions the image blocks globally;
    the token features are attended to by every image block.
    """

    def __init__(self, vocab_size: int, width: int, depth: int, heads: int, max_len: int, mlp_ratio: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, width)
        self.position = nn.Parameter(torch.zeros(max_len, width))
        self.blocks = nn.ModuleList(_TextBlock(width, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        nn.init.normal_(self.embed.weight, std=0.02)
        nn.init.normal_(self.position, std=0.02)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns features [B, L, W], keep [B, L] (bool) and pooled [B, W]."""
        keep = ids != 0
        x = self.embed(ids) + self.position[: ids.shape[1]]
        for block in self.blocks:
            x = block(x, keep[:, None, None, :])
        x = self.norm(x)
        weights = keep.to(x.dtype)[..., None]
        pooled = (x * weights).sum(1) / weights.sum(1).clamp(min=1)
        return x, keep, pooled
