"""Numba CPU kernels for the memory-bound parts of the engine: the Winograd tile transforms, the
ReLU and the 2x2 pools. Each is a fused, parallel (``prange``) loop doing in one pass what the NumPy
reference in ``minivgg/winograd.py`` / ``minivgg/ops.py`` does in several; tests compare the two.
Compiled on first use for float32 (the engine) and float64 (gradient checks), cached on disk.
"""
from __future__ import annotations

import numpy as np
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
def winograd_output(M, nt, tw, y, r0, accumulate):
    """y[o, r0 + 2i + p, 2j + q] (+)= (Aᵀ m A)[p, q] for m = M[:, o, i·tw + j] (16 values), cropped to y's
    rows and columns (odd sizes). M is (16, O, nt·tw), y (O, H, W)."""
    O = M.shape[1]
    H, W = y.shape[1], y.shape[2]
    for o in prange(O):
        for i in range(nt):
            for j in range(tw):
                k = i * tw + j
                z00 = z01 = z02 = z03 = z10 = z11 = z12 = z13 = M[0, o, k] * 0
                for b in range(4):
                    m0, m1, m2, m3 = M[b, o, k], M[4 + b, o, k], M[8 + b, o, k], M[12 + b, o, k]
                    s = m1 + m2
                    v0, v1 = m0 + s, m1 - m2 - m3
                    if b == 0:
                        z00, z10 = v0, v1
                    elif b == 1:
                        z01, z11 = v0, v1
                    elif b == 2:
                        z02, z12 = v0, v1
                    else:
                        z03, z13 = v0, v1
                for p in range(2):
                    r = r0 + 2 * i + p
                    if r >= H:
                        continue
                    a0, a1, a2, a3 = (z00, z01, z02, z03) if p == 0 else (z10, z11, z12, z13)
                    s = a1 + a2
                    out0, out1 = a0 + s, a1 - a2 - a3
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


# ---- Winograd F(4x4, 3x3): 6x6 input tiles, 4x4 output tiles (points 0, ±1, ±2, ∞; Lavin & Gray) ----
#   Bᵀ = [[4, 0,-5, 0, 1, 0],  Aᵀ = [[1, 1, 1, 1, 1, 0],
#         [0,-4,-4, 1, 1, 0],        [0, 1,-1, 2,-2, 0],
#         [0, 4,-4,-1, 1, 0],        [0, 1, 1, 4, 4, 0],
#         [0,-2,-1, 2, 1, 0],        [0, 1,-1, 8,-8, 1]]
#         [0, 2,-1,-2, 1, 0],
#         [0, 4, 0,-5, 0, 1]]

