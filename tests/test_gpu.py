"""The GPU path: NumPy-vs-CuPy parity (marked ``gpu``; skipped with the reason where CuPy sees no CUDA
device). Every op (through the numba.cuda kernels and through plain CuPy, i.e. the reference backend
on CuPy arrays), every loss term, the VGG forward/backward, every preset's objective on host and on
device arrays, the tiled objective, the in-house L-BFGS on the device (float64 and float32 history), and
``transfer --device gpu``.

The in-house L-BFGS itself is tested on NumPy in ``test_lbfgs.py``, the optimiser driver in
``test_optim.py``.
"""

import numpy as np
import pytest

from minivgg import ops
from minivgg.engine import backend, dispatch
from minivgg.engine.backend import gpu_available, to_host
from minivgg.engine.im2col import col2im, im2col
from minivgg.network.vgg import random_vgg
from minivgg.optim import drivers as optim
from minivgg.style import losses
from minivgg.style.objective import Objective
from minivgg.style.presets import PRESETS

GPU = gpu_available()
needs_gpu = pytest.mark.skipif(
    not GPU,
    reason="no CUDA GPU: CuPy is not installed or sees no device, "
    "so the NumPy-vs-CuPy parity tests cannot run here",
)


def on_gpu(a):
    return backend.to_device(a, "gpu")


def assert_close32(got, want, rtol=2e-4):
    """Elementwise float32 agreement, absolute slack scaled by the largest reference magnitude."""
    want = np.asarray(want)
    scale = float(np.max(np.abs(want))) if want.size else 1.0
    np.testing.assert_allclose(to_host(got), want, rtol=rtol, atol=rtol * max(scale, 1e-30))


def rel_err(got, want):
    """‖got − want‖ / ‖want‖ (robust to a rare max-pool argmax that flips on a float32 near-tie)."""
    got, want = to_host(got).astype(np.float64), np.asarray(want, dtype=np.float64)
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-300))


def images(shape=(32, 32, 3), style_shape=(32, 40, 3), seed=0):
    r = np.random.default_rng(seed)
    return r.integers(0, 256, shape).astype(np.uint8), r.integers(0, 256, style_shape).astype(
        np.uint8
    )


_NETS = {}


def net_for(arch):
    """Random-weight float32 networks, built once per test session."""
    if arch not in _NETS:
        _NETS[arch] = random_vgg(arch, seed=0)
    return _NETS[arch]


# ====================================================================================== parity


@pytest.fixture(params=["kernels", "cupy"])
def gpu_path(request):
    """Run the GPU side through the numba.cuda kernels, or with them switched off (plain CuPy: the
    reference backend on CuPy arrays)."""
    if request.param == "cupy":
        with dispatch.reference_only():
            yield request.param
        return
    if dispatch.cuda_kernels(on_gpu(np.zeros(1))) is None:
        pytest.skip(f"numba.cuda kernels unavailable: {dispatch.kernel_info().get('cuda')}")
    yield request.param


CONV_GRID = [
    ((1, 3, 8, 8), (4, 3, 3, 3), 1, 1),
    ((2, 2, 7, 6), (3, 2, 3, 3), 1, 1),
    ((1, 2, 8, 9), (4, 2, 3, 3), 2, 1),
    ((1, 3, 6, 7), (2, 3, 2, 2), 1, 0),
    ((2, 1, 9, 7), (2, 1, 5, 3), 3, 2),
    ((1, 64, 20, 18), (32, 64, 3, 3), 1, 1),
]


@pytest.mark.parametrize("xs,ws,stride,pad", CONV_GRID)
@pytest.mark.gpu
@needs_gpu
def test_conv2d_parity(xs, ws, stride, pad, rng):
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in (xs, ws, ws[:1]))
    y, cache = ops.conv2d_forward(x, w, b, stride, pad)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    grads = ops.conv2d_backward(gy, cache, need_params=True)
    y_g, cache_g = ops.conv2d_forward(on_gpu(x), on_gpu(w), on_gpu(b), stride, pad)
    assert_close32(y_g, y)
    for got, want in zip(ops.conv2d_backward(on_gpu(gy), cache_g, need_params=True), grads):
        assert_close32(got, want)


