"""Procedural text–image scenes: a corpus the project makes itself.

Demos, benchmarks and the small built-in diffusion model need text–image pairs
without a download and without licences to check, and their captions must be
true of their pictures, or a human preference rate measured on them means
nothing. A scene is one to three flat shapes on a plain or softly graded
background. Colours come from a small palette of unambiguous names, sizes from
two well separated classes, and relations ("left of", "above", ...) are read
from the shapes' actual centres. The ground truth travels with the image
(`Scene.shapes`), so a classifier or an analysis can check what a generator drew.

Item ``i`` of a corpus written with ``seed`` is ``draw_scene(item_seed(seed, i))``,
where ``item_seed(seed, i) = seed * 1_000_003 + i``: corpora with different seeds
do not share items until one of them passes a million items.

Pure Pillow and stdlib: no Django, no torch.
"""

from __future__ import annotations

import io
import json
import math
import random
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (35, 155, 60),
    "blue": (35, 80, 215),
    "yellow": (245, 215, 35),
    "purple": (130, 55, 175),
    "orange": (245, 130, 20),
    "white": (250, 250, 250),
    "black": (15, 15, 15),
}
KINDS = ("circle", "square", "triangle", "star")
# Radius of the circumscribed circle as a fraction of the image side. The largest
# small shape is two thirds of the smallest large one, so the words never blur.
SIZES = {"small": (0.07, 0.10), "large": (0.15, 0.20)}
MIN_SIZE = 32
SUPERSAMPLE = 4  # each shape's mask is drawn 4x larger and box-filtered down
STAR_INNER = 0.5  # inner radius of the five-pointed star, as a share of the outer
MTIME = 946_684_800  # 2000-01-01: a fixed member mtime makes shards byte-identical
_GAP = 0.02  # least empty space between two shapes, and to the border, x side
_CLEAR = 1.25  # a relation's axis must outweigh the other axis by this factor


@dataclass(frozen=True)
class Shape:
    """One drawn shape; coordinates in pixels, x to the right, y downwards."""

    kind: str  # one of KINDS
    colour: str  # a key of PALETTE
    size: str  # "small" or "large"
    centre: tuple[int, int]  # the pixel at the shape's centre (centroid for a triangle)
    radius: int  # of the circumscribed circle

    @property
    def phrase(self) -> str:
        return f"{self.size} {self.colour} {self.kind}"


@dataclass
class Scene:
    image: Image.Image  # RGB
    caption: str
    shapes: list[Shape]  # in the order the caption names them
    seed: int

    def metadata(self) -> dict:
        """The JSON-ready ground truth written beside the image."""
        return {
            "caption": self.caption,
            "shapes": [asdict(shape) for shape in self.shapes],
            "seed": self.seed,
            "width": self.image.width,
            "height": self.image.height,
        }


def item_seed(seed: int, index: int) -> int:
    """The scene seed of item ``index`` of a corpus written with ``seed``."""
    return seed * 1_000_003 + index


def relation(a: Shape, b: Shape) -> str:
    """Where ``a`` stands relative to ``b``, along the axis their centres differ most."""
    dx = a.centre[0] - b.centre[0]
    dy = a.centre[1] - b.centre[1]
    if abs(dx) >= abs(dy):
        return "left of" if dx < 0 else "right of"
    return "above" if dy < 0 else "below"


def describe(shapes: list[Shape]) -> str:
    """The caption: the first shape against the second, the third against the second."""
    text = f"a {shapes[0].phrase}"
    if len(shapes) > 1:
        text += f" {relation(shapes[0], shapes[1])} a {shapes[1].phrase}"
    if len(shapes) > 2:
        anchor = f"the {shapes[1].colour} {shapes[1].kind}"  # colours are unique per scene
        text += f", and a {shapes[2].phrase} {relation(shapes[2], shapes[1])} {anchor}"
    return text


def draw_scene(seed: int, size: int = 512) -> Scene:
    """Draw the scene of ``seed`` as a ``size`` x ``size`` RGB image."""
    if seed < 0:  # random.Random folds a negative seed onto its absolute value
        raise ValueError("seed must be >= 0")
    if size < MIN_SIZE:
        raise ValueError(f"size must be >= {MIN_SIZE}")
    rng = random.Random(seed)
    image = _background(rng, size)
    shapes = _layout(rng, size)
    for shape in shapes:
        _paint(image, shape)
    return Scene(image=image, caption=describe(shapes), shapes=shapes, seed=seed)


def iter_scenes(count: int, *, size: int = 512, seed: int = 0) -> Iterator[Scene]:
    """The first ``count`` scenes of the corpus of ``seed``."""
    for index in range(count):
        yield draw_scene(item_seed(seed, index), size)


