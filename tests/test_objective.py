"""``minivgg.style.objective.Objective``: every preset's value_and_grad against a finite-difference
directional derivative (real VGG16 weights; VGG19 presets on a synthetic VGG19 file), terms sum to the
total, targets and their rescaling and blending, the recomputed first-layer gradient, clear errors.
(The presets and override validation themselves are ``test_presets.py``.)"""

import dataclasses
import functools

import numpy as np
import pytest

from minivgg.errors import UserError
from minivgg.gradcheck import assert_grad
from minivgg.network.vgg import load_vgg, random_vgg
from minivgg.style.objective import Objective
from minivgg.style.presets import PRESETS


@pytest.fixture(scope="module")
def vgg16_f64(real_weights):
    return real_weights.astype(np.float64)


@pytest.fixture(scope="module")
def vgg19_f64(synthetic_weights):
    return load_vgg("vgg19", weights=str(synthetic_weights["vgg19"])).astype(np.float64)


# Every preset, gatys in the fast run and the rest marked slow (~2 s each on 2 cores).
SWEEP = [pytest.param(p, marks=[] if p == "gatys" else [pytest.mark.slow]) for p in PRESETS]


@functools.cache
def net_for(arch, seed=0):
    """One float64 random-weight network per (arch, seed) for the whole module: the ops memoise the
    Winograd transforms of a network's frozen weights, so reusing it saves rebuilding them."""
    return random_vgg(arch, seed=seed, dtype=np.float64)


def images(seed=0, shape=(48, 40, 3), style_shape=(40, 52, 3)):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, shape).astype(np.uint8), rng.integers(0, 256, style_shape).astype(
        np.uint8
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "preset",
    [
        pytest.param(p, marks=pytest.mark.weights) if PRESETS[p].arch == "vgg16" else p
        for p in PRESETS
    ],
)
def test_every_preset_gradient_matches_finite_differences(preset, request):
    net = request.getfixturevalue("vgg19_f64" if PRESETS[preset].arch == "vgg19" else "vgg16_f64")
    content, style = images()
    obj = Objective(net, content, style, preset=preset)
    x = content + np.random.default_rng(1).uniform(-10, 10, content.shape)
    assert assert_grad(obj.value_and_grad, x, seed=2).passed


@pytest.mark.parametrize("preset", SWEEP)
def test_terms_sum_to_value(preset):
    net = net_for(PRESETS[preset].arch)
    content, style = images(3)
    obj = Objective(net, content, style, preset=preset)
    x = np.random.default_rng(4).uniform(0, 255, content.shape)
    value, grad = obj.value_and_grad(x)
    parts = obj.terms(x)
    assert grad.shape == x.shape and grad.dtype == np.float64
    assert parts["total"] == pytest.approx(value, rel=1e-12)
    assert parts["content"] + parts["style"] + parts["tv"] == pytest.approx(value, rel=1e-12)
    assert parts["content"] > 0 and parts["style"] > 0 and parts["tv"] > 0


def test_content_image_is_a_minimum_of_the_content_term():
    net = net_for("vgg16")
    content, style = images(5)
    obj = Objective(net, content, style, preset="gatys", style_weight=0, tv_weight=0)
    value, grad = obj.value_and_grad(content.astype(np.float64))
    assert value == 0 and np.all(grad == 0)


def test_gatys_style_term_formula():
    """E_l = Σ (G − A)² / (4 C² M²), weights 1/5, checked against a direct computation."""
    net = net_for("vgg16")
    content, style = images(6, (32, 32, 3), (32, 32, 3))
    obj = Objective(
        net, content, style, preset="gatys", content_weight=0, tv_weight=0, style_weight=1
    )
    x = np.random.default_rng(7).uniform(0, 255, content.shape)
    fx, _ = net.features(net.preprocess(x), ["block1_conv1", "block3_conv1"], "avg")
    fs, _ = net.features(net.preprocess(style), ["block1_conv1", "block3_conv1"], "avg")
    obj2 = Objective(
        net,
        content,
        style,
        preset="gatys",
        content_weight=0,
        tv_weight=0,
        style_weight=1,
        style_layers=("block1_conv1", "block3_conv1"),
        style_layer_weights=(0.5, 0.5),
    )
    expected = 0
    for t in fx:
        F, S = fx[t].reshape(fx[t].shape[1], -1), fs[t].reshape(fs[t].shape[1], -1)
        C, M = F.shape
        expected += 0.5 * np.sum((F @ F.T - S @ S.T) ** 2) / (4 * C**2 * M**2)
    assert obj2.terms(x)["style"] == pytest.approx(expected, rel=1e-10)
    assert obj.terms(x)["style"] > 0


def test_style_of_another_size_has_its_gram_rescaled():
    net = net_for("vgg16")
    content, _ = images(8, (32, 32, 3))
    style = np.random.default_rng(9).integers(0, 256, (32, 32, 3)).astype(np.uint8)
    big = np.tile(style, (2, 2, 1))  # the same statistics on 4x the pixels
    a = Objective(net, content, style, preset="gatys").style_targets["block1_conv1"]
    b = Objective(net, content, big, preset="gatys").style_targets["block1_conv1"]
    assert np.linalg.norm(a - b) < 0.1 * np.linalg.norm(a)  # without the M ratio b would be ~4x a


def test_blend_weights_mix_target_grams():
    net = net_for("vgg16")
    content, s1 = images(10, (32, 32, 3), (32, 32, 3))
    s2 = np.random.default_rng(11).integers(0, 256, (32, 32, 3)).astype(np.uint8)
    o1 = Objective(net, content, s1)
    o2 = Objective(net, content, s2)
    ob = Objective(net, content, [s1, s2], style_blend_weights=[3, 1])
    t = "block2_conv1"
    np.testing.assert_allclose(
        ob.style_targets[t], 0.75 * o1.style_targets[t] + 0.25 * o2.style_targets[t]
    )


def test_bad_preset_and_arch_mismatch_and_small_image():
    net = random_vgg("vgg16")
    content, style = images()
    with pytest.raises(UserError, match="unknown preset 'nope'; valid presets: gatys"):
        Objective(net, content, style, preset="nope")
    content, style = images()
    with pytest.raises(UserError, match="runs on vgg19"):
        Objective(net, content, style, preset="d2l")
    with pytest.raises(UserError, match="needs at least 16 pixels"):
        Objective(net, content[:8], style, preset="gatys")
    with pytest.raises(UserError, match="blend weights"):
        Objective(net, content, [style, style], style_blend_weights=[1])


@pytest.mark.parametrize("preset", SWEEP)
def test_recomputed_first_layer_style_gradient_changes_nothing(preset):
    """The memory-saving path (first-layer style gradient recomputed in the backward pass, used on
    large images) gives the eager path's loss and gradient on every preset."""
    arch = PRESETS[preset].arch
    net = net_for(arch, seed=2)
    rng = np.random.default_rng(3)
    content = rng.uniform(0, 255, (34, 33, 3))
    style = rng.uniform(0, 255, (32, 36, 3))
    x = np.clip(content + rng.uniform(-20, 20, content.shape), 0, 255)
    obj = Objective(net, content, style, preset=preset)
    ref = obj.value_and_grad(x)
    obj.net = dataclasses.replace(net, recompute_grad_from=1)
    value, grad = obj.value_and_grad(x)
    assert value == pytest.approx(ref[0], rel=1e-12)
    np.testing.assert_allclose(grad, ref[1], rtol=1e-9, atol=1e-9 * np.abs(ref[1]).max())
