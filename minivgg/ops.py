"""The engine's ops: plain forward/backward function pairs on NCHW activations, OIHW weights.

``op_forward(...) -> (out, cache)``; ``op_backward(g, cache) -> grads`` (one per differentiable
input, in input order). Every op runs on NumPy or CuPy (``xp = get_array_module(x)``), keeps the
dtype of its input (float32 in the engine, float64 in gradient checks), and its cache holds exactly
what its backward needs. Each backward is proven by ``minivgg.gradcheck`` (``minivgg gradcheck``).
"""
from __future__ import annotations

import math

from .backend import cpu_kernels_for, cuda_kernels_for, get_array_module
from . import winograd
from .im2col import col2im, im2col, out_size


def _require(cond: bool, op: str, msg: str) -> None:
    if not cond:
        raise ValueError(f"{op}: {msg}")


def _check_float(op: str, name: str, a) -> None:
    kind = getattr(getattr(a, "dtype", None), "kind", None)
    _require(kind == "f", op, f"{name} must be a float array, got dtype {getattr(a, 'dtype', type(a).__name__)}")


def _check_nchw(op: str, x) -> None:
    _check_float(op, "x", x)
    _require(x.ndim == 4, op, f"x must be NCHW (4-D), got shape {tuple(x.shape)}")


# --------------------------------------------------------------------------------------- conv2d

def conv2d_forward(x, w, b, stride: int = 1, pad: int = 1, save_input: bool = True):
    """2-D cross-correlation: x (N, C, H, W), w (O, C, kh, kw), b (O,) -> y (N, O, Ho, Wo).

    ``y[n,o,p,q] = b[o] + Σ_{c,i,j} w[o,c,i,j] · xpad[n,c,stride·p+i,stride·q+j]`` via im2col + GEMM;
    the 3x3/s1/p1 fast path (every VGG conv) is Winograd F(2x2,3x3) in row bands (``winograd.py``).
    The cache holds ``x`` (only for weight gradients; ``save_input=False`` drops it), ``w`` and the geometry.
    """
    op = "conv2d_forward"
    _check_nchw(op, x)
    _check_float(op, "w", w)
    _require(w.ndim == 4, op, f"w must be OIHW (4-D), got shape {tuple(w.shape)}")
    _require(w.shape[1] == x.shape[1], op,
             f"x has {x.shape[1]} channels but w expects {w.shape[1]} (x {tuple(x.shape)}, w {tuple(w.shape)})")
    _require(b is None or tuple(b.shape) == (w.shape[0],), op,
             f"b must have shape ({w.shape[0]},), got {tuple(getattr(b, 'shape', ()))}")
    _require(int(stride) >= 1 and int(pad) >= 0, op, f"stride must be >= 1 and pad >= 0, got stride={stride}, pad={pad}")
    kh, kw = w.shape[2:]
    ho, wo = out_size(x.shape[2], kh, stride, pad), out_size(x.shape[3], kw, stride, pad)
    _require(ho >= 1 and wo >= 1, op,
             f"input {tuple(x.shape)} is smaller than the kernel {tuple(w.shape)} with pad={pad}")
    w = w.astype(x.dtype, copy=False)
    if (kh, kw, stride, pad) == (3, 3, 1, 1):
        y = winograd.conv3x3_same(x, w, bias=b)
    else:
        xp = get_array_module(x)
        cols = im2col(x, kh, kw, stride, pad).reshape(x.shape[0], -1, ho * wo)
        y = xp.matmul(w.reshape(w.shape[0], -1), cols).reshape(x.shape[0], w.shape[0], ho, wo)
        if b is not None:
            y += b.astype(x.dtype, copy=False).reshape(1, -1, 1, 1)
    cache = (x if save_input else None, w, x.shape, stride, pad)
    return y, cache


