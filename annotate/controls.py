"""Images for catch trials: a visibly corrupted copy of a reference.

A catch trial puts a real image beside a copy of itself that anyone paying attention
rejects, so that an annotator who clicks at random shows up in the analysis. The copy
is scrambled into a grid of shuffled tiles, blurred and covered in strong noise: it
keeps the colours of the reference (nothing to tell at a glance from a thumbnail) but
none of its structure. Pure Pillow and numpy; the caller stores the bytes.
"""

import hashlib
import io

import numpy as np
from PIL import Image, ImageFilter, ImageOps

GRID = 4
NOISE_SIGMA = 48.0


def corrupted_png(reference: Image.Image, *, seed: int) -> bytes:
    """The PNG bytes of a scrambled, blurred and noisy copy of `reference`."""
    rng = np.random.default_rng(seed)
    image = ImageOps.exif_transpose(reference).convert("RGB")
    width, height = image.size
    tile_w, tile_h = max(1, width // GRID), max(1, height // GRID)
    image = image.resize((tile_w * GRID, tile_h * GRID))
    pixels = np.asarray(image)
    tiles = [
        pixels[r * tile_h:(r + 1) * tile_h, c * tile_w:(c + 1) * tile_w]
        for r in range(GRID) for c in range(GRID)
    ]
    # A derangement-like shuffle: a rotation of a random permutation moves every tile.
    order = rng.permutation(len(tiles))
    moved = np.roll(order, 1)
    scrambled = [tiles[0]] * len(tiles)
    for src, dst in zip(order, moved):
        scrambled[dst] = tiles[src]
    rows = [np.concatenate(scrambled[r * GRID:(r + 1) * GRID], axis=1) for r in range(GRID)]
    image = Image.fromarray(np.concatenate(rows, axis=0))
    image = image.filter(ImageFilter.GaussianBlur(radius=max(1.0, max(tile_w, tile_h) / 6)))
    noisy = np.asarray(image, dtype=np.float32) + rng.normal(0.0, NOISE_SIGMA, size=(*image.size[::-1], 3))
    image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).resize((width, height))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def control_name(data: bytes) -> str:
    """The content-addressed storage name of a control image."""
    return f"controls/{hashlib.sha256(data).hexdigest()}.png"
