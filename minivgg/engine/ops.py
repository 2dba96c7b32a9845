"""The engine's ops: plain forward/backward function pairs on NCHW activations, OIHW weights.

``op_forward(...) -> (out, cache)``; ``op_backward(g, cache) -> grads`` (one per differentiable
input, in input order). Every op runs on NumPy or CuPy (``xp = get_array_module(x)``), keeps the
dtype of its input (float32 in the engine, float64 in gradient checks), and its cache holds exactly
what its backward needs. Each backward is proven by ``minivgg.gradcheck`` (``minivgg gradcheck``).
"""

from __future__ import annotations

from . import winograd
from .dispatch import backend_for
from .im2col import conv_gemm, conv_gemm_adjoint, conv_gemm_weight_grad, out_size


def _require(cond: bool, op: str, msg: str) -> None:
    if not cond:
        raise ValueError(f"{op}: {msg}")


def _check_float(op: str, name: str, a) -> None:
    kind = getattr(getattr(a, "dtype", None), "kind", None)
    _require(
        kind == "f",
        op,
        f"{name} must be a float array, got dtype {getattr(a, 'dtype', type(a).__name__)}",
    )


def _check_nchw(op: str, x) -> None:
    _check_float(op, "x", x)
    _require(x.ndim == 4, op, f"x must be NCHW (4-D), got shape {tuple(x.shape)}")


# --------------------------------------------------------------------------------------- conv2d

# How a conv is computed: "winograd" (only 3x3/stride 1/pad 1; F(4x4,3x3) on Numba, F(2x2,3x3) on
# arrays), "im2col" (patches + GEMM, any geometry) or "auto" (Winograd where it applies, im2col elsewhere).
CONV_ALGORITHMS = ("auto", "im2col", "winograd")


def _conv_algorithm(op: str, algorithm: str, kh: int, kw: int, stride: int, pad: int) -> str:
    """The algorithm that runs: ``auto`` resolved; ValueError for an unknown one or Winograd off 3x3/s1/p1."""
    _require(
        algorithm in CONV_ALGORITHMS,
        op,
        f"unknown algorithm {algorithm!r}: expected one of {', '.join(CONV_ALGORITHMS)}",
    )
    fits = (kh, kw, stride, pad) == (3, 3, 1, 1)
    _require(
        algorithm != "winograd" or fits,
        op,
        "algorithm='winograd' needs a 3x3 kernel with stride 1 and pad 1, "
        f"got {kh}x{kw}, stride={stride}, pad={pad}",
    )
    return "winograd" if algorithm == "winograd" or (algorithm == "auto" and fits) else "im2col"


def conv2d_forward(
    x, w, b, stride: int = 1, pad: int = 1, save_input: bool = True, algorithm: str = "auto"
):
    """2-D cross-correlation: x (N, C, H, W), w (O, C, kh, kw), b (O,) -> y (N, O, Ho, Wo).

    ``y[n,o,p,q] = b[o] + Σ_{c,i,j} w[o,c,i,j] · xpad[n,c,stride·p+i,stride·q+j]``. ``algorithm``:
    ``"im2col"`` (patches + GEMM in row bands, ``im2col.conv_gemm``), ``"winograd"`` (3x3/s1/p1 only,
    ``winograd.py``: F(4x4,3x3) on the Numba path, F(2x2,3x3) on the array path) or ``"auto"``
    (Winograd where it applies). The cache holds ``x``
    (only for weight gradients; ``save_input=False`` drops it), ``w``, the geometry and the algorithm used.
    """
    op = "conv2d_forward"
    _check_nchw(op, x)
    _check_float(op, "w", w)
    _require(w.ndim == 4, op, f"w must be OIHW (4-D), got shape {tuple(w.shape)}")
    _require(
        w.shape[1] == x.shape[1],
        op,
        f"x has {x.shape[1]} channels but w expects {w.shape[1]} (x {tuple(x.shape)}, w {tuple(w.shape)})",
    )
    _require(
        b is None or tuple(b.shape) == (w.shape[0],),
        op,
        f"b must have shape ({w.shape[0]},), got {tuple(getattr(b, 'shape', ()))}",
    )
    _require(
        int(stride) >= 1 and int(pad) >= 0,
        op,
        f"stride must be >= 1 and pad >= 0, got stride={stride}, pad={pad}",
    )
    kh, kw = w.shape[2:]
    ho, wo = out_size(x.shape[2], kh, stride, pad), out_size(x.shape[3], kw, stride, pad)
    _require(
        ho >= 1 and wo >= 1,
        op,
        f"input {tuple(x.shape)} is smaller than the kernel {tuple(w.shape)} with pad={pad}",
    )
    used = _conv_algorithm(op, algorithm, kh, kw, stride, pad)
    w = w.astype(x.dtype, copy=False)
    if used == "winograd":
        y = winograd.conv3x3_same(x, w, bias=b)
    else:
        y = conv_gemm(x, w, b, stride, pad)
    cache = (x if save_input else None, w, x.shape, stride, pad, used)
    return y, cache