def conv2d_backward(gy, cache, need_params: bool = False, gx_into=None):
    """Gradients of ``conv2d_forward``: gy (N, O, Ho, Wo) -> (gx, gw, gb).

    ``gx = col2im(wᵀ · gy)``; on the 3x3/s1/p1 path it is the same-padded conv of gy with the
    flipped, transposed kernel (Winograd again). ``gw, gb`` are computed only when ``need_params`` (else None).
    ``gx_into`` (shaped like x) accumulates gx into that array, which is returned as gx.
    """
    x, w, xshape, stride, pad = cache
    xp = get_array_module(gy)
    n, o, ho, wo = gy.shape
    kh, kw = w.shape[2:]
    if (kh, kw, stride, pad) == (3, 3, 1, 1):
        gx = winograd.conv3x3_same(gy, w, adjoint=True, accumulate_into=gx_into)
    else:
        gcols = xp.matmul(w.reshape(o, -1).T, gy.reshape(n, o, ho * wo))
        gx = col2im(gcols.reshape(n, xshape[1], kh, kw, ho, wo), xshape[2], xshape[3], stride, pad)
        if gx_into is not None:
            gx_into += gx
            gx = gx_into
    gw = gb = None
    if need_params:
        if x is None:
            raise ValueError("conv2d_backward: weight gradients need the input; call conv2d_forward with save_input=True")
        cols = im2col(x, kh, kw, stride, pad).reshape(n, -1, ho * wo)
        gw = xp.matmul(gy.reshape(n, o, -1), cols.transpose(0, 2, 1)).sum(axis=0).reshape(w.shape)
        gb = gy.sum(axis=(0, 2, 3))
    return gx, gw, gb


# ----------------------------------------------------------------------------------------- relu

_UNPACK_BLOCK = 1 << 20  # mask elements unpacked at a time by relu_backward (a multiple of 8)


