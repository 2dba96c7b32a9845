"""The VGG layer table, tap names, truncation, and the memory-lean loss path against features+backward."""
import numpy as np
import pytest

from minivgg import vgg
from minivgg.vgg import canonical_tap, conv_layer_table, layer_names, min_input_size, random_vgg


def test_layer_tables():
    t16, t19 = conv_layer_table("vgg16"), conv_layer_table("vgg19")
    assert len(t16) == 13 and len(t19) == 16
    assert t16[0] == ("block1_conv1", 3, 64) and t16[-1] == ("block5_conv3", 512, 512)
    assert t19[-1][0] == "block5_conv4"
    with pytest.raises(ValueError, match="unknown architecture"):
        conv_layer_table("vgg11")


def test_aliases():
    assert canonical_tap("vgg16", "relu4_2") == "block4_conv2"
    assert canonical_tap("vgg16", "pool3") == "block3_pool"
    assert canonical_tap("vgg16", "conv4_2") == "conv4_2"
    assert "conv5_4" in layer_names("vgg19") and "conv5_4" not in layer_names("vgg16")
    with pytest.raises(ValueError, match="unknown layer 'conv6_1' for vgg16; valid names: input"):
        canonical_tap("vgg16", "conv6_1")


def test_min_input_size():
    assert min_input_size("vgg16", ["block1_conv1"]) == 1
    assert min_input_size("vgg16", ["block4_conv2"]) == 8
    assert min_input_size("vgg16", ["block5_pool"]) == 32


def test_preprocess_roundtrip_and_caffe_convention():
    net = random_vgg("vgg16", dtype=np.float64)
    x = np.random.default_rng(0).uniform(0, 255, (5, 6, 3))
    y = net.preprocess(x)
    assert y.shape == (1, 3, 5, 6)
    assert y[0, 0, 2, 3] == pytest.approx(x[2, 3, 2] - 103.939)  # B first
    np.testing.assert_allclose(net.deprocess(y), x)


def test_forward_stops_at_deepest_tap():
    net = random_vgg("vgg16")
    feats, tape = net.features(net.preprocess(np.zeros((16, 16, 3))), ["conv2_1"])
    assert [name for _, name, _ in tape][-1] == "conv2_1"
    assert feats["conv2_1"].shape == (1, 128, 8, 8)


@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_lean_path_matches_features_and_backward(pooling, monkeypatch):
    monkeypatch.setattr(vgg, "_PACK_MASKS_FROM", 1000)  # exercise bit-packed masks too
    net = random_vgg("vgg16", seed=3, dtype=np.float64)
    rng = np.random.default_rng(4)
    y = rng.standard_normal((1, 3, 20, 18)) * 40
    taps = ["input", "conv1_1", "block1_conv2", "relu2_1", "block2_pool", "block3_conv1"]
    targets = {t: None for t in taps}

    def tap_loss(t, F):
        if targets[t] is None:
            targets[t] = rng.standard_normal(F.shape)
        return float(np.sum(F * targets[t])), targets[t].copy()

    total, g = net.loss_and_input_grad(y.copy(), taps, tap_loss, pooling)
    feats, tape = net.features(y, taps, pooling)
    ref_total = sum(float(np.sum(feats[t] * targets[t])) for t in taps)
    ref_g = net.backward(tape, {t: targets[t] for t in taps})
    assert total == pytest.approx(ref_total, rel=1e-10)
    np.testing.assert_allclose(g, ref_g, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("tap", ["conv1_1", "relu1_1", "relu2_1"])
def test_deferred_tap_gradient_matches_eager(tap, monkeypatch):
    """A ``DeferredGrad`` on a first-layer tap is recomputed in the backward pass (from the input),
    elsewhere evaluated at once; both give the eager gradient, with other taps present too."""
    net = random_vgg("vgg16", seed=5, dtype=np.float64)
    rng = np.random.default_rng(6)
    y = rng.standard_normal((1, 3, 14, 12)) * 40
    taps = [tap, "relu1_2", "conv2_2"]
    mix = {}

    def grad_of(t, F, overwrite=False):
        out = np.einsum("dc,nchw->ndhw", mix[t], F)  # linear in F, like a Gram gradient
        if overwrite:
            F[...] = out
            return F
        return out

    def tap_loss(deferred):
        def fn(t, F):
            mix.setdefault(t, rng.standard_normal((F.shape[1], F.shape[1])))
            value = float(np.sum(F ** 2))
            if deferred and t == tap:
                return value, vgg.DeferredGrad(lambda F2, overwrite=False, t=t: grad_of(t, F2, overwrite))
            return value, grad_of(t, F)
        return fn

    ref_total, ref_g = net.loss_and_input_grad(y.copy(), taps, tap_loss(False), "avg")
    monkeypatch.setattr(vgg, "_DEFER_FROM", 1)  # defer even this small map
    total, g = net.loss_and_input_grad(y.copy(), taps, tap_loss(True), "avg")
    assert total == pytest.approx(ref_total, rel=1e-12)
    np.testing.assert_allclose(g, ref_g, rtol=1e-10, atol=1e-10)
