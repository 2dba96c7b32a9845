"""Guided Gram matrices: masks carried to every tap, the guided style term and its gradient, the
objective with one style per region, and one-sentence errors for bad masks."""

import numpy as np
import pytest
from PIL import Image

from minivgg.errors import UserError
from minivgg.gradcheck import check_grad
from minivgg.network.vgg import random_vgg
from minivgg.run.controls import load_mask
from minivgg.style.objective import Objective
from minivgg.style.regions import (
    MASK_MODES,
    check_coverage,
    guided_gram,
    guided_style_loss,
    tap_masks,
)

TAPS = ["input", "block1_conv1", "block2_conv1", "block3_pool", "block5_conv1"]


def test_tap_masks_have_each_tap_grid_and_modes_order(rng):
    mask = (rng.uniform(0, 1, (37, 45)) > 0.5).astype(float)
    out = {mode: tap_masks("vgg16", mask, TAPS, mode) for mode in MASK_MODES}
    for masks in out.values():
        assert [masks[t].shape for t in TAPS] == [(37, 45), (37, 45), (18, 22), (4, 5), (2, 2)]
    for t in TAPS:  # inside ⊆ simple-support ⊆ all
        assert np.all(out["inside"][t] <= out["all"][t]) and np.all(
            out["simple"][t] <= out["all"][t]
        )
    assert out["inside"]["block5_conv1"].sum() <= out["all"]["block5_conv1"].sum()
    with pytest.raises(UserError, match="unknown mask propagation 'any'"):
        tap_masks("vgg16", mask, TAPS, "any")


def test_full_mask_gives_the_plain_gram_and_empty_mask_nothing(rng):
    F = rng.standard_normal((1, 4, 5, 6))
    plain = F.reshape(4, -1) @ F.reshape(4, -1).T
    np.testing.assert_allclose(guided_gram(F, np.ones((5, 6))), plain)
    half = np.zeros((5, 6))
    half[:, :3] = 1
    left = F[..., :3].reshape(4, -1)
    np.testing.assert_allclose(
        guided_gram(F, half), 2 * left @ left.T
    )  # normalised by the area (1/2)
    value, grad = guided_style_loss(F, plain, np.zeros((5, 6)))
    assert value == pytest.approx(np.sum(plain**2)) and not grad.any()


@pytest.mark.parametrize("center", [False, True])
def test_guided_style_loss_gradient(rng, center):
    F0, A, mask = (
        rng.standard_normal((1, 5, 4, 3)),
        rng.standard_normal((5, 5)),
        rng.uniform(0, 1, (4, 3)),
    )
    res = check_grad(lambda F: guided_style_loss(F, A, mask, 0.7, center, 0.3), F0)
    assert res.passed, res.report()


def test_one_full_region_is_the_plain_objective(rng):
    net = random_vgg("vgg16", seed=0, dtype=np.float64)
    content = rng.integers(0, 256, (40, 32, 3)).astype(np.uint8)
    style = rng.integers(0, 256, (32, 44, 3)).astype(np.uint8)
    x = content + rng.uniform(-20, 20, content.shape)
    plain = Objective(net, content, style).value_and_grad(x)
    guided = Objective(net, content, style, content_masks=[np.ones((40, 32))]).value_and_grad(x)
    assert guided[0] == pytest.approx(plain[0], rel=1e-10)
    np.testing.assert_allclose(guided[1], plain[1], rtol=1e-8, atol=1e-8)


@pytest.mark.slow
def test_each_region_is_pulled_towards_its_own_style(rng):
    """A region's style gradient only moves pixels that the region's receptive fields reach."""
    net = random_vgg("vgg16", seed=0, dtype=np.float64)
    content = rng.integers(0, 256, (48, 48, 3)).astype(np.uint8)
    styles = [np.full((48, 48, 3), 30, np.uint8), np.full((48, 48, 3), 220, np.uint8)]
    left = np.zeros((48, 48))
    left[:, :24] = 1
    obj = Objective(
        net,
        content,
        styles,
        content_masks=[left, 1 - left],
        content_weight=0,
        tv_weight=0,
        style_layers=("block1_conv1",),
    )
    _, g = obj.value_and_grad(content.astype(float))
    only_left = Objective(
        net,
        content,
        styles[:1],
        content_masks=[left],
        content_weight=0,
        tv_weight=0,
        style_layers=("block1_conv1",),
    )
    _, g_left = only_left.value_and_grad(content.astype(float))
    assert (
        np.abs(g_left[:, 26:]).max() == 0
    )  # block1_conv1's receptive field is 3 px: nothing beyond col 25
    assert np.abs(g[:, 26:]).max() > 0


def test_bad_masks_are_one_sentence(tmp_path, rng):
    net = random_vgg("vgg16", seed=0)
    content = rng.integers(0, 256, (40, 32, 3)).astype(np.uint8)
    style = rng.integers(0, 256, (32, 44, 3)).astype(np.uint8)
    with pytest.raises(UserError, match="2 content masks for 1 style images"):
        Objective(net, content, style, content_masks=[np.ones((40, 32))] * 2)
    with pytest.raises(UserError, match="cover no pixel"):
        check_coverage([np.zeros((4, 4)), np.zeros((4, 4))])
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "black.png")
    with pytest.raises(UserError, match="all black"):
        load_mask(tmp_path / "black.png", (40, 32), "content mask 1")
    (tmp_path / "junk.png").write_text("not an image")
    with pytest.raises(UserError):
        load_mask(tmp_path / "junk.png", (40, 32), "content mask 1")
    grey = np.tile(np.linspace(0, 255, 16, dtype=np.uint8), (8, 1))
    Image.fromarray(grey).save(tmp_path / "ramp.png")
    m = load_mask(tmp_path / "ramp.png", (4, 8), "content mask 1")
    assert m.shape == (4, 8) and 0 <= m.min() < m.max() <= 1