def relu_forward(x, inplace: bool = False, pack: bool = False):
    """``y = max(x, 0)`` elementwise; the cache is the mask ``x > 0`` (the only thing backward needs).

    ``inplace`` overwrites ``x`` with ``y`` (the VGG forward does, to halve activation memory);
    ``pack`` stores the mask as bits (``xp.packbits``, 1/8 of a bool mask) for very large maps.
    """
    _check_float("relu_forward", "x", x)
    if (k := cuda_kernels_for(x)) is not None:
        return k.relu_forward(x, inplace, pack)
    xp = get_array_module(x)
    if (cpu := cpu_kernels_for(x)) is not None and pack and inplace:
        bits = xp.empty((x.size + 7) // 8, dtype=xp.uint8)  # the packed mask straight from one pass
        cpu.relu_inplace_packed(x.reshape(-1), bits)
        return x, ("packed", bits, x.shape)
    if cpu is not None:  # one fused pass instead of compare + max
        mask = xp.empty(x.shape, dtype=bool)
        y = x if inplace else xp.empty_like(x)
        (cpu.relu_inplace(x.ravel(), mask.ravel()) if inplace else cpu.relu_mask(x.ravel(), y.ravel(), mask.ravel()))
    else:
        mask = x > 0
        y = xp.maximum(x, x.dtype.type(0), out=x) if inplace else xp.where(mask, x, x.dtype.type(0))
    if pack:
        return y, ("packed", xp.packbits(mask.ravel()), mask.shape)
    return y, mask


def relu_backward(gy, cache, inplace: bool = False):
    """``gx = gy · [x > 0]`` (the subgradient at 0 is taken as 0); unpacks a bit-packed mask.
    ``inplace`` writes the result into ``gy``."""
    if (k := cuda_kernels_for(gy)) is not None:  # reads packed masks without unpacking them
        return k.relu_backward(gy, cache, inplace)
    cpu = cpu_kernels_for(gy) if inplace else None
    if isinstance(cache, tuple):  # ("packed", bits, shape)
        _, bits, shape = cache
        xp = get_array_module(gy)
        if cpu is not None and tuple(gy.shape) == tuple(shape):  # unpack 1 MB of mask at a time
            flat = gy.reshape(-1)
            for i in range(0, flat.size, _UNPACK_BLOCK):
                j = min(flat.size, i + _UNPACK_BLOCK)
                cpu.relu_backward_inplace(flat[i:j], xp.unpackbits(bits[i // 8:(j + 7) // 8], count=j - i).view(bool))
            return gy
        cache = xp.unpackbits(bits)[:math.prod(shape)].reshape(shape).view(bool)  # cupy's has no `count`
    _require(tuple(gy.shape) == tuple(cache.shape), "relu_backward",
             f"gy shape {tuple(gy.shape)} does not match the forward shape {tuple(cache.shape)}")
    if inplace and cpu is not None:
        cpu.relu_backward_inplace(gy.reshape(-1), cache.reshape(-1))
        return gy
    if inplace:
        return get_array_module(gy).multiply(gy, cache, out=gy)
    return gy * cache


# -------------------------------------------------------------------------------------- pooling

def _pool_geometry(op: str, x, size: int, stride: int):
    _check_nchw(op, x)
    _require(size == stride == 2, op, f"only 2x2 windows with stride 2 are supported, got size={size}, stride={stride}")
    n, c, h, w = x.shape
    _require(h >= 2 and w >= 2, op, f"input {tuple(x.shape)} is smaller than the 2x2 window")
    return n, c, h // 2, w // 2


def _quarters(x, ho, wo):
    """The four corners of every 2x2 window as strided views (top-left, top-right, bottom-left, bottom-right)."""
    return [x[:, :, i:2 * ho:2, j:2 * wo:2] for i in (0, 1) for j in (0, 1)]


def avg_pool2d_forward(x, size: int = 2, stride: int = 2):
    """2x2/stride-2 mean pool, x (N, C, H, W) -> (N, C, H//2, W//2); an odd last row/column is dropped
    (floor, as Keras 'valid' and PyTorch do). The cache is the input shape."""
    n, c, ho, wo = _pool_geometry("avg_pool2d_forward", x, size, stride)
    if (k := cuda_kernels_for(x)) is not None:
        return k.avg_pool_forward(x)
    if (cpu := cpu_kernels_for(x)) is not None:
        y = get_array_module(x).empty((n, c, ho, wo), dtype=x.dtype)
        for i in range(n):
            cpu.avg_pool_fwd(x[i], y[i])
        return y, x.shape
    tl, tr, bl, br = _quarters(x, ho, wo)
    y = tl + tr
    y += bl
    y += br
    y *= x.dtype.type(0.25)
    return y, x.shape


def avg_pool2d_backward(gy, cache):
    """Each input in a window gets ``gy/4``; dropped odd rows/columns get 0."""
    if (k := cuda_kernels_for(gy)) is not None:
        return k.avg_pool_backward(gy, cache)
    xp = get_array_module(gy)
    n, c, h, w = cache
    ho, wo = h // 2, w // 2
    gx = xp.empty((n, c, h, w), dtype=gy.dtype)
    if (cpu := cpu_kernels_for(gy)) is not None:
        for i in range(n):
            cpu.avg_pool_bwd(gy[i], gx[i])
        return gx
    gx[:, :, 2 * ho:] = 0
    gx[:, :, :, 2 * wo:] = 0
    quarter = gy * gy.dtype.type(0.25)
    for view in _quarters(gx, ho, wo):
        view[...] = quarter
    return gx


def max_pool2d_forward(x, size: int = 2, stride: int = 2):
    """2x2/stride-2 max pool with floor for odd sizes. Ties go to the first maximum in row-major
    window order (top-left, top-right, bottom-left, bottom-right): later corners win only when
    strictly larger. The cache is the window argmax (uint8, N, C, Ho, Wo) and the input shape."""
    xp = get_array_module(x)
    n, c, ho, wo = _pool_geometry("max_pool2d_forward", x, size, stride)
    if (k := cuda_kernels_for(x)) is not None:
        return k.max_pool_forward(x)
    if (cpu := cpu_kernels_for(x)) is not None:
        y = xp.empty((n, c, ho, wo), dtype=x.dtype)
        idx = xp.empty((n, c, ho, wo), dtype=xp.uint8)
        for i in range(n):
            cpu.max_pool_fwd(x[i], y[i], idx[i])
        return y, (idx, x.shape)
    corners = _quarters(x, ho, wo)
    y = corners[0].copy()
    idx = xp.zeros(y.shape, dtype=xp.uint8)
    for k, v in enumerate(corners[1:], start=1):
        better = v > y
        xp.copyto(y, v, where=better)
        idx[better] = k
    return y, (idx, x.shape)


def max_pool2d_backward(gy, cache):
    """Route each ``gy`` to the window's (first) argmax; every other input gets 0."""
    if (k := cuda_kernels_for(gy)) is not None:
        return k.max_pool_backward(gy, cache)
    xp = get_array_module(gy)
    idx, (n, c, h, w) = cache
    ho, wo = h // 2, w // 2
    if (cpu := cpu_kernels_for(gy)) is not None:
        gx = xp.empty((n, c, h, w), dtype=gy.dtype)
        for i in range(n):
            cpu.max_pool_bwd(gy[i], idx[i], gx[i])
        return gx
    gx = xp.zeros((n, c, h, w), dtype=gy.dtype)
    for k, view in enumerate(_quarters(gx, ho, wo)):
        xp.copyto(view, gy, where=idx == k)
    return gx


__all__ = [
    "conv2d_forward", "conv2d_backward", "relu_forward", "relu_backward",
    "avg_pool2d_forward", "avg_pool2d_backward", "max_pool2d_forward", "max_pool2d_backward",
]
