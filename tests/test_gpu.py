"""The GPU path.

- NumPy-vs-CuPy parity (marked ``gpu``, skipped with the reason where CuPy sees no CUDA device): every op
  (through the numba.cuda kernels and through plain CuPy), every loss term, the VGG forward/backward,
  every preset's objective, the on-device objective and optimiser, and ``transfer --device gpu``.
- The on-device L-BFGS (``minivgg.optim_device``) on NumPy, which runs everywhere: a convex quadratic
  (against the solution and scipy's L-BFGS-B), scipy's stopping rules, the real objective with random
  weights (loss falls at every iteration, pixels stay in bounds), and ``--optimizer lbfgs-device``.
"""
import json

import numpy as np
import pytest
from scipy.optimize import minimize

from minivgg import backend, losses, ops
from minivgg.backend import gpu_available, to_host
from minivgg.im2col import col2im, im2col
from minivgg.objective import PRESETS, Objective
from minivgg.optim import NonFiniteError
from minivgg.optim_device import DeviceObjective, lbfgs_device, minimize_lbfgs
from minivgg.vgg import random_vgg

GPU = gpu_available()
needs_gpu = pytest.mark.skipif(not GPU, reason="no CUDA GPU: CuPy is not installed or sees no device, "
                                               "so the NumPy-vs-CuPy parity tests cannot run here")
rng = np.random.default_rng(0)


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
    return r.integers(0, 256, shape).astype(np.uint8), r.integers(0, 256, style_shape).astype(np.uint8)


_NETS = {}


def net_for(arch):
    """Random-weight float32 networks, built once per test session."""
    if arch not in _NETS:
        _NETS[arch] = random_vgg(arch, seed=0)
    return _NETS[arch]


# ====================================================================================== parity

@pytest.fixture(params=["kernels", "cupy"])
def gpu_path(request, monkeypatch):
    """Run the GPU side through the numba.cuda kernels, or with them switched off (plain CuPy)."""
    if request.param == "cupy":
        monkeypatch.setattr(backend, "_cuda_kernels", False)
    elif backend.cuda_kernels_for(on_gpu(np.zeros(1))) is None:
        pytest.skip(f"numba.cuda kernels unavailable: {backend._cuda_kernels_error}")
    return request.param


CONV_GRID = [((1, 3, 8, 8), (4, 3, 3, 3), 1, 1), ((2, 2, 7, 6), (3, 2, 3, 3), 1, 1),
             ((1, 2, 8, 9), (4, 2, 3, 3), 2, 1), ((1, 3, 6, 7), (2, 3, 2, 2), 1, 0),
             ((2, 1, 9, 7), (2, 1, 5, 3), 3, 2), ((1, 64, 20, 18), (32, 64, 3, 3), 1, 1)]


@pytest.mark.parametrize("xs,ws,stride,pad", CONV_GRID)
@pytest.mark.gpu
@needs_gpu
def test_conv2d_parity(xs, ws, stride, pad):
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
def test_pool_parity(shape, pool, dtype, gpu_path):
    fwd, bwd = {"avg": (ops.avg_pool2d_forward, ops.avg_pool2d_backward),
                "max": (ops.max_pool2d_forward, ops.max_pool2d_backward)}[pool]
    x = rng.permutation(int(np.prod(shape))).reshape(shape).astype(dtype)  # distinct values: no ties
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
def test_relu_parity(dtype, gpu_path):
    x = (rng.standard_normal((2, 3, 5, 4)) + 0.01).astype(dtype)
    y, mask = ops.relu_forward(x)
    y_g, mask_g = ops.relu_forward(on_gpu(x))
    np.testing.assert_array_equal(to_host(y_g), y)
    np.testing.assert_array_equal(to_host(mask_g), mask)
    gy = rng.standard_normal(x.shape).astype(dtype)
    np.testing.assert_array_equal(to_host(ops.relu_backward(on_gpu(gy), mask_g)), ops.relu_backward(gy, mask))