def write_webdataset(
    out_dir: str | Path,
    count: int,
    *,
    size: int = 512,
    shard_size: int = 1000,
    seed: int = 0,
    quality: int = 90,
    image_format: str = "jpg",
    progress: Callable[[int], object] | None = None,
) -> list[Path]:
    """Write ``count`` scenes as WebDataset tar shards in img2dataset's layout.

    Shards are ``00000.tar``, ``00001.tar``, ...; each item is three contiguous
    members ``KEY.jpg`` (``KEY.png`` with ``image_format="png"``: lossless, for small
    images that JPEG's chroma subsampling would smear), ``KEY.txt`` (the caption) and ``KEY.json`` (key, caption,
    shapes, seed, width, height). As in img2dataset, a key is the shard number
    (5 digits) followed by the index in the shard, padded to
    ``ceil(log10(shard_size))`` digits: ``00000001`` for shard_size 1000. Shards
    are streamed (one image in memory at a time), written under a ``.partial``
    name and renamed when complete, and are byte-identical for the same arguments.
    ``progress`` is called with the number of items written so far.
    """
    if count < 0 or shard_size < 1:
        raise ValueError("count must be >= 0 and shard_size >= 1")
    if image_format not in ("jpg", "png"):
        raise ValueError(f"image_format must be 'jpg' or 'png', not {image_format!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shard_digits = max(5, len(str(max(count - 1, 0) // shard_size)))
    index_digits = max(1, math.ceil(math.log10(shard_size)))
    paths = []
    for shard, start in enumerate(range(0, count, shard_size)):
        path = out / f"{shard:0{shard_digits}d}.tar"
        partial = path.with_name(path.name + ".partial")
        with tarfile.open(partial, "w") as tar:
            for index in range(start, min(start + shard_size, count)):
                key = f"{shard:0{shard_digits}d}{index - start:0{index_digits}d}"
                scene = draw_scene(item_seed(seed, index), size)
                encoded = io.BytesIO()
                if image_format == "png":
                    scene.image.save(encoded, "PNG")
                else:
                    scene.image.save(encoded, "JPEG", quality=quality)
                meta = json.dumps({"key": key, **scene.metadata()})
                _add(tar, f"{key}.{image_format}", encoded.getvalue())
                _add(tar, f"{key}.txt", scene.caption.encode("utf-8"))
                _add(tar, f"{key}.json", meta.encode("utf-8"))
                if progress is not None:
                    progress(index + 1)
        partial.replace(path)
        paths.append(path)
    return paths


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = MTIME
    info.mode = 0o444
    tar.addfile(info, io.BytesIO(data))


@lru_cache(maxsize=16)
def _ramp(size: int, vertical: bool) -> Image.Image:
    ramp = Image.linear_gradient("L").resize((size, size), Image.Resampling.BILINEAR)
    return ramp if vertical else ramp.transpose(Image.Transpose.ROTATE_90)


def _background(rng: random.Random, size: int) -> Image.Image:
    # Tinted mid greys: far from every palette colour, white and black included.
    level = rng.randint(105, 165)
    top = tuple(level + rng.randint(-12, 12) for _ in range(3))
    if rng.random() < 0.5:
        return Image.new("RGB", (size, size), top)
    bottom = tuple(channel + rng.randint(-20, 20) for channel in top)
    ramp = _ramp(size, rng.random() < 0.5)
    return Image.composite(Image.new("RGB", ramp.size, bottom), Image.new("RGB", ramp.size, top), ramp)


def _layout(rng: random.Random, size: int) -> list[Shape]:
    """Place shapes that never touch, each clearly on one side of the previous one."""
    gap = max(2, round(_GAP * size))
    while True:
        count = rng.choices((1, 2, 3), weights=(1, 2, 2))[0]
        shapes: list[Shape] = []
        for colour in rng.sample(list(PALETTE), count):
            kind = rng.choice(KINDS)
            size_class = rng.choice(("small", "large"))
            radius = round(rng.uniform(*SIZES[size_class]) * size)
            pad = radius + gap
            for _ in range(50):
                centre = (rng.randint(pad, size - pad), rng.randint(pad, size - pad))
                shape = Shape(kind, colour, size_class, centre, radius)
                if all(_apart(shape, other, gap) for other in shapes) and (
                    not shapes or _clear(shape, shapes[-1])
                ):
                    shapes.append(shape)
                    break
            else:
                break  # this draw does not fit: start the scene over from the same stream
        if len(shapes) == count:
            return shapes


def _apart(a: Shape, b: Shape, gap: int) -> bool:
    return math.dist(a.centre, b.centre) >= a.radius + b.radius + gap


def _clear(a: Shape, b: Shape) -> bool:
    dx = abs(a.centre[0] - b.centre[0])
    dy = abs(a.centre[1] - b.centre[1])
    return max(dx, dy) >= _CLEAR * min(dx, dy)


def _paint(image: Image.Image, shape: Shape) -> None:
    """Fill ``shape`` through an anti-aliased mask drawn only over its own box."""
    r, (cx, cy), s = shape.radius, shape.centre, SUPERSAMPLE
    side = 2 * r + 3
    mask = Image.new("L", (side * s, side * s))
    c, big = (r + 1.5) * s, r * s  # the centre of pixel (cx, cy), in mask coordinates
    draw = ImageDraw.Draw(mask)
    if shape.kind == "circle":
        draw.ellipse((c - big, c - big, c + big, c + big), fill=255)
    elif shape.kind == "square":
        half = big / math.sqrt(2)
        draw.rectangle((c - half, c - half, c + half, c + half), fill=255)
    else:
        draw.polygon(_vertices(shape.kind, c, big), fill=255)
    box = (cx - r - 1, cy - r - 1, cx + r + 2, cy + r + 2)
    image.paste(PALETTE[shape.colour], box, mask.reduce(s))


def _vertices(kind: str, c: float, radius: float) -> list[tuple[float, float]]:
    """A triangle or a five-pointed star around (c, c), pointing up."""
    radii = [radius] * 3 if kind == "triangle" else [radius, radius * STAR_INNER] * 5
    step = 2 * math.pi / len(radii)
    return [
        (c + r * math.cos(i * step - math.pi / 2), c + r * math.sin(i * step - math.pi / 2))
        for i, r in enumerate(radii)
    ]