def conv2d_backward(gy, cache, need_params: bool = False, gx_into=None):
    """Gradients of ``conv2d_forward``: gy (N, O, Ho, Wo) -> (gx, gw, gb), with the forward's algorithm.

    ``gx = col2im(wᵀ · gy)`` (im2col), or the same-padded conv of gy with the flipped, transposed
    kernel (Winograd again). ``gw = Σ gy · colsᵀ`` and ``gb = Σ gy`` (banded GEMMs, either algorithm)
    only when ``need_params`` (else None). ``gx_into`` (shaped like x) accumulates gx into that array.
    """
    x, w, xshape, stride, pad, used = cache
    kh, kw = w.shape[2:]
    if used == "winograd":
        gx = winograd.conv3x3_same(gy, w, adjoint=True, accumulate_into=gx_into)
    else:
        gx = conv_gemm_adjoint(gy, w, xshape, stride, pad, accumulate_into=gx_into)
    gw = gb = None
    if need_params:
        if x is None:
            raise ValueError(
                "conv2d_backward: weight gradients need the input; call conv2d_forward with save_input=True"
            )
        gw = conv_gemm_weight_grad(x, gy, kh, kw, stride, pad)
        gb = gy.sum(axis=(0, 2, 3))
    return gx, gw, gb


# ------------------------------------------------------------------------- relu and pooling
# Validation here, the work in the backend that ``dispatch.backend_for`` picks (``minivgg._kernels``:
# reference, Numba CPU or CUDA; all three implement these six with the same signatures).


def relu_forward(x, inplace: bool = False, pack: bool = False):
    """``y = max(x, 0)`` elementwise; the cache is the mask ``x > 0`` (the only thing backward needs).

    ``inplace`` overwrites ``x`` with ``y`` (the VGG forward does, to halve activation memory);
    ``pack`` stores the mask as a ``masks.PackedMask`` (1/8 of a bool mask) for very large maps.
    """
    _check_float("relu_forward", "x", x)
    return backend_for(x).relu_forward(x, inplace, pack)


def relu_backward(gy, cache, inplace: bool = False):
    """``gx = gy · [x > 0]`` (the subgradient at 0 is taken as 0), from a bool or packed mask.
    ``inplace`` writes the result into ``gy``."""
    _require(
        tuple(gy.shape) == tuple(cache.shape),
        "relu_backward",
        f"gy shape {tuple(gy.shape)} does not match the forward shape {tuple(cache.shape)}",
    )
    return backend_for(gy).relu_backward(gy, cache, inplace)


def _check_pool(op: str, x, size: int, stride: int) -> None:
    _check_nchw(op, x)
    _require(
        size == stride == 2,
        op,
        f"only 2x2 windows with stride 2 are supported, got size={size}, stride={stride}",
    )
    _require(
        x.shape[2] >= 2 and x.shape[3] >= 2,
        op,
        f"input {tuple(x.shape)} is smaller than the 2x2 window",
    )


def avg_pool2d_forward(x, size: int = 2, stride: int = 2):
    """2x2/stride-2 mean pool, x (N, C, H, W) -> (N, C, H//2, W//2); an odd last row/column is dropped
    (floor, as Keras 'valid' and PyTorch do). The cache is the input shape."""
    _check_pool("avg_pool2d_forward", x, size, stride)
    return backend_for(x).avg_pool2d_forward(x)


def avg_pool2d_backward(gy, cache):
    """Each input in a window gets ``gy/4``; dropped odd rows/columns get 0."""
    return backend_for(gy).avg_pool2d_backward(gy, cache)


def max_pool2d_forward(x, size: int = 2, stride: int = 2):
    """2x2/stride-2 max pool with floor for odd sizes. Ties go to the first maximum in row-major
    window order (top-left, top-right, bottom-left, bottom-right): later corners win only when
    strictly larger. The cache is the window argmax (uint8, N, C, Ho, Wo) and the input shape."""
    _check_pool("max_pool2d_forward", x, size, stride)
    return backend_for(x).max_pool2d_forward(x)


def max_pool2d_backward(gy, cache):
    """Route each ``gy`` to the window's (first) argmax; every other input gets 0."""
    return backend_for(gy).max_pool2d_backward(gy, cache)


__all__ = [
    "CONV_ALGORITHMS",
    "conv2d_forward",
    "conv2d_backward",
    "relu_forward",
    "relu_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
    "max_pool2d_forward",
    "max_pool2d_backward",
]