@pytest.mark.parametrize("kind", losses.TV_KINDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.gpu
@needs_gpu
def test_tv_parity(kind, dtype, gpu_path):
    x = (rng.permutation(9 * 11 * 3).reshape(9, 11, 3) * 0.37).astype(dtype)
    value, g = losses.tv_loss(x, kind)
    value_g, g_g = losses.tv_loss(on_gpu(x), kind)
    assert value_g == pytest.approx(value, rel=1e-6 if dtype == np.float32 else 1e-12)
    assert_close32(g_g, g, rtol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.gpu
@needs_gpu
def test_im2col_col2im_parity():
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    cols = im2col(x, 3, 2, 2, 1)
    cols_g = im2col(on_gpu(x), 3, 2, 2, 1)
    np.testing.assert_array_equal(to_host(cols_g), cols)
    np.testing.assert_array_equal(to_host(col2im(cols_g, 7, 6, 2, 1)), col2im(cols, 7, 6, 2, 1))


@pytest.mark.parametrize("kind", list(losses.GRAMS))
@pytest.mark.gpu
@needs_gpu
def test_gram_and_style_loss_parity(kind):
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
def test_content_loss_parity(norm):
    F, P = (rng.standard_normal((1, 6, 5, 4)).astype(np.float32) for _ in range(2))
    value, g = losses.content_loss(F, P, norm)
    value_g, g_g = losses.content_loss(on_gpu(F), on_gpu(P), norm)
    assert value_g == pytest.approx(value, rel=1e-5)
    assert_close32(g_g, g, rtol=1e-6)


@pytest.mark.parametrize("pooling", ["avg", "max"])
@pytest.mark.gpu
@needs_gpu
def test_vgg_features_and_backward_parity(pooling, gpu_path):
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
        assert obj_g.last_terms[term] == pytest.approx(obj.last_terms[term], rel=1e-4, abs=1e-9 * value)
    # The on-device objective is the host one without the copies.
    dvalue, dgrad = DeviceObjective(obj_g).value_and_grad(on_gpu(x))
    assert dvalue == pytest.approx(value_g, rel=1e-6)
    assert rel_err(dgrad, grad_g) < 1e-6


@pytest.mark.gpu
@needs_gpu
def test_lbfgs_device_on_gpu_keeps_everything_on_the_device():
    import cupy  # only reached where backend found a GPU
    content, style = images()
    obj = DeviceObjective(Objective(net_for("vgg16").to("gpu"), content, style, preset="gatys"))
    seen = []
    x = lbfgs_device(obj, on_gpu(content.astype(np.float64)), 5,
                     callback=lambda it, xk, terms: seen.append((type(xk), terms["total"])) and False)
    assert isinstance(x, cupy.ndarray) and x.dtype == np.float64
    assert all(t is cupy.ndarray for t, _ in seen)
    losses_seen = [v for _, v in seen]
    assert len(losses_seen) == 5 and all(b < a for a, b in zip(losses_seen, losses_seen[1:]))
    assert float(x.min()) >= 0 and float(x.max()) <= 255


@pytest.mark.parametrize("optimizer", ["lbfgs", "lbfgs-device"])
@pytest.mark.gpu
@needs_gpu
def test_transfer_on_gpu(optimizer, tmp_path):
    run_transfer_cli(tmp_path, "--device", "gpu", "--optimizer", optimizer)


# ===================================================================== on-device L-BFGS (NumPy)

def quadratic(n=60, seed=0):
    r = np.random.default_rng(seed)
    A = r.standard_normal((n, n))
    A = A @ A.T / n + 0.1 * np.eye(n)
    b = r.standard_normal(n) * 10
    return (lambda x: (float(0.5 * x @ A @ x - b @ x), A @ x - b)), A, b


def test_lbfgs_minimises_a_convex_quadratic_monotonically():
    fun, A, b = quadratic()
    values = []
    res = minimize_lbfgs(fun, np.zeros(len(b)), maxiter=500, gtol=1e-8, ftol=0,
                         callback=lambda x: values.append(fun(x)[0]) and False)
    x_star = np.linalg.solve(A, b)
    np.testing.assert_allclose(res.x, x_star, atol=1e-6 * np.abs(x_star).max())
    # Armijo steps lower f; near the optimum the decrease can fall below f's rounding.
    assert all(b_ <= a_ for a_, b_ in zip(values, values[1:])) and values[5] < values[0]


def test_lbfgs_with_bounds_matches_scipy_lbfgsb():
    fun, A, b = quadratic(seed=1)
    box = (-1.0, 1.0)
    inside = []
    res = minimize_lbfgs(fun, np.zeros(len(b)), maxiter=500, bounds=box,
                         callback=lambda x: inside.append(bool(x.min() >= -1 and x.max() <= 1)) and False)
    ref = minimize(fun, np.zeros(len(b)), jac=True, method="L-BFGS-B", bounds=[box] * len(b))
    assert all(inside)
    assert res.fun == pytest.approx(ref.fun, rel=1e-7)
    np.testing.assert_allclose(res.x, ref.x, atol=2e-3)


def test_stopping_rules():
    fun, A, b = quadratic(seed=2)
    x0 = np.zeros(len(b))
    res = minimize_lbfgs(fun, x0, maxiter=3)
    assert (res.nit, res.message) == (3, "maxiter reached")
    res = minimize_lbfgs(fun, x0, maxiter=100, maxfun=5)
    assert res.nfev <= 5 and res.message == "maxfun reached"
    res = minimize_lbfgs(fun, np.linalg.solve(A, b), maxiter=100)
    assert (res.nit, res.message) == (0, "projected gradient below gtol")
    res = minimize_lbfgs(fun, x0, maxiter=100, ftol=0.5)
    assert res.nit < 10 and res.message == "relative reduction of f below ftol"
    res = minimize_lbfgs(fun, x0, maxiter=100, callback=lambda x: True)
    assert (res.nit, res.message) == (1, "stopped by callback")
    # At a corner of the box with the gradient pushing outwards, the projected gradient is 0.
    res = minimize_lbfgs(lambda x: (float(x.sum()), np.ones_like(x)), np.full(4, 0.5), maxiter=50, bounds=(0, 1))
    np.testing.assert_array_equal(res.x, 0)
    assert res.message == "projected gradient below gtol"


def test_device_objective_is_the_objective_for_every_preset():
    for preset, p in PRESETS.items():
        side = 32 if preset == "cntk" else 16  # the smallest image each preset's deepest tap allows
        content, style = images((side, side, 3), (side, side + 4, 3), seed=4)
        x = np.random.default_rng(5).uniform(0, 255, content.shape)
        obj = Objective(net_for(p.arch), content, style, preset=preset)
        value, grad = obj.value_and_grad(x)
        dev = DeviceObjective(obj)
        dvalue, dgrad = dev.value_and_grad(x)
        assert dvalue == value, preset
        np.testing.assert_array_equal(dgrad, grad, err_msg=preset)
        assert dev.last_terms == obj.last_terms


def test_lbfgs_device_lowers_the_real_objective_every_iteration():
    content, style = images((24, 32, 3), (32, 32, 3), seed=6)
    obj = DeviceObjective(Objective(net_for("vgg16"), content, style, preset="gatys"))
    x0 = np.random.default_rng(7).uniform(0, 255, content.shape)
    first = obj.value_and_grad(x0)[0]
    seen = []
    x = lbfgs_device(obj, x0, 8, callback=lambda it, xk, terms: seen.append((it, terms["total"], xk.min(), xk.max())))
    assert [s[0] for s in seen] == list(range(1, 9))
    values = [first] + [s[1] for s in seen]
    assert all(b < a for a, b in zip(values, values[1:]))
    assert values[-1] < 0.5 * values[0]
    assert min(s[2] for s in seen) >= 0 and max(s[3] for s in seen) <= 255
    assert x.shape == x0.shape and x.dtype == np.float64


def test_lbfgs_device_rounds_restart_and_report():
    content, style = images((24, 24, 3), (24, 24, 3), seed=8)
    obj = DeviceObjective(Objective(net_for("vgg16"), content, style, preset="keras"))
    rounds, its = [], []
    lbfgs_device(obj, content.astype(np.float64), 6, round_evals=3, bounds=None,
                 callback=lambda it, xk, terms: its.append(it) and False,
                 round_callback=lambda rnd, xk: rounds.append(rnd), start_iteration=10)
    assert rounds == [1, 2] and its[0] == 11


def test_lbfgs_device_raises_on_non_finite_loss():
    class Exploding:
        last_terms = None

        def value_and_grad(self, x):
            self.last_terms = {"content": 1.0, "style": float("nan"), "tv": 0.0, "total": float("nan")}
            return float("nan"), np.zeros_like(x)

    with pytest.raises(NonFiniteError, match="style"):
        lbfgs_device(Exploding(), np.zeros((4, 4, 3)), 3)


def run_transfer_cli(tmp_path, *extra):
    from PIL import Image

    from minivgg.cli import main
    from synth import write_keras_h5
    content, style = images((40, 48, 3), (40, 40, 3), seed=9)
    Image.fromarray(content).save(tmp_path / "c.png")
    Image.fromarray(style).save(tmp_path / "s.png")
    weights = write_keras_h5(tmp_path / "vgg16.h5", "vgg16")
    out, log = tmp_path / "out.png", tmp_path / "log.json"
    assert main([str(a) for a in ("transfer", tmp_path / "c.png", tmp_path / "s.png", "-o", out, "--weights",
                                  weights, "--size", 40, "--iters", 4, "--log", log, "--quiet", *extra)]) == 0
    its = json.loads(log.read_text())["iterations"]
    assert [r["iteration"] for r in its] == [1, 2, 3, 4]
    assert all(b["loss"] <= a["loss"] for a, b in zip(its, its[1:]))
    assert np.asarray(Image.open(out)).shape == (33, 40, 3)
    return its


def test_transfer_with_lbfgs_device_on_cpu(tmp_path):
    run_transfer_cli(tmp_path, "--optimizer", "lbfgs-device")
