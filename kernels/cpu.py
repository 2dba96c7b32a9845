"""Numba CPU kernels for the memory-bound parts of the engine: the Winograd tile transforms, the
ReLU and the 2x2 pools. Each is a fused, parallel (``prange``) loop doing in one pass what the NumPy
reference in ``minivgg/winograd.py`` / ``minivgg/ops.py`` does in several; tests compare the two.
Compiled on first use for float32 (the engine) and float64 (gradient checks), cached on disk.
"""
from __future__ import annotations

from numba import njit, prange

_JIT = dict(parallel=True, cache=True, nogil=True)


@njit(inline="always")
def _at(x, c, r, q, H, W):
    return x[c, r, q] if (0 <= r < H and 0 <= q < W) else x[c, 0, 0] * 0


@njit(**_JIT)
def winograd_input(x, t0, nt, tw, V):
    """V[4a+b, c, i·tw + j] = (Bᵀ d B)[a, b] for the 4x4 tile d at image rows 2(t0+i)−1…, cols 2j−1…
    of x (C, H, W), zero outside the image (the conv's padding). V is (16, C, nt·tw).
    The 16 tile values live in scalars (registers); only border tiles pay for bounds checks."""
    C, H, W = x.shape
    for c in prange(C):
        for i in range(nt):
            r = 2 * (t0 + i) - 1
            for j in range(tw):
                q = 2 * j - 1
                if r >= 0 and r + 3 < H and q >= 0 and q + 3 < W:
                    d00 = x[c, r + 0, q + 0]; d01 = x[c, r + 0, q + 1]; d02 = x[c, r + 0, q + 2]; d03 = x[c, r + 0, q + 3]
                    d10 = x[c, r + 1, q + 0]; d11 = x[c, r + 1, q + 1]; d12 = x[c, r + 1, q + 2]; d13 = x[c, r + 1, q + 3]
                    d20 = x[c, r + 2, q + 0]; d21 = x[c, r + 2, q + 1]; d22 = x[c, r + 2, q + 2]; d23 = x[c, r + 2, q + 3]
                    d30 = x[c, r + 3, q + 0]; d31 = x[c, r + 3, q + 1]; d32 = x[c, r + 3, q + 2]; d33 = x[c, r + 3, q + 3]
                else:
                    d00 = _at(x, c, r + 0, q + 0, H, W); d01 = _at(x, c, r + 0, q + 1, H, W); d02 = _at(x, c, r + 0, q + 2, H, W); d03 = _at(x, c, r + 0, q + 3, H, W)
                    d10 = _at(x, c, r + 1, q + 0, H, W); d11 = _at(x, c, r + 1, q + 1, H, W); d12 = _at(x, c, r + 1, q + 2, H, W); d13 = _at(x, c, r + 1, q + 3, H, W)
                    d20 = _at(x, c, r + 2, q + 0, H, W); d21 = _at(x, c, r + 2, q + 1, H, W); d22 = _at(x, c, r + 2, q + 2, H, W); d23 = _at(x, c, r + 2, q + 3, H, W)
                    d30 = _at(x, c, r + 3, q + 0, H, W); d31 = _at(x, c, r + 3, q + 1, H, W); d32 = _at(x, c, r + 3, q + 2, H, W); d33 = _at(x, c, r + 3, q + 3, H, W)
                k = i * tw + j
                t00 = d00 - d20; t10 = d10 + d20; t20 = d20 - d10; t30 = d10 - d30
                t01 = d01 - d21; t11 = d11 + d21; t21 = d21 - d11; t31 = d11 - d31
                t02 = d02 - d22; t12 = d12 + d22; t22 = d22 - d12; t32 = d12 - d32
                t03 = d03 - d23; t13 = d13 + d23; t23 = d23 - d13; t33 = d13 - d33
                V[0, c, k] = t00 - t02
                V[1, c, k] = t01 + t02
                V[2, c, k] = t02 - t01
                V[3, c, k] = t01 - t03
                V[4, c, k] = t10 - t12
                V[5, c, k] = t11 + t12
                V[6, c, k] = t12 - t11
                V[7, c, k] = t11 - t13
                V[8, c, k] = t20 - t22
                V[9, c, k] = t21 + t22
                V[10, c, k] = t22 - t21
                V[11, c, k] = t21 - t23
                V[12, c, k] = t30 - t32
                V[13, c, k] = t31 + t32
                V[14, c, k] = t32 - t31
                V[15, c, k] = t31 - t33