@pytest.mark.parametrize("shape", [(1, 3, 8, 8), (2, 4, 7, 9)])
@pytest.mark.parametrize("pool", ["avg", "max"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.gpu
@needs_gpu
def test_pool_parity(shape, pool, dtype, gpu_path, rng):
    fwd, bwd = {
        "avg": (ops.avg_pool2d_forward, ops.avg_pool2d_backward),
        "max": (ops.max_pool2d_forward, ops.max_pool2d_backward),
    }[pool]
    x = (
        rng.permutation(int(np.prod(shape))).reshape(shape).astype(dtype)
    )  # distinct values: no ties
    y, cache = fwd(x)
    gy = rng.standard_normal(y.shape).astype(dtype)
    y_g, cache_g = fwd(on_gpu(x))
    assert_close32(y_g, y, rtol=1e-6)
    if pool == "max":
        np.testing.assert_array_equal(to_host(cache_g[0]), cache[0])
    assert_close32(bwd(on_gpu(gy), cache_g), bwd(gy, cache), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.gpu
@needs_gpu
def test_relu_parity(dtype, gpu_path, rng):
    x = (rng.standard_normal((2, 3, 5, 4)) + 0.01).astype(dtype)
    y, mask = ops.relu_forward(x)
    y_g, mask_g = ops.relu_forward(on_gpu(x))
    np.testing.assert_array_equal(to_host(y_g), y)
    np.testing.assert_array_equal(to_host(mask_g), mask)
    gy = rng.standard_normal(x.shape).astype(dtype)
    np.testing.assert_array_equal(
        to_host(ops.relu_backward(on_gpu(gy), mask_g)), ops.relu_backward(gy, mask)
    )


@pytest.mark.parametrize("kind", losses.TV_KINDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.gpu
@needs_gpu
def test_tv_parity(kind, dtype, gpu_path, rng):
    x = (rng.permutation(9 * 11 * 3).reshape(9, 11, 3) * 0.37).astype(dtype)
    value, g = losses.tv_loss(x, kind)
    value_g, g_g = losses.tv_loss(on_gpu(x), kind)
    assert value_g == pytest.approx(value, rel=1e-6 if dtype == np.float32 else 1e-12)
    assert_close32(g_g, g, rtol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.gpu
@needs_gpu
def test_im2col_col2im_parity(rng):
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    cols = im2col(x, 3, 2, 2, 1)
    cols_g = im2col(on_gpu(x), 3, 2, 2, 1)
    np.testing.assert_array_equal(to_host(cols_g), cols)
    np.testing.assert_array_equal(to_host(col2im(cols_g, 7, 6, 2, 1)), col2im(cols, 7, 6, 2, 1))


@pytest.mark.parametrize("kind", list(losses.GRAMS))
@pytest.mark.gpu
@needs_gpu
def test_gram_and_style_loss_parity(kind, rng):
    F = rng.standard_normal((1, 8, 6, 5)).astype(np.float32)
    A = losses.gram_variant(rng.standard_normal(F.shape).astype(np.float32), kind)
    assert_close32(losses.gram_variant(on_gpu(F), kind), losses.gram_variant(F, kind))
    value, g = losses.style_loss(F, A, kind, 0.3)
    value_g, g_g = losses.style_loss(on_gpu(F), on_gpu(A), kind, 0.3)
    assert value_g == pytest.approx(value, rel=1e-4)
    assert_close32(g_g, g, rtol=1e-4)


@pytest.mark.parametrize("norm", losses.CONTENT_NORMS)
@pytest.mark.gpu
@needs_gpu
def test_content_loss_parity(norm, rng):
    F, P = (rng.standard_normal((1, 6, 5, 4)).astype(np.float32) for _ in range(2))
    value, g = losses.content_loss(F, P, norm)
    value_g, g_g = losses.content_loss(on_gpu(F), on_gpu(P), norm)
    assert value_g == pytest.approx(value, rel=1e-5)
    assert_close32(g_g, g, rtol=1e-6)


@pytest.mark.parametrize("pooling", ["avg", "max"])
@pytest.mark.gpu
@needs_gpu
def test_vgg_features_and_backward_parity(pooling, gpu_path, rng):
    net = net_for("vgg16")
    net_g = net.to("gpu")
    taps = ["input", "conv1_2", "block2_conv1", "block3_pool", "block4_conv2", "block5_conv1"]
    y = net.preprocess(images()[0].astype(np.float64))
    feats, tape = net.features(y, taps, pooling)
    feats_g, tape_g = net_g.features(on_gpu(y), taps, pooling)
    tap_grads = {t: rng.standard_normal(feats[t].shape).astype(np.float32) for t in taps}
    for t in taps:
        assert rel_err(feats_g[t], feats[t]) < 1e-4, t
    gx = net.backward(tape, tap_grads)
    gx_g = net_g.backward(tape_g, {t: on_gpu(g) for t, g in tap_grads.items()})
    assert rel_err(gx_g, gx) < 1e-4


@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.gpu
@needs_gpu
def test_every_preset_value_and_gradient_parity(preset, gpu_path):
    net = net_for(PRESETS[preset].arch)
    content, style = images()
    x = np.random.default_rng(1).uniform(0, 255, content.shape)
    obj = Objective(net, content, style, preset=preset)
    obj_g = Objective(net.to("gpu"), content, style, preset=preset)
    value, grad = obj.value_and_grad(x)
    value_g, grad_g = obj_g.value_and_grad(x)
    assert isinstance(grad_g, np.ndarray) and grad_g.dtype == np.float64
    assert value_g == pytest.approx(value, rel=1e-4)
    assert rel_err(grad_g, grad) < 1e-4
    for term in ("content", "style", "tv"):
        assert obj_g.last_terms[term] == pytest.approx(
            obj.last_terms[term], rel=1e-4, abs=1e-9 * value
        )
    # On a device array the objective is the host one without the copies: the gradient stays there.
    dvalue, dgrad = obj_g.value_and_grad(on_gpu(x))
    assert backend.get_array_module(dgrad) is not np and dgrad.dtype == np.float64
    assert dvalue == pytest.approx(value_g, rel=1e-6)
    assert rel_err(dgrad, grad_g) < 1e-6


@pytest.mark.parametrize("preset", ["gatys", "cntk"])
@pytest.mark.gpu
@needs_gpu
def test_tiled_objective_parity(preset, gpu_path):
    """The tiled objective (``tiling.py``) on the device: the host's tiled numbers and the device's untiled
    ones, for host and device images; plain and centred Grams, 32-pixel tiles of a non-square image."""
    net = net_for(PRESETS[preset].arch)
    content, style = images((80, 72, 3), (48, 56, 3), seed=3)
    x = np.random.default_rng(2).uniform(0, 255, content.shape)
    value, grad = Objective(net, content, style, preset=preset, tile_size=32).value_and_grad(x)
    tiled_g = Objective(net.to("gpu"), content, style, preset=preset, tile_size=32)
    value_g, grad_g = tiled_g.value_and_grad(x)
    assert isinstance(grad_g, np.ndarray) and grad_g.dtype == np.float64
    assert value_g == pytest.approx(value, rel=1e-4) and rel_err(grad_g, grad) < 1e-4
    dvalue, dgrad = tiled_g.value_and_grad(on_gpu(x))
    assert backend.get_array_module(dgrad) is not np and dgrad.dtype == np.float64
    uvalue, ugrad = Objective(net.to("gpu"), content, style, preset=preset).value_and_grad(
        on_gpu(x)
    )
    assert dvalue == pytest.approx(uvalue, rel=1e-5) and rel_err(dgrad, to_host(ugrad)) < 1e-4


@pytest.mark.gpu
@needs_gpu
def test_in_house_lbfgs_float32_history_on_the_device(monkeypatch):
    """The float32 history of huge images (chunked float64 dot products) on CuPy arrays: the loss still
    falls every iteration and nothing leaves the device."""
    import cupy  # only reached where backend found a GPU

    from minivgg.optim import lbfgs as lbfgs_module

    monkeypatch.setattr(lbfgs_module, "_CHUNK", 1000)  # several chunks even on a small image
    content, style = images()
    obj = Objective(net_for("vgg16").to("gpu"), content, style, preset="gatys")
    seen = []
    res = lbfgs_module.minimize_lbfgs(
        lambda xk: optim.checked(obj, xk),
        on_gpu(content.astype(np.float64)),
        maxiter=5,
        bounds=(0.0, 255.0),
        history=2,
        history_dtype="float32",
        callback=lambda xk: seen.append(obj.last_terms["total"]) and False,
    )
    assert isinstance(res.x, cupy.ndarray) and res.x.dtype == np.float64 and res.nit == 5
    assert all(b < a for a, b in zip(seen, seen[1:]))


@pytest.mark.gpu
@needs_gpu
def test_in_house_lbfgs_on_gpu_keeps_everything_on_the_device():
    import cupy  # only reached where backend found a GPU

    content, style = images()
    obj = Objective(net_for("vgg16").to("gpu"), content, style, preset="gatys")
    seen = []
    x = optim.lbfgs(
        obj,
        on_gpu(content.astype(np.float64)),
        5,
        in_house=True,
        callback=lambda it, xk, terms: seen.append((type(xk), terms["total"])) and False,
    )
    assert isinstance(x, cupy.ndarray) and x.dtype == np.float64
    assert all(t is cupy.ndarray for t, _ in seen)
    losses_seen = [v for _, v in seen]
    assert len(losses_seen) == 5 and all(b < a for a, b in zip(losses_seen, losses_seen[1:]))
    assert float(x.min()) >= 0 and float(x.max()) <= 255


@pytest.mark.parametrize("optimizer", ["lbfgs", "lbfgs-device"])
@pytest.mark.gpu
@pytest.mark.slow
@needs_gpu
def test_transfer_on_gpu(optimizer, tmp_path, small_transfer):
    small_transfer(tmp_path, "--device", "gpu", "--optimizer", optimizer)
