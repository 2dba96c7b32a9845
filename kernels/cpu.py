"""The Numba CPU backend: the ops of ``OPS`` (ReLU, 2x2 pools) and the Winograd F(4x4, 3x3) tile
transforms as fused, parallel (``prange``) loops doing in one pass what the reference (``reference.py``,
and ``minivgg/engine/winograd.py``'s F(2x2, 3x3) array code) does in several; tests compare the two. Arrays are C-contiguous float32
(the engine) or float64 (gradient checks); kernels compile on first use and are cached on disk.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from minivgg.engine import arena
from minivgg.engine.masks import PackedMask

from . import tv
from .blas import gram, matmul  # noqa: F401  (the GEMMs, on scipy's OpenBLAS: see blas.py)
from .cpu_winograd import (  # noqa: F401  (the F(4x4, 3x3) transforms belong to this backend's list)
    winograd4_input,
    winograd4_input_adjoint,
    winograd4_output,
    winograd4_output_adjoint,
)

_JIT = dict(parallel=True, cache=True, nogil=True)


@njit(**_JIT)
def _relu_inplace(x, mask):
    """x ← max(x, 0) and mask ← x > 0, one pass over flat arrays."""
    for i in prange(x.size):
        v = x[i]
        pos = v > 0
        mask[i] = pos
        if not pos:
            x[i] = 0


@njit(**_JIT)
def _relu_mask(x, y, mask):
    """y ← max(x, 0), mask ← x > 0 (out of place), flat arrays."""
    for i in prange(x.size):
        v = x[i]
        pos = v > 0
        mask[i] = pos
        y[i] = v if pos else 0


@njit(**_JIT)
def _relu_inplace_packed(x, bits):
    """x ← max(x, 0) and bits ← packbits(x > 0) (numpy's big-endian bit order), flat arrays, one pass.
    Whole bytes are branch-free (a select per element); the last partial byte is done alone."""
    n = x.size
    whole = n // 8
    zero = x.dtype.type(0)
    for byte in prange(whole):
        i = 8 * byte
        v = 0
        for t in range(8):
            xi = x[i + t]
            pos = xi > 0
            v |= np.int32(pos) << (7 - t)
            x[i + t] = xi if pos else zero
        bits[byte] = v
    if whole < bits.size:
        v = 0
        for i in range(8 * whole, n):
            if x[i] > 0:
                v |= 128 >> (i - 8 * whole)
            else:
                x[i] = zero
        bits[whole] = v


@njit(**_JIT)
def _relu_backward_inplace(g, mask):
    """g ← g · mask, flat arrays (mask bool). Packed masks are unpacked block by block by the caller
    (``np.unpackbits`` is SIMD; a bit test per element here was 5x slower)."""
    zero = g.dtype.type(0)
    for i in prange(g.size):
        g[i] = g[i] if mask[i] else zero


@njit(**_JIT)
def _avg_pool_fwd(x, y):
    """y[c, i, j] = mean of the 2x2 window at (2i, 2j) of x (C, H, W)."""
    C, Ho, Wo = y.shape
    for c in prange(C):
        for i in range(Ho):
            for j in range(Wo):
                y[c, i, j] = (
                    x[c, 2 * i, 2 * j]
                    + x[c, 2 * i, 2 * j + 1]
                    + x[c, 2 * i + 1, 2 * j]
                    + x[c, 2 * i + 1, 2 * j + 1]
                ) * 0.25


@njit(**_JIT)
def _avg_pool_bwd(gy, gx):
    """gx (C, H, W) ← gy/4 over each window, 0 on dropped odd edges."""
    C, H, W = gx.shape
    Ho, Wo = gy.shape[1], gy.shape[2]
    for c in prange(C):
        for r in range(H):
            i = r // 2
            for q in range(W):
                j = q // 2
                gx[c, r, q] = gy[c, i, j] * 0.25 if (i < Ho and j < Wo) else 0


@njit(**_JIT)
def _max_pool_fwd(x, y, idx):
    """y = window max, idx = first argmax in row-major window order (later corners win only if larger)."""
    C, Ho, Wo = y.shape
    for c in prange(C):
        for i in range(Ho):
            for j in range(Wo):
                best = x[c, 2 * i, 2 * j]
                k = 0
                v = x[c, 2 * i, 2 * j + 1]
                if v > best:
                    best, k = v, 1
                v = x[c, 2 * i + 1, 2 * j]
                if v > best:
                    best, k = v, 2
                v = x[c, 2 * i + 1, 2 * j + 1]
                if v > best:
                    best, k = v, 3
                y[c, i, j] = best
                idx[c, i, j] = k


@njit(**_JIT)
def _max_pool_bwd(gy, idx, gx):
    """gx (C, H, W) ← gy routed to each window's argmax, 0 elsewhere (and on dropped odd edges).
    One pass over the windows, four selects each: no branch per gx element."""
    C, H, W = gx.shape
    Ho, Wo = gy.shape[1], gy.shape[2]
    zero = gx.dtype.type(0)
    for c in prange(C):
        for i in range(Ho):
            for j in range(Wo):
                g, k = gy[c, i, j], idx[c, i, j]
                gx[c, 2 * i, 2 * j] = g if k == 0 else zero
                gx[c, 2 * i, 2 * j + 1] = g if k == 1 else zero
                gx[c, 2 * i + 1, 2 * j] = g if k == 2 else zero
                gx[c, 2 * i + 1, 2 * j + 1] = g if k == 3 else zero
            if W > 2 * Wo:
                gx[c, 2 * i, W - 1] = zero
                gx[c, 2 * i + 1, W - 1] = zero
        if H > 2 * Ho:
            for q in range(W):
                gx[c, H - 1, q] = zero


# -------------------------------------------------------------------------------------- tv loss

_dphi = njit(inline="always")(tv.dphi)
_corner = njit(inline="always")(tv.corner)


@njit(**_JIT)
def _tv(x, g, rows, code, kv, kh, kv64, kh64, one, c125, p25):
    """g ← d tv/dx and rows[i] ← row i's float64 share of the value, one parallel pass over rows;
    each pixel gathers its (up to four) neighbour differences in the reference's order."""
    h, w, nc = x.shape
    for i in prange(h):
        val = 0.0
        for j in range(w):
            for c in range(nc):
                acc = one - one
                if code <= 3:
                    if i > 0:
                        acc += _dphi(x[i, j, c] - x[i - 1, j, c], code, one) * kv
                    if i < h - 1:
                        dv = x[i + 1, j, c] - x[i, j, c]
                        acc -= _dphi(dv, code, one) * kv
                        val += kv64 * float(dv * dv if code <= 1 else abs(dv))
                    if j > 0:
                        acc += _dphi(x[i, j, c] - x[i, j - 1, c], code, one) * kh
                    if j < w - 1:
                        dh = x[i, j + 1, c] - x[i, j, c]
                        acc -= _dphi(dh, code, one) * kh
                        val += kh64 * float(dh * dh if code <= 1 else abs(dh))
                else:
                    if i < h - 1 and j < w - 1:
                        gv, gh, s = _corner(x, i, j, c, code, c125, p25)
                        acc += gv + gh
                        val += float(s) if code == 4 else float(s) ** 1.25
                    if i > 0 and j < w - 1:
                        acc -= _corner(x, i - 1, j, c, code, c125, p25)[0]
                    if i < h - 1 and j > 0:
                        acc -= _corner(x, i, j - 1, c, code, c125, p25)[1]
                g[i, j, c] = acc
        rows[i] = val


def tv_loss(x, kind: str = "squared"):
    """``losses.tv_loss`` in one pass, x (H, W, C) -> (value, gradient in x's dtype): no difference
    arrays (the reference makes six image-sized temporaries, 150 MB of float64 at 1024²)."""
    h, w, c = x.shape
    kv, kh = tv.weights(kind, h, w, c)
    dt = x.dtype.type
    g = arena.empty(x.shape, x.dtype)
    rows = np.empty(h, dtype=np.float64)
    _tv(x, g, rows, tv.TV_CODES[kind], dt(kv), dt(kh), kv, kh, dt(1), dt(1.25), dt(0.25))
    return float(rows.sum()), g


# ------------------------------------------------------------------------------ the ops of OPS

_UNPACK_BLOCK = 1 << 20  # mask elements unpacked at a time by relu_backward (a multiple of 8)


def relu_forward(x, inplace: bool = False, pack: bool = False):
    """``(max(x, 0), x > 0)`` in one pass; in place and packed, the bits are written straight away."""
    if pack and inplace:
        bits = arena.empty((x.size + 7) // 8, np.uint8)
        _relu_inplace_packed(x.reshape(-1), bits)
        return x, PackedMask(bits, tuple(x.shape))
    mask = arena.empty(x.shape, bool)
    y = x if inplace else arena.empty(x.shape, x.dtype)
    if inplace:
        _relu_inplace(x.reshape(-1), mask.reshape(-1))
    else:
        _relu_mask(x.reshape(-1), y.reshape(-1), mask.reshape(-1))
    return y, (PackedMask.pack(mask) if pack else mask)


def relu_backward(gy, mask, inplace: bool = False):
    """``gy · mask``; in place it is a select per element, a packed mask unpacked 1 MB at a time."""
    if not inplace:
        return gy * (mask.unpack() if isinstance(mask, PackedMask) else mask)
    flat = gy.reshape(-1)
    if isinstance(mask, PackedMask):
        for i in range(0, flat.size, _UNPACK_BLOCK):
            j = min(flat.size, i + _UNPACK_BLOCK)
            _relu_backward_inplace(flat[i:j], mask.unpack(i, j))
    else:
        _relu_backward_inplace(flat, mask.reshape(-1))
    return gy


def avg_pool2d_forward(x):
    """2x2/stride-2 mean pool, one parallel pass per sample; the cache is the input shape."""
    n, c, h, w = x.shape
    y = arena.empty((n, c, h // 2, w // 2), x.dtype)
    for i in range(n):
        _avg_pool_fwd(x[i], y[i])
    return y, x.shape


def avg_pool2d_backward(gy, xshape):
    """``gy/4`` to every input of a window, 0 on dropped odd edges."""
    gx = arena.empty(xshape, gy.dtype)
    for i in range(gx.shape[0]):
        _avg_pool_bwd(gy[i], gx[i])
    return gx


def max_pool2d_forward(x):
    """2x2/stride-2 max pool with first-maximum ties; the cache is ``(argmax, x.shape)``."""
    n, c, h, w = x.shape
    y = arena.empty((n, c, h // 2, w // 2), x.dtype)
    idx = arena.empty((n, c, h // 2, w // 2), np.uint8)
    for i in range(n):
        _max_pool_fwd(x[i], y[i], idx[i])
    return y, (idx, x.shape)


def max_pool2d_backward(gy, cache):
    """Each ``gy`` to its window's argmax, 0 elsewhere."""
    idx, xshape = cache
    gx = arena.empty(xshape, gy.dtype)
    for i in range(gx.shape[0]):
        _max_pool_bwd(gy[i], np.ascontiguousarray(idx[i]), gx[i])
    return gx
