"""Sampling: reproducible per (prompt, seed), independent of the batch, steered by guidance."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from generation.engine import load_checkpoint, pick_device, save_checkpoint
from generation.engine.checkpoint import seeded_noise


@pytest.fixture(scope="module")
def model(trained):
    infos, _, _ = trained
    return load_checkpoint(infos[-1].path)


@pytest.fixture(scope="module")
def prompts(trained):
    _, captions, _ = trained
    return captions[:3]


def pixels(images):
    return [np.asarray(image) for image in images]


def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(pixels(a), pixels(b), strict=True))


def test_generate_is_bit_for_bit_reproducible_on_cpu(model, prompts):
    first = model.generate(prompts, [1, 2, 3], steps=6)
    again = model.generate(prompts, [1, 2, 3], steps=6)
    assert len(first) == 3 and first[0].size == (32, 32) and first[0].mode == "RGB"
    assert same(first, again)


def test_generate_array_is_the_same_images_in_one_uint8_batch(model, prompts):
    array = model.generate_array(prompts, [1, 2, 3], steps=6, batch_size=2)
    assert array.shape == (3, 32, 32, 3) and array.dtype == np.uint8
    assert same(list(array), model.generate(prompts, [1, 2, 3], steps=6))


def test_seeded_noise_is_what_a_fresh_generator_per_seed_draws():
    noise = seeded_noise([7, 2**40 + 3, 7], (3, 4, 4))
    for row, seed in zip(noise, [7, 2**40 + 3, 7]):
        assert torch.equal(row, torch.randn((3, 4, 4), generator=torch.Generator().manual_seed(seed)))


def test_an_image_does_not_depend_on_its_batch(model, prompts):
    batch = model.generate(prompts, [1, 2, 3], steps=6)
    alone = model.generate([prompts[1]], [2], steps=6)
    other_company = model.generate([prompts[2], prompts[1], prompts[0], prompts[0]], [9, 2, 4, 5], steps=6)
    chunked = model.generate(prompts, [1, 2, 3], steps=6, batch_size=2)
    assert same([batch[1]], alone)
    assert same([batch[1]], [other_company[1]])
    assert same(batch, chunked)


def test_different_seeds_give_different_images(model, prompts):
    a, b = model.generate([prompts[0], prompts[0]], [1, 2], steps=6)
    assert not np.array_equal(np.asarray(a), np.asarray(b))


def test_guidance_changes_the_image(model, prompts):
    plain = model.generate(prompts, [1, 2, 3], steps=6, guidance=1.0)
    guided = model.generate(prompts, [1, 2, 3], steps=6, guidance=4.0)
    difference = np.abs(np.stack(pixels(plain)).astype(int) - np.stack(pixels(guided)).astype(int))
    assert difference.mean() > 0.5


def test_the_prompt_changes_the_image(model, prompts):
    a = model.generate([prompts[0]], [1], steps=6)
    b = model.generate([prompts[1]], [1], steps=6)
    assert not same(a, b)


def test_bf16_autocast_runs_and_stays_close_to_fp32(model, prompts):
    fp32 = model.generate(prompts, [1, 2, 3], steps=6)
    bf16 = model.generate(prompts, [1, 2, 3], steps=6, bf16=True)
    difference = np.abs(np.stack(pixels(fp32)).astype(int) - np.stack(pixels(bf16)).astype(int))
    assert difference.mean() < 8


def test_checkpoint_round_trip_keeps_outputs(model, prompts, tmp_path):
    path = tmp_path / "copy.pt"
    save_checkpoint(path, model)
    loaded = load_checkpoint(path)
    assert loaded.config == model.config and loaded.step == model.step
    assert loaded.tokenizer.words == model.tokenizer.words
    assert same(loaded.generate(prompts, [7, 8, 9], steps=4), model.generate(prompts, [7, 8, 9], steps=4))


def test_generate_checks_its_arguments(model):
    assert model.generate([], []) == []
    with pytest.raises(ValueError):
        model.generate(["a"], [1, 2])


def test_load_refuses_other_files(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": {}}, path)
    with pytest.raises(ValueError):
        load_checkpoint(path)


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError):
            pick_device("cuda")


ROOT = Path(__file__).resolve().parents[3]
BLOCK_DJANGO = """
import importlib.abc, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "django" or name.startswith("django."):
            raise ImportError("django is blocked")
sys.meta_path.insert(0, Refuse())
import tempfile, pathlib
import torch
torch.set_num_threads(1)
from PIL import Image
import generation.engine as engine
from generation.engine import LADDER, TrainConfig, train, load_checkpoint
images = [Image.new("RGB", (32, 32), c) for c in ("red", "blue")]
with tempfile.TemporaryDirectory() as tmp:
    info = train(LADDER["XS"], ["a red square", "a blue square"], images,
                 settings=TrainConfig(steps=2, batch_size=2), out_dir=pathlib.Path(tmp), size="XS")[-1]
    image = load_checkpoint(info.path).generate(["a red square"], [0], steps=2)[0]
assert image.size == (32, 32)
assert not any(m == "django" or m.startswith("django.") for m in sys.modules)
print("ok")
"""


def test_engine_runs_with_django_blocked():
    done = subprocess.run(
        [sys.executable, "-c", BLOCK_DJANGO], check=False, capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
