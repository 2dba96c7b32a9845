"""The Numba CPU kernels against the NumPy reference code they replace (same op, kernels switched
off through ``backend._cpu_kernels``): Winograd transforms, ReLU, pools, odd sizes and ties."""
import numpy as np
import pytest

from minivgg import backend, ops, winograd

pytest.importorskip("numba")


@pytest.fixture
def both_paths(monkeypatch):
    """Run a thunk with the kernels and with the NumPy reference; return both results."""
    if backend.cpu_kernels_for(np.zeros(1, np.float32)) is None:
        pytest.skip("minivgg._kernels.cpu is not importable (package not installed)")

    kernels = backend._cpu_kernels

    def run(thunk):
        fast = thunk()
        backend._cpu_kernels = False
        try:
            ref = thunk()
        finally:
            backend._cpu_kernels = kernels
        return fast, ref
    return run


rng = np.random.default_rng(0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 3, 8, 8), (2, 4, 7, 5), (1, 2, 1, 1), (1, 5, 9, 12)])
@pytest.mark.parametrize("adjoint", [False, True])
def test_winograd(both_paths, monkeypatch, dtype, shape, adjoint):
    monkeypatch.setattr(winograd, "_BAND_ELEMENTS", 16 * 5 * 2 * 6)  # several bands
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((shape[1], shape[1], 3, 3)).astype(dtype)
    acc = rng.standard_normal(shape).astype(dtype)
    fast, ref = both_paths(lambda: winograd.conv3x3_same(x, w, adjoint))
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(fast, ref, rtol=tol, atol=tol)
    fast, ref = both_paths(lambda: winograd.conv3x3_same(x, w, adjoint, accumulate_into=acc.copy()))
    np.testing.assert_allclose(fast, ref, rtol=tol, atol=tol)
    b = rng.standard_normal(shape[1]).astype(dtype)  # the bias the kernel's output transform adds
    fast, ref = both_paths(lambda: winograd.conv3x3_same(x, w, adjoint, bias=b))
    np.testing.assert_allclose(fast, ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(fast, winograd.conv3x3_same(x, w, adjoint) + b.reshape(1, -1, 1, 1), rtol=tol, atol=tol)
    fast, ref = both_paths(lambda: winograd.conv3x3_same(x, w, adjoint, accumulate_into=acc.copy(), bias=b))
    np.testing.assert_allclose(fast, ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 3, 6, 6), (2, 2, 7, 5), (1, 1, 3, 2)])
def test_pools_and_relu(both_paths, dtype, shape):
    x = rng.standard_normal(shape).astype(dtype)
    x[0, 0, 0, :2] = 1.0  # a tie in the first window: first maximum wins on both paths
    for fwd, bwd in ((ops.avg_pool2d_forward, ops.avg_pool2d_backward), (ops.max_pool2d_forward, ops.max_pool2d_backward)):
        (yf, cf), (yr, cr) = both_paths(lambda: fwd(x))
        np.testing.assert_array_equal(yf, yr)
        if fwd is ops.max_pool2d_forward:
            np.testing.assert_array_equal(cf[0], cr[0])
        g = rng.standard_normal(yf.shape).astype(dtype)
        gf, gr = both_paths(lambda: bwd(g, cf))
        np.testing.assert_array_equal(gf, gr)
    (yf, mf), (yr, mr) = both_paths(lambda: ops.relu_forward(x))
    np.testing.assert_array_equal(yf, yr)
    np.testing.assert_array_equal(mf, mr)
    (yf, mf), (yr, mr) = both_paths(lambda: ops.relu_forward(x.copy(), inplace=True))
    np.testing.assert_array_equal(yf, yr)
    np.testing.assert_array_equal(mf, mr)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 3, 6, 6), (2, 2, 7, 5), (1, 1, 1, 3)])
@pytest.mark.parametrize("pack", [False, True])
def test_relu_inplace_paths(both_paths, dtype, shape, pack):
    """The in-place ReLU of the lean path: packed masks written and read without unpacking."""
    x = rng.standard_normal(shape).astype(dtype)
    x.ravel()[::3] = 0.0  # exact zeros: masked out on both paths
    (yf, cf), (yr, cr) = both_paths(lambda: ops.relu_forward(x.copy(), inplace=True, pack=pack))
    np.testing.assert_array_equal(yf, yr)
    if pack:
        assert cf[0] == cr[0] == "packed" and cf[2] == cr[2] == x.shape
        np.testing.assert_array_equal(cf[1], cr[1])
    else:
        np.testing.assert_array_equal(cf, cr)
    g = rng.standard_normal(shape).astype(dtype)
    gf, gr = both_paths(lambda: ops.relu_backward(g.copy(), cf, inplace=True))
    np.testing.assert_array_equal(gf, gr)
    np.testing.assert_array_equal(gf, np.where(x > 0, g, 0))
