"""``minivgg.network.vgg``: preprocessing, truncation at the deepest tap, the memory-lean loss path against
features+backward (with bit-packed masks and recomputed first-layer gradients), and loading."""

import dataclasses

import numpy as np
import pytest

from minivgg import ops
from minivgg.engine.masks import PackedMask
from minivgg.network import vgg
from minivgg.network.arch import conv_layer_table
from minivgg.network.vgg import DeferredGrad, load_vgg, random_vgg
from minivgg.style import memory


def test_preprocess_roundtrip_and_caffe_convention(rng):
    net = random_vgg("vgg16", dtype=np.float64)
    x = rng.uniform(0, 255, (5, 6, 3))
    y = net.preprocess(x)
    assert y.shape == (1, 3, 5, 6)
    assert y[0, 0, 2, 3] == pytest.approx(x[2, 3, 2] - 103.939)  # B first
    np.testing.assert_allclose(net.deprocess(y), x)


def test_forward_stops_at_deepest_tap():
    net = random_vgg("vgg16")
    feats, tape = net.features(net.preprocess(np.zeros((16, 16, 3))), ["conv2_1"])
    assert [name for _, name, _ in tape][-1] == "conv2_1"
    assert feats["conv2_1"].shape == (1, 128, 8, 8)


def test_thresholds_default_to_memory_constants_and_are_per_network():
    net = random_vgg("vgg16")
    assert (
        net.pack_masks_from == memory.PACK_MASKS_FROM
        and net.recompute_grad_from == memory.RECOMPUTE_GRAD_FROM
    )
    small = dataclasses.replace(net, pack_masks_from=1000, recompute_grad_from=1)
    assert (small.pack_masks_from, small.recompute_grad_from) == (1000, 1)
    assert net.pack_masks_from == memory.PACK_MASKS_FROM  # the original is untouched
    assert small.params is net.params and not small.params["block1_conv1"][0].flags.writeable


@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_lean_path_matches_features_and_backward(pooling, rng, monkeypatch):
    net = dataclasses.replace(random_vgg("vgg16", seed=3, dtype=np.float64), pack_masks_from=1000)
    packed = []  # exercise bit-packed masks too
    relu_forward = ops.relu_forward

    def spy(x, inplace=False, pack=False):
        y, mask = relu_forward(x, inplace, pack)
        packed.append(isinstance(mask, PackedMask))
        return y, mask

    monkeypatch.setattr(ops, "relu_forward", spy)
    y = rng.standard_normal((1, 3, 20, 18)) * 40
    taps = ["input", "conv1_1", "block1_conv2", "relu2_1", "block2_pool", "block3_conv1"]
    targets = {t: None for t in taps}

    def tap_loss(t, F):
        if targets[t] is None:
            targets[t] = rng.standard_normal(F.shape)
        return float(np.sum(F * targets[t])), targets[t].copy()

    total, g = net.loss_and_input_grad(y.copy(), taps, tap_loss, pooling)
    assert any(packed), "no ReLU mask was bit-packed"
    feats, tape = net.features(y, taps, pooling)
    ref_total = sum(float(np.sum(feats[t] * targets[t])) for t in taps)
    ref_g = net.backward(tape, {t: targets[t] for t in taps})
    assert total == pytest.approx(ref_total, rel=1e-10)
    np.testing.assert_allclose(g, ref_g, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("tap", ["conv1_1", "relu1_1", "relu2_1"])
def test_deferred_tap_gradient_matches_eager(tap, rng):
    """A ``DeferredGrad`` on a first-layer tap is recomputed in the backward pass (from the input),
    elsewhere evaluated at once; both give the eager gradient, with other taps present too."""
    net = random_vgg("vgg16", seed=5, dtype=np.float64)
    y = rng.standard_normal((1, 3, 14, 12)) * 40
    taps = [tap, "relu1_2", "conv2_2"]
    mix = {}
    calls = []

    def grad_of(t, F, overwrite=False):
        out = np.einsum("dc,nchw->ndhw", mix[t], F)  # linear in F, like a Gram gradient
        if overwrite:
            F[...] = out
            return F
        return out

    def tap_loss(deferred):
        def fn(t, F):
            mix.setdefault(t, rng.standard_normal((F.shape[1], F.shape[1])))
            value = float(np.sum(F**2))
            if deferred and t == tap:

                def later(F2, overwrite=False, t=t):
                    calls.append(overwrite)
                    return grad_of(t, F2, overwrite)

                return value, DeferredGrad(later)
            return value, grad_of(t, F)

        return fn

    ref_total, ref_g = net.loss_and_input_grad(y.copy(), taps, tap_loss(False), "avg")
    net = dataclasses.replace(net, recompute_grad_from=1)  # defer even this small map
    total, g = net.loss_and_input_grad(y.copy(), taps, tap_loss(True), "avg")
    assert total == pytest.approx(ref_total, rel=1e-12)
    np.testing.assert_allclose(g, ref_g, rtol=1e-10, atol=1e-10)
    # recomputed (and written in place) on a first-layer tap, evaluated at once elsewhere
    assert calls == ([True] if tap in ("conv1_1", "relu1_1") else [False])


def test_load_vgg_reads_a_weights_file(synthetic_weights):
    net = load_vgg("vgg19", weights=str(synthetic_weights["vgg19"]))
    assert net.arch == "vgg19" and net.dtype == np.float32
    assert [n for n, _, _ in conv_layer_table("vgg19")] == list(net.params)
    w, b = net.params["block5_conv4"]
    assert w.shape == (512, 512, 3, 3) and b.shape == (512,)


def test_load_vgg_real_weights(real_weights):
    assert real_weights.arch == "vgg16" and set(real_weights.params) == {
        n for n, _, _ in conv_layer_table("vgg16")
    }
    assert "verified" in real_weights.provenance
    assert isinstance(real_weights, vgg.VGG)


def test_every_conv_algorithm_gives_the_same_features_and_input_gradient(rng):
    base = random_vgg("vgg16", seed=2, dtype=np.float64)
    y = rng.standard_normal((1, 3, 13, 10)) * 40
    taps = ["conv1_2", "block2_pool", "conv3_1"]
    got = {}
    for conv in ("auto", "im2col", "winograd"):
        net = dataclasses.replace(base, conv=conv)
        feats, tape = net.features(y, taps)
        assert {c[-1] for kind, _, c in tape if kind == "conv"} == {
            "im2col" if conv == "im2col" else "winograd"
        }
        got[conv] = (feats, net.backward(tape, {t: np.ones_like(feats[t]) for t in taps}))
    for conv in ("im2col", "winograd"):
        for t in taps:
            np.testing.assert_allclose(got[conv][0][t], got["auto"][0][t], rtol=1e-10, atol=1e-8)
        np.testing.assert_allclose(got[conv][1], got["auto"][1], rtol=1e-10, atol=1e-8)
    with pytest.raises(ValueError, match="unknown conv algorithm 'fft'"):
        dataclasses.replace(base, conv="fft")
