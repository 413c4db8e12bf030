"""The procedural scene corpus: deterministic, captions true of the pixels, readable shards."""

import io
import json
import math
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds
from PIL import Image

from demo.scenes import (
    PALETTE,
    SIZES,
    STAR_INNER,
    Scene,
    draw_scene,
    item_seed,
    write_webdataset,
)

OBJECT = r"a (small|large) (\w+) (\w+)"
RELATION = r"(left of|right of|above|below)"
CAPTION = re.compile(
    rf"^{OBJECT}(?: {RELATION} {OBJECT}(?:, and {OBJECT} {RELATION} the (\w+) (\w+))?)?$"
)


def parse(caption: str) -> tuple[list[tuple[str, str, str]], list[tuple[int, str, int]]]:
    """Mentioned objects as (size, colour, kind), and relations as (subject, words, object)."""
    match = CAPTION.match(caption)
    assert match, f"caption outside the grammar: {caption!r}"
    g = match.groups()
    objects = [g[0:3]]
    relations = []
    if g[3]:
        objects.append(g[4:7])
        relations.append((0, g[3], 1))
    if g[7]:
        objects.append(g[7:10])
        assert (g[11], g[12]) == objects[1][1:], "'the ...' names the second object"
        relations.append((2, g[10], 1))
    return objects, relations


def holds(words: str, a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Image coordinates: x to the right, y downwards."""
    return {
        "left of": a[0] < b[0],
        "right of": a[0] > b[0],
        "above": a[1] < b[1],
        "below": a[1] > b[1],
    }[words]


def expected_area(kind: str, r: float) -> float:
    return {
        "circle": math.pi * r * r,
        "square": 2 * r * r,  # radius is the half-diagonal
        "triangle": 3 * math.sqrt(3) / 4 * r * r,
        "star": 5 * STAR_INNER * math.sin(math.pi / 5) * r * r,
    }[kind]


def measured_centres(scene: Scene) -> dict[str, tuple[float, float]]:
    """Each shape's centre as the centroid of the pixels of its exact colour, with checks."""
    rgb = np.asarray(scene.image).astype(np.int32)
    packed = rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]
    centres = {}
    for shape in scene.shapes:
        r, g, b = PALETTE[shape.colour]
        ys, xs = np.nonzero(packed == r << 16 | g << 8 | b)
        assert packed[shape.centre[1], shape.centre[0]] == r << 16 | g << 8 | b, scene.caption
        # The colour's pixels form this one shape: inside its circle, of its kind's area.
        reach = np.hypot(xs - shape.centre[0], ys - shape.centre[1]).max()
        assert reach <= shape.radius + 1, scene.caption
        area = len(xs) / expected_area(shape.kind, shape.radius)
        assert 0.9 <= area <= 1.05, (scene.seed, shape, area)
        centres[shape.colour] = (xs.mean(), ys.mean())
    return centres


def test_same_seed_same_scene_and_different_seeds_differ():
    a, b, c = draw_scene(7), draw_scene(7), draw_scene(8)
    assert a.caption == b.caption and a.shapes == b.shapes
    assert a.image.tobytes() == b.image.tobytes()
    assert a.image.tobytes() != c.image.tobytes()
    assert a.image.mode == "RGB" and a.image.size == (512, 512)
    assert draw_scene(7, 64).image.size == (64, 64)


@pytest.mark.parametrize("seed", [-1, -(2**70)])
def test_negative_seed_is_refused(seed):
    with pytest.raises(ValueError):
        draw_scene(seed)


def test_captions_are_true_of_the_pixels():
    counts = set()
    for seed in range(300):
        scene = draw_scene(seed)
        objects, relations = parse(scene.caption)
        assert len(objects) == len(scene.shapes) and 1 <= len(objects) <= 3
        counts.add(len(objects))
        by_colour = {shape.colour: shape for shape in scene.shapes}
        assert len(by_colour) == len(scene.shapes), "colours are unique in a scene"
        for size, colour, kind in objects:
            shape = by_colour[colour]
            assert (shape.size, shape.kind) == (size, kind), scene.caption
            low, high = SIZES[size]
            assert low * 512 - 0.5 <= shape.radius <= high * 512 + 0.5
        centres = measured_centres(scene)
        for subject, words, obj in relations:
            a, b = by_colour[objects[subject][1]], by_colour[objects[obj][1]]
            assert holds(words, a.centre, b.centre), scene.caption
            assert holds(words, centres[a.colour], centres[b.colour]), scene.caption
        for i, a in enumerate(scene.shapes):
            for b in scene.shapes[i + 1 :]:
                assert math.dist(a.centre, b.centre) >= a.radius + b.radius, "shapes never touch"
    assert counts == {1, 2, 3}


def test_small_scenes_keep_their_ground_truth():
    for seed in range(100):
        scene = draw_scene(seed, 64)
        for shape in scene.shapes:
            assert shape.radius >= 2
            assert scene.image.getpixel(shape.centre) == PALETTE[shape.colour], scene.caption


def test_webdataset_reads_back_with_webdataset(tmp_path):
    written = []
    paths = write_webdataset(tmp_path / "a", 7, shard_size=3, seed=5, progress=written.append)
    assert [p.name for p in paths] == ["00000.tar", "00001.tar", "00002.tar"]
    assert written == list(range(1, 8))
    assert not list((tmp_path / "a").glob("*.partial"))

    samples = list(wds.WebDataset([str(p) for p in paths], shardshuffle=False, empty_check=False))
    keys = [s["__key__"] for s in samples]
    assert keys == ["000000", "000001", "000002", "000010", "000011", "000012", "000020"]
    for index, sample in enumerate(samples):
        scene = draw_scene(item_seed(5, index))
        assert sample["txt"].decode("utf-8") == scene.caption
        meta = json.loads(sample["json"])
        assert meta["key"] == sample["__key__"] and meta["caption"] == scene.caption
        assert (meta["seed"], meta["width"], meta["height"]) == (item_seed(5, index), 512, 512)
        assert [s["colour"] for s in meta["shapes"]] == [s.colour for s in scene.shapes]
        image = Image.open(io.BytesIO(sample["jpg"]))
        assert image.format == "JPEG" and image.size == (512, 512)
        image.load()

    with tarfile.open(paths[0]) as tar:
        names = tar.getnames()
    assert names == [f"00000{i}.{ext}" for i in range(3) for ext in ("jpg", "txt", "json")]


def test_webdataset_shards_are_byte_identical_and_sized(tmp_path):
    first = write_webdataset(tmp_path / "a", 25, size=64, shard_size=10)
    again = write_webdataset(tmp_path / "b", 25, size=64, shard_size=10)
    assert len(first) == math.ceil(25 / 10)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in again]
    sample = next(iter(wds.WebDataset([str(first[-1])], shardshuffle=False)))
    assert sample["__key__"] == "000020"
    assert Image.open(io.BytesIO(sample["jpg"])).size == (64, 64)
    assert write_webdataset(tmp_path / "c", 0) == []


def test_module_imports_neither_django_nor_torch():
    code = (
        "import sys, demo.scenes; "
        "print([m for m in sys.modules if m.split('.')[0] in ('django', 'torch')])"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
