"""How well an image shows what the caption of a procedural scene says.

`demo.scenes` writes captions from a small grammar ("a small red circle left of
a large blue star, and a ..."), so a caption can be read back into shapes (size,
colour, kind) and relations between them, and an image can be checked against
them without a learned model. `caption_recognition` checks, for each named shape,
whether pixels of its palette colour are there in about the right amount, gathered
in one place, with crisp edges and a silhouette like its kind; then whether the
shapes' centres obey the stated relations; and whether colours that the caption
does not name are absent, with partial credit for each. The score is near 1 for a
scene's own image and falls as the image is blurred, noised, colour-shifted,
scrambled or replaced by another scene. It is the measurable property that
simulated annotators judge by (`demo.simulation`), not a metric to report.

Noise counts against an image too (Immerkær's estimate of Gaussian noise);
`cleanliness`, which needs no caption, stands in where a caption is outside the
grammar.

Pure Pillow and numpy: no Django, no torch.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from demo.scenes import KINDS, PALETTE, SIZES, STAR_INNER

# Images are analysed at most this large: the smallest shape of a scene is still
# about 9 pixels across, and a check takes a few milliseconds.
ANALYSIS_SIDE = 128
# A pixel within this RGB distance of a palette colour is that colour, crisply.
TIGHT = 48.0
# A pixel is counted for a colour when that colour is nearer than the background and
# every other palette colour, and within this distance.
LOOSE = 120.0
# Area and perimeter of each kind as multiples of the squared radius, and of the
# radius, of its circumscribed circle.
AREA_FACTOR = {
    "circle": math.pi,
    "square": 2.0,
    "triangle": 3 * math.sqrt(3) / 4,
    "star": 5 * STAR_INNER * math.sin(math.pi / 5),  # ten triangles with radii 1 and STAR_INNER
}
PERIMETER_FACTOR = {
    "circle": 2 * math.pi,
    "square": 4 * math.sqrt(2),
    "triangle": 3 * math.sqrt(3),
    "star": 10 * math.sqrt(1 + STAR_INNER**2 - 2 * STAR_INNER * math.cos(math.pi / 5)),
}
# The soft rim around a shape, in analysed pixels: a scene's own image, anti-aliased
# and JPEG-compressed, has about a third of a pixel; past RIM_SHARP each further
# RIM_SCALE pixels of blur (or noise on the edges) divides the score by e.
RIM_SHARP, RIM_SCALE = 0.35, 0.6
# Share of the image in palette colours that the caption does not name that divides
# the score by e: about one small shape.
EXTRA_AREA = 0.02
# Grey-level noise (the standard deviation `_noise` estimates) that a scene's own image stays under, JPEG
# artefacts included; past it each further NOISE_SCALE levels divide the score by e.
NOISE_QUIET, NOISE_SCALE = 3.0, 15.0
# Silhouette features of each kind, pointing up as drawn: (area / bounding box,
# area / circle of the farthest pixel from the centroid, centroid below the box centre
# as a share of the box height).
KIND_FEATURES = {
    "circle": (math.pi / 4, 1.0, 0.0),
    "square": (1.0, 2 / math.pi, 0.0),
    "triangle": (0.5, 3 * math.sqrt(3) / (4 * math.pi), 1 / 6),
    "star": (0.43, 0.47, 0.05),
}
_PHRASE = rf"(small|large) ({'|'.join(PALETTE)}) ({'|'.join(KINDS)})"
_RELATION = r"(left of|right of|above|below)"
_CAPTION = re.compile(
    rf"^a {_PHRASE}(?: {_RELATION} a {_PHRASE}(?:, and a {_PHRASE} {_RELATION} the "
    rf"({'|'.join(PALETTE)}) ({'|'.join(KINDS)}))?)?$"
)
# Immerkær (1996), "Fast noise variance estimation", CVIU 64(2): the mask cancels
# any locally linear image and leaves the noise, amplified by sqrt(36).
_NOISE_MASK = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)


@dataclass(frozen=True)
class Named:
    """A shape as a caption names it."""

    size: str
    colour: str
    kind: str


@dataclass(frozen=True)
class Claim:
    """What a caption says: shapes, and relations as (subject index, words, object index)."""

    shapes: tuple[Named, ...]
    relations: tuple[tuple[int, str, int], ...]


def parse_caption(caption: str) -> Claim | None:
    """The shapes and relations of a scene caption; None for a caption outside the grammar."""
    match = _CAPTION.match(caption.strip())
    if match is None:
        return None
    g = match.groups()
    shapes = [Named(*g[0:3])]
    relations = []
    if g[3]:
        shapes.append(Named(*g[4:7]))
        relations.append((0, g[3], 1))
    if g[7]:
        if (g[11], g[12]) != (shapes[1].colour, shapes[1].kind):
            return None  # the anchor must be the second shape
        shapes.append(Named(*g[7:10]))
        relations.append((2, g[10], 1))
    return Claim(tuple(shapes), tuple(relations))


def caption_recognition(image: Image.Image, caption: str) -> float:
    """The share of what `caption` says that can be recognised in `image`, from 0 to 1.

    Each named shape scores a weighted geometric mean of: its colour's area against
    the area its size and kind imply (the size class's spread is tolerated, then a
    Gaussian fall-off in log area), the share of that colour's pixels within reach
    of their median (one place, not scattered), and how close its silhouette is to
    its kind's. A relation scores a logistic of how far the subject's centre lies in
    the stated direction beyond its offset on the other axis. With partial credit, the
    score is the arithmetic mean of the mean shape-and-relation score and two factors (sharp rims, no colours the
    caption does not name), each factor counted for the share of the named shapes
    found at all, so that an empty image earns nothing for being clean; noise, which
    damages the whole image rather than one detail, multiplies it. A score that
    multiplied everything would put every image far from its scene near 0, and such
    images could not be told apart; here the right colours in soft blobs score below the scene's own
    image and above an empty canvas, cleaner blobs above smeared ones, and a noisy
    scrambled catch copy near 0. Simulated annotators judge by this.
    """
    seen = _assess(image, caption)
    factors = [seen.found * factor for factor in (seen.crisp, seen.no_extra)]
    return float(np.clip(seen.clean * np.mean([float(np.mean(seen.claims)), *factors]), 0.0, 1.0))


@dataclass(frozen=True)
class _Seen:
    claims: list[float]  # one score per named shape, then per relation
    found: float  # share of the named shapes whose colour is there at all
    crisp: float  # the rim penalty
    clean: float  # the noise penalty
    no_extra: float  # the penalty for colours the caption does not name


def _assess(image: Image.Image, caption: str) -> _Seen:
    claim = parse_caption(caption)
    if claim is None:
        raise ValueError(f"not a scene caption: {caption!r}")
    pixels = _pixels(image)
    side = pixels.shape[0]
    distances = _distances(pixels)
    names = list(PALETTE)
    nearest = distances.argmin(axis=-1)
    nearest_distance = distances.min(axis=-1)
    scores, centres, rims = [], [], []
    for shape in claim.shapes:
        index = names.index(shape.colour)
        mask = (nearest == index) & (nearest_distance < LOOSE)
        tight = distances[..., index] < TIGHT
        score, centre, rim = _shape_score(mask, tight, shape, side)
        scores.append(score)
        centres.append(centre)
        rims += [] if rim is None else [rim]
    for subject, words, anchor in claim.relations:
        scores.append(_relation_score(centres[subject], centres[anchor], words, side))
    named = {names.index(shape.colour) for shape in claim.shapes}
    others = [i for i in range(len(names)) if i not in named]
    extra = (distances[..., others] < TIGHT).any(axis=-1).mean() if others else 0.0
    crisp = math.exp(-max(0.0, float(np.mean(rims)) - RIM_SHARP) / RIM_SCALE) if rims else 1.0
    found = sum(centre is not None for centre in centres) / len(centres)
    return _Seen(scores, found, crisp, _clean(pixels), math.exp(-extra / EXTRA_AREA))


def cleanliness(image: Image.Image) -> float:
    """From 1 for an image without visible noise down towards 0 for a very noisy one.

    Needs no caption: simulated annotators judge by it where a caption is not a
    scene caption. Measured at the analysed size (at most `ANALYSIS_SIDE`), where an
    upscaled image still shows the noise it came with.
    """
    return _clean(_pixels(image))


def _clean(pixels: np.ndarray) -> float:
    grey = pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601 luma, as Pillow's "L"
    return math.exp(-max(0.0, _noise(grey) - NOISE_QUIET) / NOISE_SCALE)


def _noise(grey: np.ndarray) -> float:
    h, w = grey.shape
    if h < 3 or w < 3:
        return 0.0
    response = sum(
        _NOISE_MASK[dy, dx] * grey[dy:h - 2 + dy, dx:w - 2 + dx] for dy in range(3) for dx in range(3)
    )
    return float(math.sqrt(math.pi / 2) * np.abs(response).sum() / (6 * (w - 2) * (h - 2)))


# ------------------------------------------------------------------------------
# Pieces
# ------------------------------------------------------------------------------
def _pixels(image: Image.Image) -> np.ndarray:
    """RGB float pixels, square (centre crop), at most ANALYSIS_SIDE on a side."""
    image = ImageOps.exif_transpose(image).convert("RGB")
    side = min(image.size)
    if image.width != image.height:
        left, top = (image.width - side) // 2, (image.height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    if side > ANALYSIS_SIDE:
        image = image.resize((ANALYSIS_SIDE, ANALYSIS_SIDE), Image.Resampling.BOX)
    return np.asarray(image, dtype=np.float32)


def _distances(pixels: np.ndarray) -> np.ndarray:
    """Distance of each pixel to each palette colour, then to the background, as (H, W, 9).

    The palette colours come first, in `PALETTE` order; the background, the last, is a
    plane fitted to the border pixels per channel (scenes keep shapes off the border
    and have plain or linearly graded backgrounds).
    """
    palette = np.array(list(PALETTE.values()), dtype=np.float32)
    to_palette = np.sqrt(((pixels[..., None, :] - palette) ** 2).sum(axis=-1))
    to_background = np.sqrt(((pixels - _background(pixels)) ** 2).sum(axis=-1))
    # A pixel nearer the background than every palette colour belongs to no shape.
    behind = to_background < to_palette.min(axis=-1)
    to_palette[behind] = np.inf
    return to_palette


def _background(pixels: np.ndarray) -> np.ndarray:
    side = pixels.shape[0]
    ys, xs = np.mgrid[0:side, 0:side].astype(np.float32) / max(side - 1, 1)
    border = np.zeros((side, side), dtype=bool)
    band = max(1, side // 32)
    border[:band], border[-band:], border[:, :band], border[:, -band:] = True, True, True, True
    design = np.stack([np.ones(border.sum(), np.float32), xs[border], ys[border]], axis=1)
    coefficients, *_ = np.linalg.lstsq(design, pixels[border], rcond=None)
    return coefficients[0] + xs[..., None] * coefficients[1] + ys[..., None] * coefficients[2]


def _shape_score(mask: np.ndarray, tight: np.ndarray, shape: Named, side: int) -> tuple[float, tuple | None, float | None]:
    """(score, centre, width of the soft rim in pixels) of one named shape; no centre or rim if absent."""
    low, high = SIZES[shape.size]
    expected_area = AREA_FACTOR[shape.kind] * ((low + high) / 2 * side) ** 2
    ys, xs = np.nonzero(mask)
    if len(xs) < 3:
        return 0.0, None, None
    centre = np.array([np.median(xs), np.median(ys)])
    reach = 1.3 * high * side
    near = (xs - centre[0]) ** 2 + (ys - centre[1]) ** 2 <= reach**2
    gathered = float(near.mean())
    xs, ys = xs[near], ys[near]
    if len(xs) < 3:
        return 0.0, None, None
    area = float(len(xs))
    # The spread of the size class is tolerated; beyond it the score falls off.
    excess = max(0.0, abs(math.log(area / expected_area)) - math.log(high / low * 1.15))
    size = math.exp(-(excess**2) / (2 * 0.35**2))
    # Pixels of the colour that miss it closely lie on the rim: their count over the
    # perimeter is the rim's width.
    radius = math.sqrt(area / AREA_FACTOR[shape.kind])
    rim = (1 - float(tight[ys, xs].mean())) * area / (PERIMETER_FACTOR[shape.kind] * radius)
    kind = _kind_score(xs, ys, shape.kind)
    parts = [(size, 2.0), (gathered, 1.0), (kind, 0.5)]
    score = math.exp(sum(w * math.log(max(p, 1e-3)) for p, w in parts) / sum(w for _, w in parts))
    return score, (float(xs.mean()), float(ys.mean())), rim


def _kind_score(xs: np.ndarray, ys: np.ndarray, kind: str) -> float:
    """How much more the silhouette looks like `kind` than like the other kinds (0 to 1)."""
    if len(xs) < 12:
        return 0.5  # too few pixels to tell a silhouette
    area = float(len(xs))
    width, height = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    cx, cy = xs.mean(), ys.mean()
    reach = math.sqrt(float(((xs - cx) ** 2 + (ys - cy) ** 2).max())) + 0.5
    below = (cy - (ys.min() + ys.max()) / 2) / height
    seen = np.array([area / (width * height), area / (math.pi * reach**2), below])
    closeness = {
        name: math.exp(-float(((seen - np.array(features)) ** 2 / np.array([0.12, 0.12, 0.08]) ** 2).sum()) / 2)
        for name, features in KIND_FEATURES.items()
    }
    total = sum(closeness.values())
    return 0.5 if total == 0 else closeness[kind] / total


def _relation_score(subject: tuple | None, anchor: tuple | None, words: str, side: int) -> float:
    if subject is None or anchor is None:
        return 0.25  # a shape that is not there stands nowhere
    dx, dy = subject[0] - anchor[0], subject[1] - anchor[1]
    along, across = {"left of": (-dx, dy), "right of": (dx, dy), "above": (-dy, dx), "below": (dy, dx)}[words]
    margin = (along - abs(across)) / side
    return 1 / (1 + math.exp(-margin * 25))
