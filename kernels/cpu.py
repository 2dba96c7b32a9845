"""The Numba CPU backend: the ops of ``OPS`` (ReLU, 2x2 pools) and the Winograd tile transforms
as fused, parallel (``prange``) loops doing in one pass what the reference (``reference.py``,
``minivgg/winograd.py``) does in several; tests compare the two. Arrays are C-contiguous float32
(the engine) or float64 (gradient checks); kernels compile on first use and are cached on disk.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from minivgg.masks import PackedMask

from .blas import gram, matmul  # noqa: F401  (the GEMMs, on scipy's OpenBLAS: see blas.py)

_JIT = dict(parallel=True, cache=True, nogil=True)


@njit(**_JIT)
def winograd_input(x, t0, nt, tw, V):
    """V[4a+b, c, i·tw + j] = (Bᵀ d B)[a, b] for the 4x4 tile d at image rows 2(t0+i)−1…, cols 2j−1…
    of x (C, H, W), zero outside the image (the conv's padding). V is (16, C, nt·tw).

    Two passes per tile row, each a branch-free loop the compiler vectorises: Bᵀ along the four image
    rows into T (one value per column, zero-padded on both sides), then B along T's columns at stride 2.
    """
    C, H, W = x.shape
    for c in prange(C):
        T = np.zeros((4, 2 * tw + 2), x.dtype)  # T[a, 1 + col]; T[:, 0] and T[:, W + 1:] stay 0
        for i in range(nt):
            r = 2 * (t0 + i) - 1
            if r >= 0 and r + 3 < H:
                for q in range(W):
                    d0, d1, d2, d3 = x[c, r, q], x[c, r + 1, q], x[c, r + 2, q], x[c, r + 3, q]
                    T[0, q + 1] = d0 - d2
                    T[1, q + 1] = d1 + d2
                    T[2, q + 1] = d2 - d1
                    T[3, q + 1] = d1 - d3
            else:  # top or bottom tile row: rows outside the image read as 0 (T[0, 0] is a zero)
                for q in range(W):
                    d0 = x[c, r, q] if 0 <= r < H else T[0, 0]
                    d1 = x[c, r + 1, q] if 0 <= r + 1 < H else T[0, 0]
                    d2 = x[c, r + 2, q] if 0 <= r + 2 < H else T[0, 0]
                    d3 = x[c, r + 3, q] if 0 <= r + 3 < H else T[0, 0]
                    T[0, q + 1] = d0 - d2
                    T[1, q + 1] = d1 + d2
                    T[2, q + 1] = d2 - d1
                    T[3, q + 1] = d1 - d3
            k = i * tw
            for a in range(4):
                for j in range(tw):
                    e0, e1, e2, e3 = T[a, 2 * j], T[a, 2 * j + 1], T[a, 2 * j + 2], T[a, 2 * j + 3]
                    V[4 * a + 0, c, k + j] = e0 - e2
                    V[4 * a + 1, c, k + j] = e1 + e2
                    V[4 * a + 2, c, k + j] = e2 - e1
                    V[4 * a + 3, c, k + j] = e1 - e3


@njit(**_JIT)
def winograd_output(M, nt, tw, y, r0, accumulate, bias):
    """y[o, r0 + 2i + p, 2j + q] (+)= (Aᵀ m A)[p, q] + bias[o] for m = M[:, o, i·tw + j] (16 values),
    cropped to y's rows and columns (odd sizes). M is (16, O, nt·tw), y (O, H, W); ``bias`` is (O,)
    or empty for none (the conv's bias rides along instead of costing a pass of its own)."""
    O = M.shape[1]
    H, W = y.shape[1], y.shape[2]
    for o in prange(O):
        b = bias[o] if bias.size else M[0, o, 0] - M[0, o, 0]
        for i in range(nt):
            r = r0 + 2 * i
            if r >= H:
                continue
            two = r + 1 < H
            for j in range(tw):
                k = i * tw + j
                m00, m01, m02, m03 = M[0, o, k], M[1, o, k], M[2, o, k], M[3, o, k]
                m10, m11, m12, m13 = M[4, o, k], M[5, o, k], M[6, o, k], M[7, o, k]
                m20, m21, m22, m23 = M[8, o, k], M[9, o, k], M[10, o, k], M[11, o, k]
                m30, m31, m32, m33 = M[12, o, k], M[13, o, k], M[14, o, k], M[15, o, k]
                u0, u1, u2, u3 = m00 + m10 + m20, m01 + m11 + m21, m02 + m12 + m22, m03 + m13 + m23  # Aᵀ row 0
                v0, v1, v2, v3 = m10 - m20 - m30, m11 - m21 - m31, m12 - m22 - m32, m13 - m23 - m33  # Aᵀ row 1
                y00, y01 = u0 + u1 + u2 + b, u1 - u2 - u3 + b
                y10, y11 = v0 + v1 + v2 + b, v1 - v2 - v3 + b
                q = 2 * j
                pair = q + 1 < W
                if accumulate:
                    y[o, r, q] += y00
                    if pair:
                        y[o, r, q + 1] += y01
                    if two:
                        y[o, r + 1, q] += y10
                        if pair:
                            y[o, r + 1, q + 1] += y11
                else:
                    y[o, r, q] = y00
                    if pair:
                        y[o, r, q + 1] = y01
                    if two:
                        y[o, r + 1, q] = y10
                        if pair:
                            y[o, r + 1, q + 1] = y11


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
                y[c, i, j] = (x[c, 2 * i, 2 * j] + x[c, 2 * i, 2 * j + 1]
                              + x[c, 2 * i + 1, 2 * j] + x[c, 2 * i + 1, 2 * j + 1]) * 0.25


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


# ------------------------------------------------------------------------------ the ops of OPS

_UNPACK_BLOCK = 1 << 20  # mask elements unpacked at a time by relu_backward (a multiple of 8)


def relu_forward(x, inplace: bool = False, pack: bool = False):
    """``(max(x, 0), x > 0)`` in one pass; in place and packed, the bits are written straight away."""
    if pack and inplace:
        bits = np.empty((x.size + 7) // 8, dtype=np.uint8)
        _relu_inplace_packed(x.reshape(-1), bits)
        return x, PackedMask(bits, tuple(x.shape))
    mask = np.empty(x.shape, dtype=bool)
    y = x if inplace else np.empty_like(x)
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
    y = np.empty((n, c, h // 2, w // 2), dtype=x.dtype)
    for i in range(n):
        _avg_pool_fwd(x[i], y[i])
    return y, x.shape


def avg_pool2d_backward(gy, xshape):
    """``gy/4`` to every input of a window, 0 on dropped odd edges."""
    gx = np.empty(tuple(xshape), dtype=gy.dtype)
    for i in range(gx.shape[0]):
        _avg_pool_bwd(gy[i], gx[i])
    return gx


def max_pool2d_forward(x):
    """2x2/stride-2 max pool with first-maximum ties; the cache is ``(argmax, x.shape)``."""
    n, c, h, w = x.shape
    y = np.empty((n, c, h // 2, w // 2), dtype=x.dtype)
    idx = np.empty((n, c, h // 2, w // 2), dtype=np.uint8)
    for i in range(n):
        _max_pool_fwd(x[i], y[i], idx[i])
    return y, (idx, x.shape)


def max_pool2d_backward(gy, cache):
    """Each ``gy`` to its window's argmax, 0 elsewhere."""
    idx, xshape = cache
    gx = np.empty(tuple(xshape), dtype=gy.dtype)
    for i in range(gx.shape[0]):
        _max_pool_bwd(gy[i], np.ascontiguousarray(idx[i]), gx[i])
    return gx
