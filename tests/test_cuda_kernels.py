"""The numba.cuda kernels (``kernels/cuda_ops.py``: the ops of ``OPS`` and the TV loss) against their
references (``minivgg._kernels.reference``, ``minivgg.style.losses.tv_loss``): values, gradients, caches,
bool and bit-packed ReLU masks, odd sizes, ties, NaNs.

The CUDA simulator must be on before ``numba.cuda`` is first imported, and it must not be on in a
process that drives a real GPU, so this module re-runs itself in subprocesses:

- ``MINIVGG_CUDA_TEST_MODE=sim`` with ``NUMBA_ENABLE_CUDASIM=1``: the kernels run on NumPy arrays
  in the simulator (how CI, which has no GPU, tests them);
- ``MINIVGG_CUDA_TEST_MODE=ptx``: every kernel is compiled by NVVM to PTX for sm_80 with the exact
  argument types its wrapper passes, and float32 kernels are checked for float64 arithmetic (which the
  simulator cannot see); skipped with the reason when no CUDA toolchain (libnvvm + libnvrtc) is found.

The collecting process runs the two subprocesses, and on a GPU machine also runs the same kernel
checks in-process on CuPy arrays.
"""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minivgg import ops
from minivgg.engine import backend, dispatch
from minivgg.engine.masks import PackedMask
from minivgg.style import losses

MODE = os.environ.get(
    "MINIVGG_CUDA_TEST_MODE"
)  # "sim" / "ptx" in the subprocesses, None when collecting
HAVE_NUMBA_CUDA = importlib.util.find_spec("numba_cuda") is not None
NO_NUMBA_CUDA = "numba-cuda is not installed (pip install 'minivgg[test]' or 'minivgg[gpu]')"
if HAVE_NUMBA_CUDA and importlib.util.find_spec("minivgg._kernels") is None:
    HAVE_NUMBA_CUDA = False
    NO_NUMBA_CUDA = "minivgg is not installed, so kernels/ is not importable as minivgg._kernels (pip install -e .)"


# ------------------------------------------------------------------------------ the subprocesses


def _run_self(mode: str, **env):
    """Run this file under pytest in a fresh interpreter with ``mode``; returns (rc, output)."""
    full_env = {**os.environ, "MINIVGG_CUDA_TEST_MODE": mode, **env}
    full_env.pop("PYTEST_ADDOPTS", None)
    # cwd = tests/: with the repository root on sys.path, `minivgg` would be the source tree,
    # which lacks the `minivgg._kernels` mapping an install provides.
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(Path(__file__).resolve()),
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
        ],
        cwd=Path(__file__).parent,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return proc.returncode, proc.stdout + proc.stderr


if MODE is None:

    @pytest.mark.slow
    @pytest.mark.skipif(not HAVE_NUMBA_CUDA, reason=NO_NUMBA_CUDA)
    def test_kernels_under_simulator():
        rc, out = _run_self("sim", NUMBA_ENABLE_CUDASIM="1")
        assert rc == 0, f"simulator run failed (exit {rc}):\n{out[-6000:]}"
        assert re.search(r"\d+ passed", out) and "skipped" not in out.splitlines()[-1], out[-3000:]

    @pytest.mark.slow
    @pytest.mark.skipif(not HAVE_NUMBA_CUDA, reason=NO_NUMBA_CUDA)
    def test_kernels_compile_to_ptx():
        rc, out = _run_self("ptx", NUMBA_ENABLE_CUDASIM="0")
        assert rc == 0, f"PTX compilation failed (exit {rc}):\n{out[-6000:]}"
        if "passed" not in out.splitlines()[-1]:
            reason = re.search(r"SKIPPED \[\d+\] [^:]+:\d+: (.*)", out)
            pytest.skip(reason.group(1) if reason else out.splitlines()[-1])


# ----------------------------------------------------------------------------- the kernel checks

KERNEL_MODE = MODE == "sim" or (MODE is None and HAVE_NUMBA_CUDA and backend.gpu_available())