@njit(**_JIT)
def winograd_output(M, nt, tw, y, r0, accumulate, bias):
    """y[o, r0 + 2i + p, 2j + q] (+)= (Aᵀ m A)[p, q] + bias[o] for m = M[:, o, i·tw + j] (16 values),
    cropped to y's rows and columns (odd sizes). M is (16, O, nt·tw), y (O, H, W); ``bias`` is (O,)
    or empty for none (the conv's bias rides along instead of costing a pass of its own)."""
    O = M.shape[1]
    H, W = y.shape[1], y.shape[2]
    for o in prange(O):
        b = bias[o] if bias.size else M[0, o, 0] * 0
        for i in range(nt):
            for j in range(tw):
                k = i * tw + j
                z00 = z01 = z02 = z03 = z10 = z11 = z12 = z13 = M[0, o, k] * 0
                for q in range(4):
                    m0, m1, m2, m3 = M[q, o, k], M[4 + q, o, k], M[8 + q, o, k], M[12 + q, o, k]
                    s = m1 + m2
                    v0, v1 = m0 + s, m1 - m2 - m3
                    if q == 0:
                        z00, z10 = v0, v1
                    elif q == 1:
                        z01, z11 = v0, v1
                    elif q == 2:
                        z02, z12 = v0, v1
                    else:
                        z03, z13 = v0, v1
                for p in range(2):
                    r = r0 + 2 * i + p
                    if r >= H:
                        continue
                    a0, a1, a2, a3 = (z00, z01, z02, z03) if p == 0 else (z10, z11, z12, z13)
                    s = a1 + a2
                    out0, out1 = a0 + s + b, a1 - a2 - a3 + b
                    col = 2 * j
                    if accumulate:
                        y[o, r, col] += out0
                        if col + 1 < W:
                            y[o, r, col + 1] += out1
                    else:
                        y[o, r, col] = out0
                        if col + 1 < W:
                            y[o, r, col + 1] = out1


@njit(**_JIT)
def relu_inplace(x, mask):
    """x ← max(x, 0) and mask ← x > 0, one pass over flat arrays."""
    for i in prange(x.size):
        v = x[i]
        pos = v > 0
        mask[i] = pos
        if not pos:
            x[i] = 0


@njit(**_JIT)
def relu_mask(x, y, mask):
    """y ← max(x, 0), mask ← x > 0 (out of place), flat arrays."""
    for i in prange(x.size):
        v = x[i]
        pos = v > 0
        mask[i] = pos
        y[i] = v if pos else 0


@njit(**_JIT)
def avg_pool_fwd(x, y):
    """y[c, i, j] = mean of the 2x2 window at (2i, 2j) of x (C, H, W)."""
    C, Ho, Wo = y.shape
    for c in prange(C):
        for i in range(Ho):
            for j in range(Wo):
                y[c, i, j] = (x[c, 2 * i, 2 * j] + x[c, 2 * i, 2 * j + 1]
                              + x[c, 2 * i + 1, 2 * j] + x[c, 2 * i + 1, 2 * j + 1]) * 0.25


@njit(**_JIT)
def avg_pool_bwd(gy, gx):
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
def max_pool_fwd(x, y, idx):
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
def max_pool_bwd(gy, idx, gx):
    """gx (C, H, W) ← gy routed to each window's argmax, 0 elsewhere."""
    C, H, W = gx.shape
    Ho, Wo = gy.shape[1], gy.shape[2]
    for c in prange(C):
        for r in range(H):
            i = r // 2
            for q in range(W):
                j = q // 2
                if i < Ho and j < Wo and idx[c, i, j] == 2 * (r - 2 * i) + (q - 2 * j):
                    gx[c, r, q] = gy[c, i, j]
                else:
                    gx[c, r, q] = 0
