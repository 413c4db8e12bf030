"""The trainer: loss goes down, checkpoints land where asked with growing scale axes."""

import math

import pytest

from generation.engine import (
    LADDER,
    DiT,
    TrainConfig,
    count_params,
    forward_flops,
    load_checkpoint,
    train,
    validation_loss,
)
from generation.engine.text import Tokenizer

from .conftest import STEPS


def test_training_lowers_the_validation_loss(trained):
    infos, _, _ = trained
    first, middle, last = (info.val_loss for info in infos)
    assert last < middle < first
    assert last < 0.7 * first


def test_checkpoints_at_the_chosen_steps_with_growing_images_and_flops(trained):
    infos, _, _ = trained
    assert [info.step for info in infos] == [1, 20, STEPS]
    assert [info.train_images for info in infos] == [16, 320, 16 * STEPS]
    assert 0 < infos[0].train_flops < infos[1].train_flops < infos[2].train_flops
    # FLOPs are proportional to images seen: one fixed cost per training image.
    assert infos[2].train_flops / infos[0].train_flops == pytest.approx(STEPS)
    for info in infos:
        assert info.path.is_file() and info.path.name == f"XS-step{info.step:07d}.pt"
        assert info.size == "XS"
        model = load_checkpoint(info.path)
        assert info.params == count_params(model.network) == model.params
        assert (model.step, model.train_images, model.size) == (info.step, info.train_images, "XS")
        assert model.val_loss == info.val_loss


def test_flops_are_three_measured_forward_passes_per_image_seen(trained):
    infos, _, _ = trained
    network = load_checkpoint(infos[0].path).network
    forward = forward_flops(network)
    assert infos[0].train_flops == pytest.approx(3 * forward * infos[0].train_images)
    # Sanity of the count: every MLP weight meets every image token once forward.
    mlp_weights = sum(count_params(block.mlp) for block in network.blocks)
    assert forward > 2 * LADDER["XS"].tokens * mlp_weights


def test_validation_loss_is_deterministic_and_matches_the_checkpoint(trained):
    infos, captions, images = trained
    model = load_checkpoint(infos[-1].path)
    once = validation_loss(model, captions, images)
    assert validation_loss(model, captions, images) == once
    assert validation_loss(model, captions, images, batch_size=5) == pytest.approx(once, rel=1e-6)
    assert once == pytest.approx(infos[-1].val_loss, rel=1e-6)
    assert validation_loss(model, captions, images, seed=1) != once


def test_progress_is_reported_every_step_and_no_validation_gives_nan(corpus, tmp_path):
    train_scenes, _ = corpus
    seen = []
    infos = train(
        LADDER["XS"],
        [s.caption for s in train_scenes[:8]],
        [s.image for s in train_scenes[:8]],
        settings=TrainConfig(steps=3, batch_size=4),
        out_dir=tmp_path / "new",
        size="XS",
        progress=lambda step, total: seen.append((step, total)),
    )
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert [info.step for info in infos] == [3]  # no checkpoint_steps: the last step only
    assert math.isnan(infos[0].val_loss)


def test_same_seed_same_weights(corpus, tmp_path):
    train_scenes, _ = corpus
    args = ([s.caption for s in train_scenes[:8]], [s.image for s in train_scenes[:8]])
    paths = [
        train(
            LADDER["XS"],
            *args,
            settings=TrainConfig(steps=2, batch_size=4, seed=seed),
            out_dir=tmp_path / str(i),
            size="XS",
        )[0].path
        for i, seed in enumerate((5, 5, 6))
    ]
    weights = [load_checkpoint(p).network.state_dict() for p in paths]
    assert all((weights[0][k] == weights[1][k]).all() for k in weights[0])
    assert any((weights[0][k] != weights[2][k]).any() for k in weights[0])


def test_parameter_counts_grow_across_the_ladder():
    params = {name: count_params(DiT(config, vocab_size=32)) for name, config in LADDER.items()}
    assert params["XS"] < params["S"] < params["M"] < params["L"]
    assert params["L"] >= 10 * params["S"]


@pytest.mark.parametrize(
    "kwargs",
    [{"steps": 0}, {"cfg_dropout": 1.0}, {"steps": 5, "checkpoint_steps": (6,)}, {"ema_decay": 1.0}],
)
def test_train_config_rejects_nonsense(kwargs):
    with pytest.raises(ValueError):
        TrainConfig(**kwargs)


def test_tokenizer_maps_unknown_words_to_unk_and_pads_to_a_fixed_length():
    tokenizer = Tokenizer.build(["a red circle", "a blue square, and more"], max_len=6)
    ids = tokenizer.encode(["A red zebra", "", "a red circle a red circle"])
    words = tokenizer.words
    assert [words[i] for i in ids[0]] == ["[BOS]", "a", "red", "[UNK]", "[PAD]", "[PAD]"]
    assert [words[i] for i in ids[1]] == ["[BOS]"] + ["[PAD]"] * 5
    assert ids.shape == (3, 6)  # cut at max_len
    assert "," in words