# Scalar code generated from Bᵀ and Aᵀ above: the 36 tile values stay in registers. Constants are
# cast to the array's dtype (``fN``) so float32 arithmetic stays float32.
@njit(**_JIT)
def winograd6_input(x, t0, nt, tw, V):
    """V[6a+b, c, i·tw + j] = (Bᵀ d B)[a, b] for the 6x6 tile d at rows 4(t0+i)−1…, cols 4j−1… of x (C, H, W),
    zero outside the image. V is (36, C, nt·tw)."""
    C, H, W = x.shape
    one = x[0, 0, 0] * 0 + 1
    f2, f4, f5 = one * 2, one * 4, one * 5
    for c in prange(C):
        for i in range(nt):
            r = 4 * (t0 + i) - 1
            for j in range(tw):
                q = 4 * j - 1
                if r >= 0 and r + 5 < H and q >= 0 and q + 5 < W:
                    d00 = x[c, r + 0, q + 0]; d01 = x[c, r + 0, q + 1]; d02 = x[c, r + 0, q + 2]; d03 = x[c, r + 0, q + 3]; d04 = x[c, r + 0, q + 4]; d05 = x[c, r + 0, q + 5]
                    d10 = x[c, r + 1, q + 0]; d11 = x[c, r + 1, q + 1]; d12 = x[c, r + 1, q + 2]; d13 = x[c, r + 1, q + 3]; d14 = x[c, r + 1, q + 4]; d15 = x[c, r + 1, q + 5]
                    d20 = x[c, r + 2, q + 0]; d21 = x[c, r + 2, q + 1]; d22 = x[c, r + 2, q + 2]; d23 = x[c, r + 2, q + 3]; d24 = x[c, r + 2, q + 4]; d25 = x[c, r + 2, q + 5]
                    d30 = x[c, r + 3, q + 0]; d31 = x[c, r + 3, q + 1]; d32 = x[c, r + 3, q + 2]; d33 = x[c, r + 3, q + 3]; d34 = x[c, r + 3, q + 4]; d35 = x[c, r + 3, q + 5]
                    d40 = x[c, r + 4, q + 0]; d41 = x[c, r + 4, q + 1]; d42 = x[c, r + 4, q + 2]; d43 = x[c, r + 4, q + 3]; d44 = x[c, r + 4, q + 4]; d45 = x[c, r + 4, q + 5]
                    d50 = x[c, r + 5, q + 0]; d51 = x[c, r + 5, q + 1]; d52 = x[c, r + 5, q + 2]; d53 = x[c, r + 5, q + 3]; d54 = x[c, r + 5, q + 4]; d55 = x[c, r + 5, q + 5]
                else:
                    d00 = _at(x, c, r + 0, q + 0, H, W); d01 = _at(x, c, r + 0, q + 1, H, W); d02 = _at(x, c, r + 0, q + 2, H, W); d03 = _at(x, c, r + 0, q + 3, H, W); d04 = _at(x, c, r + 0, q + 4, H, W); d05 = _at(x, c, r + 0, q + 5, H, W)
                    d10 = _at(x, c, r + 1, q + 0, H, W); d11 = _at(x, c, r + 1, q + 1, H, W); d12 = _at(x, c, r + 1, q + 2, H, W); d13 = _at(x, c, r + 1, q + 3, H, W); d14 = _at(x, c, r + 1, q + 4, H, W); d15 = _at(x, c, r + 1, q + 5, H, W)
                    d20 = _at(x, c, r + 2, q + 0, H, W); d21 = _at(x, c, r + 2, q + 1, H, W); d22 = _at(x, c, r + 2, q + 2, H, W); d23 = _at(x, c, r + 2, q + 3, H, W); d24 = _at(x, c, r + 2, q + 4, H, W); d25 = _at(x, c, r + 2, q + 5, H, W)
                    d30 = _at(x, c, r + 3, q + 0, H, W); d31 = _at(x, c, r + 3, q + 1, H, W); d32 = _at(x, c, r + 3, q + 2, H, W); d33 = _at(x, c, r + 3, q + 3, H, W); d34 = _at(x, c, r + 3, q + 4, H, W); d35 = _at(x, c, r + 3, q + 5, H, W)
                    d40 = _at(x, c, r + 4, q + 0, H, W); d41 = _at(x, c, r + 4, q + 1, H, W); d42 = _at(x, c, r + 4, q + 2, H, W); d43 = _at(x, c, r + 4, q + 3, H, W); d44 = _at(x, c, r + 4, q + 4, H, W); d45 = _at(x, c, r + 4, q + 5, H, W)
                    d50 = _at(x, c, r + 5, q + 0, H, W); d51 = _at(x, c, r + 5, q + 1, H, W); d52 = _at(x, c, r + 5, q + 2, H, W); d53 = _at(x, c, r + 5, q + 3, H, W); d54 = _at(x, c, r + 5, q + 4, H, W); d55 = _at(x, c, r + 5, q + 5, H, W)
                k = i * tw + j
                t00 = f4*d00 - f5*d20 + d40
                t10 = -f4*(d10 + d20) + d30 + d40
                t20 = f4*(d10 - d20) - d30 + d40
                t30 = f2*(d30 - d10) - d20 + d40
                t40 = f2*(d10 - d30) - d20 + d40
                t50 = f4*d10 - f5*d30 + d50
                t01 = f4*d01 - f5*d21 + d41
                t11 = -f4*(d11 + d21) + d31 + d41
                t21 = f4*(d11 - d21) - d31 + d41
                t31 = f2*(d31 - d11) - d21 + d41
                t41 = f2*(d11 - d31) - d21 + d41
                t51 = f4*d11 - f5*d31 + d51
                t02 = f4*d02 - f5*d22 + d42
                t12 = -f4*(d12 + d22) + d32 + d42
                t22 = f4*(d12 - d22) - d32 + d42
                t32 = f2*(d32 - d12) - d22 + d42
                t42 = f2*(d12 - d32) - d22 + d42
                t52 = f4*d12 - f5*d32 + d52
                t03 = f4*d03 - f5*d23 + d43
                t13 = -f4*(d13 + d23) + d33 + d43
                t23 = f4*(d13 - d23) - d33 + d43
                t33 = f2*(d33 - d13) - d23 + d43
                t43 = f2*(d13 - d33) - d23 + d43
                t53 = f4*d13 - f5*d33 + d53
                t04 = f4*d04 - f5*d24 + d44
                t14 = -f4*(d14 + d24) + d34 + d44
                t24 = f4*(d14 - d24) - d34 + d44
                t34 = f2*(d34 - d14) - d24 + d44
                t44 = f2*(d14 - d34) - d24 + d44
                t54 = f4*d14 - f5*d34 + d54
                t05 = f4*d05 - f5*d25 + d45
                t15 = -f4*(d15 + d25) + d35 + d45
                t25 = f4*(d15 - d25) - d35 + d45
                t35 = f2*(d35 - d15) - d25 + d45
                t45 = f2*(d15 - d35) - d25 + d45
                t55 = f4*d15 - f5*d35 + d55
                V[0, c, k] = f4*t00 - f5*t02 + t04
                V[1, c, k] = -f4*(t01 + t02) + t03 + t04
                V[2, c, k] = f4*(t01 - t02) - t03 + t04
                V[3, c, k] = f2*(t03 - t01) - t02 + t04
                V[4, c, k] = f2*(t01 - t03) - t02 + t04
                V[5, c, k] = f4*t01 - f5*t03 + t05
                V[6, c, k] = f4*t10 - f5*t12 + t14
                V[7, c, k] = -f4*(t11 + t12) + t13 + t14
                V[8, c, k] = f4*(t11 - t12) - t13 + t14
                V[9, c, k] = f2*(t13 - t11) - t12 + t14
                V[10, c, k] = f2*(t11 - t13) - t12 + t14
                V[11, c, k] = f4*t11 - f5*t13 + t15
                V[12, c, k] = f4*t20 - f5*t22 + t24
                V[13, c, k] = -f4*(t21 + t22) + t23 + t24
                V[14, c, k] = f4*(t21 - t22) - t23 + t24
                V[15, c, k] = f2*(t23 - t21) - t22 + t24
                V[16, c, k] = f2*(t21 - t23) - t22 + t24
                V[17, c, k] = f4*t21 - f5*t23 + t25
                V[18, c, k] = f4*t30 - f5*t32 + t34
                V[19, c, k] = -f4*(t31 + t32) + t33 + t34
                V[20, c, k] = f4*(t31 - t32) - t33 + t34
                V[21, c, k] = f2*(t33 - t31) - t32 + t34
                V[22, c, k] = f2*(t31 - t33) - t32 + t34
                V[23, c, k] = f4*t31 - f5*t33 + t35
                V[24, c, k] = f4*t40 - f5*t42 + t44
                V[25, c, k] = -f4*(t41 + t42) + t43 + t44
                V[26, c, k] = f4*(t41 - t42) - t43 + t44
                V[27, c, k] = f2*(t43 - t41) - t42 + t44
                V[28, c, k] = f2*(t41 - t43) - t42 + t44
                V[29, c, k] = f4*t41 - f5*t43 + t45
                V[30, c, k] = f4*t50 - f5*t52 + t54
                V[31, c, k] = -f4*(t51 + t52) + t53 + t54
                V[32, c, k] = f4*(t51 - t52) - t53 + t54
                V[33, c, k] = f2*(t53 - t51) - t52 + t54
                V[34, c, k] = f2*(t51 - t53) - t52 + t54
                V[35, c, k] = f4*t51 - f5*t53 + t55