if KERNEL_MODE:
    from minivgg._kernels import cuda_ops as K
    from minivgg._kernels import reference as R

    def dev(a):
        """Kernel input: the NumPy array itself in the simulator, a CuPy copy on a GPU."""
        return a if MODE == "sim" else backend.to_device(a, "gpu")

    host = backend.to_host

    def same_buffer(a, b):
        return bool(backend.get_array_module(a).shares_memory(a, b))

    DTYPES = [np.float32, np.float64]
    POOL_SHAPES = [(1, 1, 2, 2), (2, 3, 5, 7), (1, 2, 6, 4), (1, 1, 3, 9)]

    def close(a, b, dtype, rtol32=1e-6, rtol64=1e-13):
        rtol = rtol32 if dtype == np.float32 else rtol64
        np.testing.assert_allclose(
            host(a), b, rtol=rtol, atol=rtol * max(1.0, float(np.nanmax(np.abs(b))))
        )

    def test_simulator_is_on_exactly_in_sim_mode():
        from numba.core import config

        assert bool(config.ENABLE_CUDASIM) == (MODE == "sim")

    @pytest.mark.parametrize("shape", POOL_SHAPES)
    @pytest.mark.parametrize("dtype", DTYPES)
    def test_max_pool(shape, dtype, rng):
        # Few distinct values: many ties, which must go to the first maximum in row-major order.
        x = rng.integers(-2, 3, shape).astype(dtype)
        y, (idx, xshape) = K.max_pool2d_forward(dev(x))
        y_ref, (idx_ref, _) = R.max_pool2d_forward(x)
        assert host(y).dtype == dtype and host(idx).dtype == np.uint8 and tuple(xshape) == shape
        np.testing.assert_array_equal(host(y), y_ref)
        np.testing.assert_array_equal(host(idx), idx_ref)
        gy = rng.standard_normal(y_ref.shape).astype(dtype)
        gx = K.max_pool2d_backward(dev(gy), (idx, xshape))
        np.testing.assert_array_equal(host(gx), R.max_pool2d_backward(gy, (idx_ref, shape)))

    def test_max_pool_nan_as_the_reference(rng):
        x = rng.standard_normal((1, 2, 4, 4)).astype(np.float32)
        x[0, 0, 1, 1] = np.nan  # a later corner
        x[0, 1, 2, 2] = x[0, 1, 3, 2] = np.nan  # the first corner and a later one
        x[0, 1, 0, 1] = np.nan
        y, (idx, _) = K.max_pool2d_forward(dev(x))
        y_ref, (idx_ref, _) = R.max_pool2d_forward(x)
        np.testing.assert_array_equal(host(y), y_ref)  # NaNs compare equal here
        np.testing.assert_array_equal(host(idx), idx_ref)

    @pytest.mark.parametrize("shape", POOL_SHAPES)
    @pytest.mark.parametrize("dtype", DTYPES)
    def test_avg_pool(shape, dtype, rng):
        x = rng.standard_normal(shape).astype(dtype)
        y, xshape = K.avg_pool2d_forward(dev(x))
        y_ref, _ = R.avg_pool2d_forward(x)
        close(y, y_ref, dtype)
        gy = rng.standard_normal(y_ref.shape).astype(dtype)
        np.testing.assert_array_equal(
            host(K.avg_pool2d_backward(dev(gy), xshape)), R.avg_pool2d_backward(gy, shape)
        )

    @pytest.mark.parametrize("dtype", DTYPES)
    @pytest.mark.parametrize("pack", [False, True])
    @pytest.mark.parametrize("inplace", [False, True])
    def test_relu_forward_and_backward(dtype, pack, inplace, rng):
        x = rng.standard_normal((2, 3, 4, 5)).astype(
            dtype
        )  # 120 elements: 15 whole bytes when packed
        x[0, 0, 0, :3] = [0.0, -0.0, np.nan]
        y_ref, mask_ref = R.relu_forward(x.copy(), pack=pack)
        x_dev = dev(x)
        y, mask = K.relu_forward(x_dev, inplace=inplace, pack=pack)
        assert same_buffer(y, x_dev) == inplace
        np.testing.assert_array_equal(host(y), y_ref)
        if pack:
            assert isinstance(mask, PackedMask) and tuple(mask.shape) == x.shape
            np.testing.assert_array_equal(host(mask.bits), mask_ref.bits)
        else:
            np.testing.assert_array_equal(host(mask), mask_ref)
        gy = rng.standard_normal(x.shape).astype(dtype)
        gy[0, 0, 0, 0] = np.nan
        gx_ref = R.relu_backward(gy.copy(), mask_ref)
        gy_dev = dev(gy)
        gx = K.relu_backward(gy_dev, mask, inplace=inplace)
        assert same_buffer(gx, gy_dev) == inplace
        np.testing.assert_array_equal(host(gx), gx_ref)

    def test_packed_mask_with_a_partial_last_byte_and_shape_errors(rng):
        x = rng.standard_normal((1, 1, 3, 7)).astype(
            np.float32
        )  # 21 elements: 3 bytes, the last partial
        y, mask = K.relu_forward(dev(x), pack=True)
        y_ref, mask_ref = R.relu_forward(x, pack=True)
        np.testing.assert_array_equal(host(mask.bits), mask_ref.bits)
        gy = rng.standard_normal(x.shape).astype(np.float32)
        np.testing.assert_array_equal(
            host(K.relu_backward(dev(gy), mask)), R.relu_backward(gy, mask_ref)
        )
        # the shape check is the op's (``ops`` validates, then dispatches to the kernel)
        with pytest.raises(ValueError, match="does not match the forward shape"):
            ops.relu_backward(dev(gy[..., :6]), mask)

    def test_relu_forward_is_the_reference_on_any_rank(rng):
        x = rng.standard_normal((3, 7)).astype(np.float32)
        y, mask = K.relu_forward(dev(x))
        y_ref, mask_ref = R.relu_forward(x)
        np.testing.assert_array_equal(host(y), y_ref)
        np.testing.assert_array_equal(host(mask), mask_ref)

    TV_IMAGES = {
        "distinct": lambda shape, rng: rng.permutation(int(np.prod(shape))).reshape(shape) * 0.37,
        "flat_patches": lambda shape, rng: (
            rng.integers(0, 3, shape) * 1.0
        ),  # zero differences: sign(0), 0^0.25
    }

    @pytest.mark.parametrize("kind", losses.TV_KINDS)
    @pytest.mark.parametrize("shape", [(2, 2, 1), (5, 4, 3), (3, 7, 2)])
    @pytest.mark.parametrize("image", list(TV_IMAGES))
    @pytest.mark.parametrize("dtype", DTYPES)
    def test_tv_loss_value_and_gradient(kind, shape, image, dtype, rng):
        x = TV_IMAGES[image](shape, rng).astype(dtype)
        value, g = K.tv_loss(dev(x), kind)
        value_ref, g_ref = losses.tv_loss(x, kind)
        assert isinstance(value, float) and host(g).dtype == dtype
        assert value == pytest.approx(value_ref, rel=1e-12, abs=1e-12)
        close(g, g_ref, dtype)

    def test_tv_loss_rejects_unknown_kind():
        with pytest.raises(ValueError, match="unknown kind 'nope'"):
            K.tv_loss(dev(np.zeros((3, 3, 3), np.float32)), "nope")

    def test_ops_dispatch_only_cupy_arrays(rng):
        x = rng.standard_normal((1, 1, 2, 2)).astype(np.float32)
        assert dispatch.cuda_kernels(x) is None  # NumPy arrays never reach a CUDA kernel
        if MODE != "sim":
            assert dispatch.cuda_kernels(dev(x)) is K
            assert dispatch.backend_for(dev(x)) is K


