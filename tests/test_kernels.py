"""The backends in ``minivgg._kernels`` and the dispatch between them.

- Every backend module (``reference``, ``cpu``, and ``cuda_ops`` where numba-cuda imports) defines
  exactly the ops of ``OPS`` with the same signatures.
- ``dispatch.backend_for`` picks the reference for arrays the kernels do not take and inside
  ``reference_only()``.
- The Numba CPU kernels against the NumPy reference they replace (same op, once as dispatched and
  once inside ``dispatch.reference_only()``): Winograd transforms, ReLU, pools, the one-pass TV loss,
  odd sizes and ties.
"""

import importlib
import inspect
import threading

import numpy as np
import pytest

from minivgg import ops
from minivgg._kernels import OPS, reference
from minivgg.engine import dispatch, winograd
from minivgg.engine.masks import PackedMask
from minivgg.style import losses

# What a backend may define besides OPS (documented in kernels/__init__.py).
EXTRAS = {
    "reference": set(),
    "cpu": {
        "winograd4_input",
        "winograd4_output",
        "winograd4_input_adjoint",
        "winograd4_output_adjoint",
        "tv_loss",
    },
    "cuda_ops": {"tv_loss"},
}


def _backend(name):
    try:
        return importlib.import_module(f"minivgg._kernels.{name}")
    except ImportError as exc:  # numba or numba-cuda not installed
        pytest.skip(f"minivgg._kernels.{name} does not import here ({exc})")


def _own_functions(module):
    return {
        n
        for n, v in vars(module).items()
        if not n.startswith("_")
        and callable(v)
        and getattr(v, "__module__", None) == module.__name__
    }


@pytest.mark.parametrize("name", list(EXTRAS))
def test_every_backend_implements_exactly_ops_with_the_same_signatures(name):
    module = _backend(name)
    assert _own_functions(module) - EXTRAS[name] == set(OPS)
    for op in OPS:
        assert inspect.signature(getattr(module, op)) == inspect.signature(
            getattr(reference, op)
        ), f"{name}.{op}"


# ------------------------------------------------------------------------------------ dispatch


def test_backend_for_falls_back_to_the_reference(rng):
    x = rng.standard_normal((1, 2, 4, 6)).astype(np.float32)
    assert dispatch.backend_for(x[:, :, :, ::2]) is reference  # not C-contiguous
    assert dispatch.backend_for(x.astype(np.int32)) is reference  # not float32/float64
    assert dispatch.backend_for(x.astype(np.float16)) is reference
    assert dispatch.backend_for(x, x.astype(np.int8)) is reference  # one bad argument is enough
    assert dispatch.cuda_kernels(x) is None  # NumPy never reaches CUDA
    with dispatch.reference_only():
        assert dispatch.backend_for(x) is reference
        assert dispatch.cpu_kernels(x) is None
        with dispatch.reference_only():
            pass
        assert dispatch.backend_for(x) is reference  # a nested block does not switch it back on
    cpu = dispatch.cpu_kernels(np.zeros(1, np.float32))
    assert dispatch.backend_for(x) is (cpu or reference)
    assert dispatch.backend_for(x.astype(np.float64)) is (cpu or reference)


def test_reference_only_is_per_thread():
    x = np.zeros((1, 1, 2, 2), np.float32)
    expected = dispatch.backend_for(x)
    seen = []
    with dispatch.reference_only():
        t = threading.Thread(target=lambda: seen.append(dispatch.backend_for(x)))
        t.start()
        t.join()
    assert seen == [expected]


def test_kernel_info_names_the_cpu_kernels():
    info = dispatch.kernel_info()
    cpu = dispatch.cpu_kernels(np.zeros(1, np.float32))
    if cpu is not None:
        assert info["cpu"] == "numba"
    else:
        assert info["cpu"].startswith("NumPy reference")


# ------------------------------------------------------------------- Numba CPU vs the reference