@njit(**_JIT)
def winograd6_output(M, nt, tw, y, r0, accumulate):
    """y[o, r0 + 4i + p, 4j + q] (+)= (Aᵀ m A)[p, q] for the 36 values m = M[:, o, i·tw + j], cropped to y."""
    O = M.shape[1]
    H, W = y.shape[1], y.shape[2]
    one = M[0, 0, 0] * 0 + 1
    f2, f4, f8 = one * 2, one * 4, one * 8
    for o in prange(O):
        for i in range(nt):
            for j in range(tw):
                k = i * tw + j
                m00 = M[0, o, k]; m01 = M[1, o, k]; m02 = M[2, o, k]; m03 = M[3, o, k]; m04 = M[4, o, k]; m05 = M[5, o, k]
                m10 = M[6, o, k]; m11 = M[7, o, k]; m12 = M[8, o, k]; m13 = M[9, o, k]; m14 = M[10, o, k]; m15 = M[11, o, k]
                m20 = M[12, o, k]; m21 = M[13, o, k]; m22 = M[14, o, k]; m23 = M[15, o, k]; m24 = M[16, o, k]; m25 = M[17, o, k]
                m30 = M[18, o, k]; m31 = M[19, o, k]; m32 = M[20, o, k]; m33 = M[21, o, k]; m34 = M[22, o, k]; m35 = M[23, o, k]
                m40 = M[24, o, k]; m41 = M[25, o, k]; m42 = M[26, o, k]; m43 = M[27, o, k]; m44 = M[28, o, k]; m45 = M[29, o, k]
                m50 = M[30, o, k]; m51 = M[31, o, k]; m52 = M[32, o, k]; m53 = M[33, o, k]; m54 = M[34, o, k]; m55 = M[35, o, k]
                z00 = m00 + m10 + m20 + m30 + m40
                z10 = m10 - m20 + f2*(m30 - m40)
                z20 = m10 + m20 + f4*(m30 + m40)
                z30 = m10 - m20 + f8*(m30 - m40) + m50
                z01 = m01 + m11 + m21 + m31 + m41
                z11 = m11 - m21 + f2*(m31 - m41)
                z21 = m11 + m21 + f4*(m31 + m41)
                z31 = m11 - m21 + f8*(m31 - m41) + m51
                z02 = m02 + m12 + m22 + m32 + m42
                z12 = m12 - m22 + f2*(m32 - m42)
                z22 = m12 + m22 + f4*(m32 + m42)
                z32 = m12 - m22 + f8*(m32 - m42) + m52
                z03 = m03 + m13 + m23 + m33 + m43
                z13 = m13 - m23 + f2*(m33 - m43)
                z23 = m13 + m23 + f4*(m33 + m43)
                z33 = m13 - m23 + f8*(m33 - m43) + m53
                z04 = m04 + m14 + m24 + m34 + m44
                z14 = m14 - m24 + f2*(m34 - m44)
                z24 = m14 + m24 + f4*(m34 + m44)
                z34 = m14 - m24 + f8*(m34 - m44) + m54
                z05 = m05 + m15 + m25 + m35 + m45
                z15 = m15 - m25 + f2*(m35 - m45)
                z25 = m15 + m25 + f4*(m35 + m45)
                z35 = m15 - m25 + f8*(m35 - m45) + m55
                y00 = z00 + z01 + z02 + z03 + z04
                y01 = z01 - z02 + f2*(z03 - z04)
                y02 = z01 + z02 + f4*(z03 + z04)
                y03 = z01 - z02 + f8*(z03 - z04) + z05
                y10 = z10 + z11 + z12 + z13 + z14
                y11 = z11 - z12 + f2*(z13 - z14)
                y12 = z11 + z12 + f4*(z13 + z14)
                y13 = z11 - z12 + f8*(z13 - z14) + z15
                y20 = z20 + z21 + z22 + z23 + z24
                y21 = z21 - z22 + f2*(z23 - z24)
                y22 = z21 + z22 + f4*(z23 + z24)
                y23 = z21 - z22 + f8*(z23 - z24) + z25
                y30 = z30 + z31 + z32 + z33 + z34
                y31 = z31 - z32 + f2*(z33 - z34)
                y32 = z31 + z32 + f4*(z33 + z34)
                y33 = z31 - z32 + f8*(z33 - z34) + z35
                rows, cols = min(4, H - r0 - 4 * i), min(4, W - 4 * j)
                if rows == 4 and cols == 4:
                    _put(y, o, r0 + 4 * i + 0, 4 * j + 0, y00, accumulate)
                    _put(y, o, r0 + 4 * i + 0, 4 * j + 1, y01, accumulate)
                    _put(y, o, r0 + 4 * i + 0, 4 * j + 2, y02, accumulate)
                    _put(y, o, r0 + 4 * i + 0, 4 * j + 3, y03, accumulate)
                    _put(y, o, r0 + 4 * i + 1, 4 * j + 0, y10, accumulate)
                    _put(y, o, r0 + 4 * i + 1, 4 * j + 1, y11, accumulate)
                    _put(y, o, r0 + 4 * i + 1, 4 * j + 2, y12, accumulate)
                    _put(y, o, r0 + 4 * i + 1, 4 * j + 3, y13, accumulate)
                    _put(y, o, r0 + 4 * i + 2, 4 * j + 0, y20, accumulate)
                    _put(y, o, r0 + 4 * i + 2, 4 * j + 1, y21, accumulate)
                    _put(y, o, r0 + 4 * i + 2, 4 * j + 2, y22, accumulate)
                    _put(y, o, r0 + 4 * i + 2, 4 * j + 3, y23, accumulate)
                    _put(y, o, r0 + 4 * i + 3, 4 * j + 0, y30, accumulate)
                    _put(y, o, r0 + 4 * i + 3, 4 * j + 1, y31, accumulate)
                    _put(y, o, r0 + 4 * i + 3, 4 * j + 2, y32, accumulate)
                    _put(y, o, r0 + 4 * i + 3, 4 * j + 3, y33, accumulate)
                else:
                    if 0 < rows and 0 < cols:
                        _put(y, o, r0 + 4 * i + 0, 4 * j + 0, y00, accumulate)
                    if 0 < rows and 1 < cols:
                        _put(y, o, r0 + 4 * i + 0, 4 * j + 1, y01, accumulate)
                    if 0 < rows and 2 < cols:
                        _put(y, o, r0 + 4 * i + 0, 4 * j + 2, y02, accumulate)
                    if 0 < rows and 3 < cols:
                        _put(y, o, r0 + 4 * i + 0, 4 * j + 3, y03, accumulate)
                    if 1 < rows and 0 < cols:
                        _put(y, o, r0 + 4 * i + 1, 4 * j + 0, y10, accumulate)
                    if 1 < rows and 1 < cols:
                        _put(y, o, r0 + 4 * i + 1, 4 * j + 1, y11, accumulate)
                    if 1 < rows and 2 < cols:
                        _put(y, o, r0 + 4 * i + 1, 4 * j + 2, y12, accumulate)
                    if 1 < rows and 3 < cols:
                        _put(y, o, r0 + 4 * i + 1, 4 * j + 3, y13, accumulate)
                    if 2 < rows and 0 < cols:
                        _put(y, o, r0 + 4 * i + 2, 4 * j + 0, y20, accumulate)
                    if 2 < rows and 1 < cols:
                        _put(y, o, r0 + 4 * i + 2, 4 * j + 1, y21, accumulate)
                    if 2 < rows and 2 < cols:
                        _put(y, o, r0 + 4 * i + 2, 4 * j + 2, y22, accumulate)
                    if 2 < rows and 3 < cols:
                        _put(y, o, r0 + 4 * i + 2, 4 * j + 3, y23, accumulate)
                    if 3 < rows and 0 < cols:
                        _put(y, o, r0 + 4 * i + 3, 4 * j + 0, y30, accumulate)
                    if 3 < rows and 1 < cols:
                        _put(y, o, r0 + 4 * i + 3, 4 * j + 1, y31, accumulate)
                    if 3 < rows and 2 < cols:
                        _put(y, o, r0 + 4 * i + 3, 4 * j + 2, y32, accumulate)
                    if 3 < rows and 3 < cols:
                        _put(y, o, r0 + 4 * i + 3, 4 * j + 3, y33, accumulate)


@njit(inline="always")
def _put(y, o, r, q, v, accumulate):
    if accumulate:
        y[o, r, q] += v
    else:
        y[o, r, q] = v