# ------------------------------------------------------------------------------ PTX compilation

if MODE == "ptx":
    import numba

    # Device functions called by a kernel are compiled for "the current device"; there is none here.
    import numba.cuda.dispatcher
    from numba import cuda

    from minivgg._kernels import cuda_ops as K

    numba.cuda.dispatcher.get_current_device = lambda: type(
        "Device", (), {"compute_capability": (8, 0)}
    )

    @pytest.fixture(scope="module")
    def toolchain():
        def probe(a):
            a[0] = 1

        try:
            cuda.compile_ptx(probe, (numba.float32[::1],), cc=(8, 0))
        except Exception as exc:  # libnvvm / libnvrtc not found
            pytest.skip(
                f"no CUDA toolchain to compile PTX with ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:160]}); pip install nvidia-cuda-nvrtc to run this check"
            )

    def _launches(call, monkeypatch):
        """The (kernel, args) pairs a wrapper launches, captured instead of run."""
        seen = []
        monkeypatch.setattr(K, "_launch", lambda kernel, n, *args: seen.append((kernel, args)))
        call()
        return seen

    def _calls(dt):
        x4 = np.ones((1, 2, 4, 6), dt)
        img = np.ones((4, 5, 3), dt)
        idx = np.zeros((1, 2, 2, 3), np.uint8)
        return {
            "max_pool": lambda: (
                K.max_pool2d_forward(x4),
                K.max_pool2d_backward(x4[:, :, :2, :3].copy(), (idx, x4.shape)),
            ),
            "avg_pool": lambda: (
                K.avg_pool2d_forward(x4),
                K.avg_pool2d_backward(x4[:, :, :2, :3].copy(), x4.shape),
            ),
            "relu": lambda: (
                K.relu_forward(x4),
                K.relu_backward(x4, x4 > 0),
                K.relu_forward(x4, pack=True),
                K.relu_backward(x4, K.relu_forward(x4, pack=True)[1]),
            ),
            "tv": lambda: K.tv_loss(img, "keras"),
        }

    @pytest.mark.parametrize("dtype", [np.float32, np.float64])
    @pytest.mark.parametrize("group", list(_calls(np.float32)))
    def test_kernels_compile(group, dtype, toolchain, monkeypatch):
        launches = _launches(_calls(dtype)[group], monkeypatch)
        assert launches
        for kernel, args in launches:
            sig = tuple(numba.typeof(a) for a in args)
            ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=(8, 0))
            assert ".entry" in ptx
            if (
                dtype == np.float32 and kernel is not K._tv
            ):  # TV sums its loss in float64 on purpose
                assert not re.search(r"\.f64\b", ptx), (
                    f"{kernel.__name__} does float64 arithmetic on float32 data"
                )