@pytest.fixture
def both_paths():
    """Run a thunk with the kernels and with the NumPy reference; return both results."""
    if dispatch.cpu_kernels(np.zeros(1, np.float32)) is None:
        pytest.skip(f"minivgg._kernels.cpu is not usable: {dispatch._errors.get('cpu')}")

    def run(thunk):
        fast = thunk()
        with dispatch.reference_only():
            ref = thunk()
        return fast, ref

    return run


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 3, 8, 8), (2, 4, 7, 5), (1, 2, 1, 1), (1, 5, 9, 12)])
@pytest.mark.parametrize("adjoint", [False, True])
@pytest.mark.parametrize("transposed_from", [0, 10**9])  # F(4x4)'s two backward-data routes
def test_winograd(both_paths, monkeypatch, rng, dtype, shape, adjoint, transposed_from):
    monkeypatch.setattr(winograd, "_BAND_ELEMENTS", 16 * 5 * 2 * 6)  # several bands
    monkeypatch.setattr(winograd, "_TRANSPOSED_ADJOINT_FROM", transposed_from)
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
    np.testing.assert_allclose(
        fast, winograd.conv3x3_same(x, w, adjoint) + b.reshape(1, -1, 1, 1), rtol=tol, atol=tol
    )
    fast, ref = both_paths(
        lambda: winograd.conv3x3_same(x, w, adjoint, accumulate_into=acc.copy(), bias=b)
    )
    np.testing.assert_allclose(fast, ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("transposed_from", [0, 10**9])
def test_conv_gradient_check_on_both_backward_routes(monkeypatch, rng, transposed_from):
    # conv2d's input gradient by finite differences, through F(4x4)'s transposed backward-data and
    # through the forward routine on the flipped kernel's U
    from minivgg import gradcheck as gc

    monkeypatch.setattr(winograd, "_TRANSPOSED_ADJOINT_FROM", transposed_from)
    x, w, b = (
        rng.standard_normal((1, 5, 9, 7)),
        rng.standard_normal((6, 5, 3, 3)),
        rng.standard_normal(6),
    )
    res = gc.check_vjp(
        lambda a: ops.conv2d_forward(a, w, b), lambda g, c: ops.conv2d_backward(g, c)[0], (x,)
    )
    assert res.passed and res.error <= 1e-6, res.report()


@pytest.mark.parametrize("adjoint", [False, True])
def test_winograd_float32_error_of_f4_and_f2_against_float64(both_paths, rng, adjoint):
    # The Numba path is F(4x4, 3x3), the array path F(2x2, 3x3): in float32, at VGG's channel counts,
    # both stay within 1e-5 of the float64 result's range (F(4x4)'s constants cost ~20x F(2x2)'s ~3e-7).
    x = rng.standard_normal((1, 64, 18, 22))
    w = rng.standard_normal((64, 64, 3, 3)) / 24.0
    exact = winograd.conv3x3_same(x, w, adjoint)
    f4, f2 = both_paths(
        lambda: winograd.conv3x3_same(x.astype(np.float32), w.astype(np.float32), adjoint)
    )
    scale = np.abs(exact).max()
    err4, err2 = np.abs(f4 - exact).max() / scale, np.abs(f2 - exact).max() / scale
    assert err4 < 1e-5 and err2 < 1e-5, (err4, err2)
    assert not np.array_equal(f4, f2)  # two different factorisations really ran


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 3, 6, 6), (2, 2, 7, 5), (1, 1, 3, 2)])
def test_pools_and_relu(both_paths, rng, dtype, shape):
    x = rng.standard_normal(shape).astype(dtype)
    x[0, 0, 0, :2] = 1.0  # a tie in the first window: first maximum wins on both paths
    for fwd, bwd in (
        (ops.avg_pool2d_forward, ops.avg_pool2d_backward),
        (ops.max_pool2d_forward, ops.max_pool2d_backward),
    ):
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
@pytest.mark.parametrize("shape", [(2, 2, 1), (7, 9, 3), (2, 5, 3), (33, 17, 3)])
@pytest.mark.parametrize("kind", losses.TV_KINDS)
def test_tv_loss_in_one_pass(both_paths, rng, dtype, shape, kind):
    x = (rng.standard_normal(shape) * 40).astype(dtype)
    x[0, :2] = x[1, :2]  # zero differences: the subgradients of |d| and s^0.25 at 0
    (vf, gf), (vr, gr) = both_paths(lambda: losses.tv_loss(x, kind))
    assert gf.dtype == gr.dtype == dtype and gf.shape == shape
    np.testing.assert_allclose(vf, vr, rtol=1e-12 if dtype == np.float64 else 1e-6)
    tol = (
        1e-12 if dtype == np.float64 else 1e-6
    )  # of the largest element: sums of up to 6 terms cancel
    np.testing.assert_allclose(gf, gr, rtol=tol, atol=tol * float(np.abs(gr).max()))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 3, 6, 6), (2, 2, 7, 5), (1, 1, 1, 3)])
