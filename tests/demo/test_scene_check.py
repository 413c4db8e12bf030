"""demo.scene_check: reading scene captions back, and how well an image shows one.

Scenes are drawn at 64 pixels and JPEG-compressed as a presentation policy would;
each degradation is applied in steps of growing strength, and the mean fidelity
over the scenes must fall with every step.
"""

import io
import math
import subprocess
import sys
from itertools import pairwise

import numpy as np
import pytest
from PIL import Image, ImageFilter

from annotate.controls import corrupted_png
from demo.scene_check import _assess, _noise, caption_recognition, cleanliness, parse_caption
from demo.scenes import draw_scene, item_seed, relation

SIZE = 64
SCENES = [draw_scene(item_seed(0, i), SIZE) for i in range(30)]


def jpeg(image: Image.Image, quality: int = 90) -> Image.Image:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return Image.open(io.BytesIO(out.getvalue()))


def noisy(image: Image.Image, sigma: float, seed: int) -> Image.Image:
    pixels = np.asarray(image, dtype=np.float32)
    pixels = pixels + np.random.default_rng(seed).normal(0.0, sigma, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def hue_shifted(image: Image.Image, steps: int) -> Image.Image:
    h, s, v = image.convert("HSV").split()
    return Image.merge("HSV", (h.point(lambda x: (x + steps) % 256), s, v)).convert("RGB")


def caption_fidelity(image: Image.Image, caption: str) -> float:
    """The strict reading of `caption_recognition`'s checks: every shape, relation and
    penalty multiplied (a geometric mean of the claims), so any miss sinks the score.
    It shows that the checks themselves fall with each step of degradation."""
    seen = _assess(image, caption)
    claims = math.exp(sum(math.log(max(s, 1e-3)) for s in seen.claims) / len(seen.claims))
    return float(np.clip(claims * seen.crisp * seen.clean * seen.no_extra, 0.0, 1.0))


def noise_level(image: Image.Image) -> float:
    return _noise(np.asarray(image.convert("L"), dtype=np.float32))


def mean_fidelity(degrade) -> float:
    return float(np.mean([caption_fidelity(jpeg(degrade(s.image, n)), s.caption) for n, s in enumerate(SCENES)]))


def test_captions_read_back_into_the_scenes_shapes_and_relations():
    for scene in SCENES:
        claim = parse_caption(scene.caption)
        assert [(n.size, n.colour, n.kind) for n in claim.shapes] == [
            (s.size, s.colour, s.kind) for s in scene.shapes
        ]
        shapes = scene.shapes
        expected = [(0, relation(shapes[0], shapes[1]), 1)] if len(shapes) > 1 else []
        expected += [(2, relation(shapes[2], shapes[1]), 1)] if len(shapes) > 2 else []
        assert list(claim.relations) == expected
    assert parse_caption("a photo of a dog on a beach") is None
    # "the ..." must name the second shape.
    assert parse_caption("a small red circle left of a large blue star, and a small green square above "
                         "the yellow star") is None
    with pytest.raises(ValueError, match="not a scene caption"):
        caption_fidelity(SCENES[0].image, "a photo of a dog")


def test_the_scenes_own_images_score_high():
    scores = [caption_fidelity(jpeg(s.image), s.caption) for s in SCENES]
    assert np.mean(scores) > 0.8 and min(scores) > 0.5
    # Larger renderings and other sizes of the same scene too.
    large = draw_scene(SCENES[3].seed, 256)
    assert caption_fidelity(jpeg(large.image), large.caption) > 0.7


@pytest.mark.parametrize(
    ("name", "degrade", "strengths"),
    [
        ("blur", lambda image, n, r: image.filter(ImageFilter.GaussianBlur(r)), [0.0, 0.6, 1.2, 2.5]),
        ("noise", lambda image, n, sigma: noisy(image, sigma, n), [0.0, 10.0, 25.0, 50.0]),
        ("hue", lambda image, n, steps: hue_shifted(image, steps), [0, 8, 20, 60]),
        ("jpeg", lambda image, n, quality: jpeg(image, quality), [95, 40, 15, 5]),
    ],
)
def test_fidelity_falls_with_each_step_of_degradation(name, degrade, strengths):
    means = [mean_fidelity(lambda image, n, x=x: degrade(image, n, x)) for x in strengths]
    assert all(a > b for a, b in pairwise(means)), (name, means)
    assert means[-1] < means[0] - 0.3, (name, means)


def test_catch_copies_other_scenes_and_mirrored_relations_score_low():
    references = [caption_fidelity(jpeg(s.image), s.caption) for s in SCENES]
    catch = [
        caption_fidelity(jpeg(Image.open(io.BytesIO(corrupted_png(s.image, seed=n)))), s.caption)
        for n, s in enumerate(SCENES)
    ]
    assert all(c < r for c, r in zip(catch, references)) and np.mean(catch) < 0.1
    others = [caption_fidelity(jpeg(SCENES[n - 1].image), s.caption) for n, s in enumerate(SCENES)]
    assert np.mean(others) < 0.15 and sum(o < r for o, r in zip(others, references)) >= 0.9 * len(SCENES)
    # Mirrored, a scene whose relations are all "left of" / "right of" says the opposite.
    sideways = [
        (n, s) for n, s in enumerate(SCENES)
        if (claim := parse_caption(s.caption)).relations and all(r[1].endswith(" of") for r in claim.relations)
    ]
    assert len(sideways) >= 5
    for n, scene in sideways:
        mirrored = jpeg(scene.image.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
        assert caption_fidelity(mirrored, scene.caption) < references[n] - 0.3, scene.caption


def smeared(image: Image.Image, n: int) -> Image.Image:
    """What a small, undertrained generator draws: the scene's colours as soft blobs."""
    side = image.width
    return image.resize((side // 8, side // 8), Image.Resampling.BOX).resize((side, side), Image.Resampling.BICUBIC)


def test_recognition_gives_partial_credit_where_fidelity_gives_none():
    """Blobs of the right colours are worse than the scene and better than noisy scrambled tiles;
    fidelity scores both near 0 and cannot tell them apart, recognition can."""
    def mean(score, degrade):
        return float(np.mean([score(jpeg(degrade(s.image, n)), s.caption) for n, s in enumerate(SCENES)]))

    def catch(image, n):
        return Image.open(io.BytesIO(corrupted_png(image, seed=n)))

    def grey(image, n):
        return Image.new("RGB", image.size, (128, 128, 128))

    own, blobs, corrupted, empty = (
        mean(caption_recognition, degrade) for degrade in (lambda image, n: image, smeared, catch, grey)
    )
    assert own > 0.9 > blobs and blobs > corrupted + 0.1 and blobs > empty + 0.1, (own, blobs, corrupted, empty)
    assert corrupted < 0.15  # catch trials stay easy for a good annotator
    assert mean(caption_fidelity, smeared) < 0.2 and mean(caption_fidelity, catch) < 0.1
    with pytest.raises(ValueError, match="not a scene caption"):
        caption_recognition(SCENES[0].image, "a photo of a dog")


def test_noise_level_estimates_the_noise_added():
    flat = Image.new("RGB", (96, 96), (128, 120, 110))
    assert noise_level(flat) < 0.5 and cleanliness(flat) == 1.0
    for sigma in (5.0, 20.0):
        estimate = noise_level(noisy(flat, sigma, 0).convert("L"))
        # The grey level of noisy RGB averages three channels: sigma shrinks accordingly.
        expected = sigma * np.sqrt(0.299**2 + 0.587**2 + 0.114**2)
        assert abs(estimate - expected) < 0.15 * expected
    assert cleanliness(noisy(flat, 40.0, 1)) < 0.3 < cleanliness(noisy(flat, 8.0, 1))


def test_scene_check_needs_neither_django_nor_torch():
    code = (
        "import sys, demo.scene_check; "
        "print([m for m in sys.modules if m.split('.')[0] in ('django', 'torch')])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
