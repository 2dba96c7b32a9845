"""The engine's ops: plain forward/backward function pairs on NCHW activations, OIHW weights.

``op_forward(...) -> (out, cache)``; ``op_backward(g, cache) -> grads`` (one per differentiable
input, in input order). Every op runs on NumPy or CuPy (``xp = get_array_module(x)``), keeps the
dtype of its input (float32 in the engine, float64 in gradient checks), and its cache holds exactly
what its backward needs. Each backward is proven by ``minivgg.gradcheck`` (``minivgg gradcheck``).

Examples
--------
>>> import numpy as np
>>> from minivgg.engine import ops
>>> x = np.ones((1, 3, 4, 4), np.float32)
>>> y, cache = ops.relu_forward(x)
>>> gx = ops.relu_backward(np.ones_like(y), cache)
>>> gx.shape, gx.dtype
((1, 3, 4, 4), dtype('float32'))
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from . import winograd
from .dispatch import backend_for
from .im2col import conv_gemm, conv_gemm_adjoint, conv_gemm_weight_grad, out_size

if TYPE_CHECKING:
    from .masks import PackedMask


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
"""The ``algorithm`` values ``conv2d_forward`` accepts (``VGG.conv`` too)."""


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
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    stride: int = 1,
    pad: int = 1,
    save_input: bool = True,
    algorithm: str = "auto",
) -> tuple[np.ndarray, tuple]:
    """2-D cross-correlation (a conv layer's forward pass) with zero padding.

    ``y[n,o,p,q] = b[o] + Σ_{c,i,j} w[o,c,i,j] · xpad[n,c,stride·p+i,stride·q+j]``.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), float
        Input activations (NumPy or CuPy); y has x's dtype.
    w : ndarray, shape (O, C, kh, kw), float
        Kernels (cast to x's dtype).
    b : ndarray, shape (O,), or None
        Biases; None adds none.
    stride : int, >= 1
    pad : int, >= 0
        Zeros added on every side.
    save_input : bool
        Keep ``x`` in the cache; only weight gradients need it.
    algorithm : {"auto", "im2col", "winograd"}
        ``"im2col"``: patches + GEMM in row bands (any geometry); ``"winograd"``: 3x3, stride 1,
        pad 1 only (F(4x4,3x3) on the Numba path, F(2x2,3x3) on the array path); ``"auto"``:
        Winograd where it applies, im2col elsewhere.

    Returns
    -------
    y : ndarray, shape (N, O, Ho, Wo)
        ``Ho = (H + 2·pad − kh) // stride + 1``, likewise ``Wo``.
    cache : tuple
        ``(x or None, w, x.shape, stride, pad, algorithm used)`` for ``conv2d_backward``.

    Raises
    ------
    ValueError
        On a non-float input, wrong ranks or channel counts, a bias of the wrong shape, a bad
        stride/pad, an input smaller than the kernel, or an unknown/inapplicable algorithm.

    Examples
    --------
    >>> x = np.ones((1, 2, 5, 5), np.float32)
    >>> w = np.ones((3, 2, 3, 3), np.float32)
    >>> y, cache = conv2d_forward(x, w, np.zeros(3, np.float32))
    >>> y.shape, y.dtype
    ((1, 3, 5, 5), dtype('float32'))
    >>> float(y[0, 0, 2, 2]), float(y[0, 0, 0, 0])  # 2 channels x 9 taps; a corner sees 2 x 4
    (18.0, 8.0)
    >>> conv2d_forward(x, w, None, stride=2, algorithm="im2col")[0].shape
    (1, 3, 3, 3)
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


def conv2d_backward(
    gy: np.ndarray,
    cache: tuple,
    need_params: bool = False,
    gx_into: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Gradients of ``conv2d_forward`` w.r.t. its input (and, on request, its weights and bias).

    ``gx = col2im(wᵀ · gy)`` (im2col), or the same-padded conv of gy with the flipped, transposed
    kernel (Winograd again): the forward's algorithm. ``gw = Σ gy · colsᵀ``, ``gb = Σ gy``.

    Parameters
    ----------
    gy : ndarray, shape (N, O, Ho, Wo), float
        dL/dy.
    cache : tuple
        The cache ``conv2d_forward`` returned.
    need_params : bool
        Also compute gw and gb (needs ``save_input=True`` in the forward); style transfer does not.
    gx_into : ndarray, shape (N, C, H, W), optional
        Add gx into this array (returned as gx) instead of allocating one.

    Returns
    -------
    gx : ndarray, shape (N, C, H, W)
    gw : ndarray, shape (O, C, kh, kw), or None
        None unless ``need_params``.
    gb : ndarray, shape (O,), or None
        None unless ``need_params``.

    Raises
    ------
    ValueError
        ``need_params`` on a cache without the input (``save_input=False``).

    Examples
    --------
    >>> x = np.ones((1, 2, 5, 5), np.float32)
    >>> y, cache = conv2d_forward(x, np.ones((3, 2, 3, 3), np.float32), None)
    >>> gx, gw, gb = conv2d_backward(np.ones_like(y), cache)
    >>> gx.shape, gw is None and gb is None
    ((1, 2, 5, 5), True)
    >>> float(gx[0, 0, 2, 2]), float(gx[0, 0, 0, 0])  # 3 outputs x 9 taps; a corner feeds 3 x 4
    (27.0, 12.0)
    >>> conv2d_backward(np.ones_like(y), cache, need_params=True)[2]
    array([25., 25., 25.], dtype=float32)
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


def relu_forward(
    x: np.ndarray, inplace: bool = False, pack: bool = False
) -> tuple[np.ndarray, np.ndarray | PackedMask]:
    """``y = max(x, 0)`` elementwise; the cache is the mask ``x > 0`` (all that backward needs).

    Parameters
    ----------
    x : ndarray, any shape, float
    inplace : bool
        Overwrite ``x`` with ``y`` (the VGG forward does, to halve activation memory).
    pack : bool
        Store the mask as a ``masks.PackedMask`` (1/8 of a bool mask), for very large maps.

    Returns
    -------
    y : ndarray, shaped and typed like x
    mask : ndarray of bool, shaped like x, or PackedMask

    Raises
    ------
    ValueError
        If ``x`` is not a float array.

    Examples
    --------
    >>> x = np.array([[-1.0, 2.0], [3.0, -4.0]], np.float32)
    >>> y, mask = relu_forward(x)
    >>> y
    array([[0., 2.],
           [3., 0.]], dtype=float32)
    >>> mask
    array([[False,  True],
           [ True, False]])
    """
    _check_float("relu_forward", "x", x)
    return backend_for(x).relu_forward(x, inplace, pack)


def relu_backward(
    gy: np.ndarray, cache: np.ndarray | PackedMask, inplace: bool = False
) -> np.ndarray:
    """``gx = gy · [x > 0]`` (the subgradient at 0 is taken as 0), from a bool or packed mask.

    Parameters
    ----------
    gy : ndarray, shaped like the forward's x, float
        dL/dy.
    cache : ndarray of bool or PackedMask
        The mask ``relu_forward`` returned.
    inplace : bool
        Write the result into ``gy``.

    Returns
    -------
    gx : ndarray, shaped and typed like gy

    Raises
    ------
    ValueError
        If ``gy``'s shape is not the forward's.

    Examples
    --------
    >>> y, mask = relu_forward(np.array([-1.0, 2.0, 0.0]))
    >>> relu_backward(np.array([5.0, 5.0, 5.0]), mask)
    array([0., 5., 0.])
    """
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


def avg_pool2d_forward(
    x: np.ndarray, size: int = 2, stride: int = 2
) -> tuple[np.ndarray, tuple[int, ...]]:
    """2x2/stride-2 mean pool; an odd last row/column is dropped (floor, as in Keras and PyTorch).

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), float, H and W >= 2
    size, stride : int
        Must both be 2 (the only window VGG uses).

    Returns
    -------
    y : ndarray, shape (N, C, H // 2, W // 2), x's dtype
    cache : tuple of int
        The input shape.

    Raises
    ------
    ValueError
        On a non-float or non-4-D input, a window other than 2x2/2, or H or W below 2.

    Examples
    --------
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    >>> y, cache = avg_pool2d_forward(x)
    >>> y
    array([[[[ 2.5,  4.5],
             [10.5, 12.5]]]], dtype=float32)
    >>> avg_pool2d_forward(np.ones((1, 1, 5, 3)))[0].shape
    (1, 1, 2, 1)
    """
    _check_pool("avg_pool2d_forward", x, size, stride)
    return backend_for(x).avg_pool2d_forward(x)


def avg_pool2d_backward(gy: np.ndarray, cache: tuple[int, ...]) -> np.ndarray:
    """Gradient of ``avg_pool2d_forward``: each input in a window gets ``gy/4``; dropped ones get 0.

    Parameters
    ----------
    gy : ndarray, shape (N, C, H // 2, W // 2), float
    cache : tuple of int
        The input shape ``avg_pool2d_forward`` returned.

    Returns
    -------
    gx : ndarray, shape (N, C, H, W), gy's dtype

    Examples
    --------
    >>> y, cache = avg_pool2d_forward(np.zeros((1, 1, 3, 2)))
    >>> avg_pool2d_backward(np.ones_like(y), cache)[0, 0]
    array([[0.25, 0.25],
           [0.25, 0.25],
           [0.  , 0.  ]])
    """
    return backend_for(gy).avg_pool2d_backward(gy, cache)


def max_pool2d_forward(x: np.ndarray, size: int = 2, stride: int = 2) -> tuple[np.ndarray, tuple]:
    """2x2/stride-2 max pool with floor for odd sizes.

    Ties go to the first maximum in row-major window order (top-left, top-right, bottom-left,
    bottom-right): later corners win only when strictly larger.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), float, H and W >= 2
    size, stride : int
        Must both be 2.

    Returns
    -------
    y : ndarray, shape (N, C, H // 2, W // 2), x's dtype
    cache : tuple
        ``(argmax, x.shape)``: the window argmax, uint8 (N, C, H // 2, W // 2), 0..3.

    Raises
    ------
    ValueError
        On a non-float or non-4-D input, a window other than 2x2/2, or H or W below 2.

    Examples
    --------
    >>> x = np.array([[[[1.0, 4.0], [4.0, 2.0]]]], np.float32)
    >>> y, (argmax, shape) = max_pool2d_forward(x)
    >>> float(y[0, 0, 0, 0]), int(argmax[0, 0, 0, 0]), shape  # the tie goes to top-right
    (4.0, 1, (1, 1, 2, 2))
    """
    _check_pool("max_pool2d_forward", x, size, stride)
    return backend_for(x).max_pool2d_forward(x)


def max_pool2d_backward(gy: np.ndarray, cache: tuple) -> np.ndarray:
    """Gradient of ``max_pool2d_forward``: each ``gy`` goes to its window's (first) argmax.

    Parameters
    ----------
    gy : ndarray, shape (N, C, H // 2, W // 2), float
    cache : tuple
        The ``(argmax, shape)`` ``max_pool2d_forward`` returned.

    Returns
    -------
    gx : ndarray, shape (N, C, H, W), gy's dtype; 0 off the argmax

    Examples
    --------
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    >>> y, cache = max_pool2d_forward(x)
    >>> max_pool2d_backward(np.ones_like(y), cache)[0, 0]
    array([[0., 0., 0., 0.],
           [0., 1., 0., 1.],
           [0., 0., 0., 0.],
           [0., 1., 0., 1.]], dtype=float32)
    """
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