@pytest.mark.parametrize("pack", [False, True])
def test_relu_inplace_paths(both_paths, rng, dtype, shape, pack):
    """The in-place ReLU of the lean path: packed masks written and read without unpacking."""
    x = rng.standard_normal(shape).astype(dtype)
    x.ravel()[::3] = 0.0  # exact zeros: masked out on both paths
    (yf, cf), (yr, cr) = both_paths(lambda: ops.relu_forward(x.copy(), inplace=True, pack=pack))
    np.testing.assert_array_equal(yf, yr)
    if pack:
        assert (
            isinstance(cf, PackedMask)
            and isinstance(cr, PackedMask)
            and cf.shape == cr.shape == x.shape
        )
        np.testing.assert_array_equal(cf.bits, cr.bits)
    else:
        np.testing.assert_array_equal(cf, cr)
    g = rng.standard_normal(shape).astype(dtype)
    gf, gr = both_paths(lambda: ops.relu_backward(g.copy(), cf, inplace=True))
    np.testing.assert_array_equal(gf, gr)
    np.testing.assert_array_equal(gf, np.where(x > 0, g, 0))


@pytest.mark.parametrize("block", [8, 13, 64])
def test_packed_relu_backward_unpacks_block_by_block(both_paths, rng, monkeypatch, block):
    """The Numba in-place backward unpacks a packed mask ``_UNPACK_BLOCK`` elements at a time; any
    block size (a multiple of 8 or not) gives the reference's gradient."""
    cpu = _backend("cpu")
    monkeypatch.setattr(cpu, "_UNPACK_BLOCK", block)
    x = rng.standard_normal((1, 3, 7, 5)).astype(np.float32)  # 105 elements
    _, mask = ops.relu_forward(x.copy(), inplace=True, pack=True)
    g = rng.standard_normal(x.shape).astype(np.float32)
    gf, gr = both_paths(lambda: ops.relu_backward(g.copy(), mask, inplace=True))
    np.testing.assert_array_equal(gf, gr)
    np.testing.assert_array_equal(gf, np.where(x > 0, g, 0))


# ------------------------------------------------------------------ the GEMMs on scipy's OpenBLAS


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blas_products_match_numpy_and_write_in_place(rng, dtype):
    from minivgg._kernels import blas

    tol = 1e-5 if dtype == np.float32 else 1e-13
    a, b = rng.standard_normal((7, 5)).astype(dtype), rng.standard_normal((5, 9)).astype(dtype)
    out = np.full((7, 9), np.nan, dtype)
    assert blas.gemm(a, b, out) is out
    np.testing.assert_allclose(out, a @ b, rtol=tol, atol=tol)
    U, V = (
        rng.standard_normal((16, 4, 3)).astype(dtype),
        rng.standard_normal((16, 3, 6)).astype(dtype),
    )
    M = np.full((16, 4, 6), np.nan, dtype)
    assert blas.matmul(U, V, M) is M
    np.testing.assert_allclose(M, U @ V, rtol=tol, atol=tol)
    np.testing.assert_allclose(blas.matmul(a, b), a @ b, rtol=tol, atol=tol)
    F = rng.standard_normal((6, 50)).astype(dtype)
    G = blas.gram(F, 0.25)
    assert G.flags.c_contiguous and np.array_equal(G, G.T)  # the mirrored triangle is exact
    np.testing.assert_allclose(G, 0.25 * F @ F.T, rtol=tol, atol=tol)
    strided = np.asfortranarray(a)  # not C-contiguous: numpy's matmul, same answer
    np.testing.assert_allclose(blas.gemm(strided, b), a @ b, rtol=tol, atol=tol)


def test_scipy_blas_first_is_recorded():
    """The engine's GEMMs run on scipy's OpenBLAS, loaded after minivgg's idle-thread defaults; only a
    script that imported scipy.linalg before minivgg keeps a spinning pool (``minivgg doctor`` says so)."""
    import os
    import subprocess
    import sys

    code = (
        "import sys\nif sys.argv[1] == 'numpy': import numpy\nif sys.argv[1] == 'scipy': import scipy.linalg\n"
        "import minivgg\nprint(minivgg.NUMPY_FIRST, minivgg.SCIPY_BLAS_FIRST)"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OPENBLAS_THREAD_TIMEOUT", "OMP_WAIT_POLICY")
    }
    run = lambda first: subprocess.run(
        [sys.executable, "-c", code, first], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert run("none") == ["False", "False"]
    assert run("numpy") == ["True", "False"]
    assert run("scipy") == ["True", "True"]
