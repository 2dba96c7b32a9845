"""The Numba CPU kernels of Winograd F(4x4, 3x3): the tile transforms of the forward
(``winograd4_input``, ``winograd4_output``) and of the transposed backward-data
(``winograd4_output_adjoint``, ``winograd4_input_adjoint``) as fused, parallel loops. They are part of
the CPU backend's op list (``cpu.py`` exports them); ``minivgg/engine/winograd.py`` drives them.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_JIT = dict(parallel=True, cache=True, nogil=True)


@njit(cache=True)
def _bt6(d0, d1, d2, d3, d4, d5, k):
    """Bᵀ of F(4x4, 3x3) applied to six values (rows [4 0 −5 0 1 0], [0 −4 −4 1 1 0], [0 4 −4 −1 1 0],
    [0 −2 −1 2 1 0], [0 2 −1 −2 1 0], [0 4 0 −5 0 1]; Lavin & Gray 2015). ``k`` = (2, 4, 5) in the
    arrays' dtype (a Python int would promote float32 to float64)."""
    two, four, five = k
    return (
        four * d0 - five * d2 + d4,
        d3 + d4 - four * (d1 + d2),
        d4 - d3 + four * (d1 - d2),
        d4 - d2 + two * (d3 - d1),
        d4 - d2 - two * (d3 - d1),
        four * d1 - five * d3 + d5,
    )


@njit(cache=True)
def _at4(m0, m1, m2, m3, m4, m5, k):
    """Aᵀ of F(4x4, 3x3) applied to six values (rows [1 1 1 1 1 0], [0 1 −1 2 −2 0], [0 1 1 4 4 0],
    [0 1 −1 8 −8 1]); ``k`` = (2, 4, 8) in the arrays' dtype."""
    two, four, eight = k
    p, n, P, N = m1 + m2, m1 - m2, m3 + m4, m3 - m4
    return m0 + p + P, n + two * N, p + four * P, n + eight * N + m5


@njit(**_JIT)
def winograd4_input(x, t0, nt, tw, V):
    """F(4x4, 3x3): V[6a+b, c, i·tw + j] = (Bᵀ d B)[a, b] for the 6x6 tile d at image rows 4(t0+i)−1…,
    cols 4j−1… of x (C, H, W), zero outside the image. V is (36, C, nt·tw). Two passes per tile row,
    each a branch-free loop the compiler vectorises: Bᵀ down the six image rows into T (one value per
    column, zero-padded on both sides), then B along T's columns at stride 4."""
    C, H, W = x.shape
    zero = x.dtype.type(0)
    k = (x.dtype.type(2), x.dtype.type(4), x.dtype.type(5))
    for c in prange(C):
        T = np.zeros((6, 4 * tw + 2), x.dtype)  # T[a, 1 + col]; columns outside the image stay 0
        for i in range(nt):
            r = 4 * (t0 + i) - 1
            if r >= 0 and r + 5 < H:
                for q in range(W):
                    e = _bt6(
                        x[c, r, q],
                        x[c, r + 1, q],
                        x[c, r + 2, q],
                        x[c, r + 3, q],
                        x[c, r + 4, q],
                        x[c, r + 5, q],
                        k,
                    )
                    T[0, q + 1], T[1, q + 1], T[2, q + 1] = e[0], e[1], e[2]
                    T[3, q + 1], T[4, q + 1], T[5, q + 1] = e[3], e[4], e[5]
            else:  # top or bottom tile row: rows outside the image read as 0
                for q in range(W):
                    e = _bt6(
                        x[c, r, q] if 0 <= r < H else zero,
                        x[c, r + 1, q] if 0 <= r + 1 < H else zero,
                        x[c, r + 2, q] if 0 <= r + 2 < H else zero,
                        x[c, r + 3, q] if 0 <= r + 3 < H else zero,
                        x[c, r + 4, q] if 0 <= r + 4 < H else zero,
                        x[c, r + 5, q] if 0 <= r + 5 < H else zero,
                        k,
                    )
                    T[0, q + 1], T[1, q + 1], T[2, q + 1] = e[0], e[1], e[2]
                    T[3, q + 1], T[4, q + 1], T[5, q + 1] = e[3], e[4], e[5]
            s = i * tw
            for a in range(6):
                for j in range(tw):
                    e = _bt6(
                        T[a, 4 * j],
                        T[a, 4 * j + 1],
                        T[a, 4 * j + 2],
                        T[a, 4 * j + 3],
                        T[a, 4 * j + 4],
                        T[a, 4 * j + 5],
                        k,
                    )
                    V[6 * a + 0, c, s + j], V[6 * a + 1, c, s + j], V[6 * a + 2, c, s + j] = (
                        e[0],
                        e[1],
                        e[2],
                    )
                    V[6 * a + 3, c, s + j], V[6 * a + 4, c, s + j], V[6 * a + 5, c, s + j] = (
                        e[3],
                        e[4],
                        e[5],
                    )


@njit(**_JIT)
def winograd4_output(M, nt, tw, y, r0, accumulate, bias):
    """F(4x4, 3x3): y[o, r0 + 4i + p, 4j + q] (+)= (Aᵀ m A)[p, q] + bias[o] for m = M[:, o, i·tw + j]
    (36 values), cropped to y (O, H, W). ``bias`` is (O,) or empty for none.

    Two passes per tile row, as in ``winograd4_input``: Aᵀ over M's six row groups into Z (4, 6, tw),
    six read streams at a time, then A along Z's six columns into four output rows (cropped tiles go
    through a scratch row)."""
    O = M.shape[1]
    H, W = y.shape[1], y.shape[2]
    K = (M.dtype.type(2), M.dtype.type(4), M.dtype.type(8))
    for o in prange(O):
        b = bias[o] if bias.size else M[0, o, 0] - M[0, o, 0]
        Z = np.empty((4, 6, tw), M.dtype)
        R = np.empty(4 * tw, M.dtype)  # one output row before cropping
        for i in range(nt):
            r = r0 + 4 * i
            if r >= H:
                continue
            k0 = i * tw
            for s in range(6):
                for j in range(tw):
                    k = k0 + j
                    z = _at4(
                        M[s, o, k],
                        M[6 + s, o, k],
                        M[12 + s, o, k],
                        M[18 + s, o, k],
                        M[24 + s, o, k],
                        M[30 + s, o, k],
                        K,
                    )
                    Z[0, s, j], Z[1, s, j], Z[2, s, j], Z[3, s, j] = z
            for t in range(min(4, H - r)):
                row = y[o, r + t]
                whole = 4 * tw <= W
                out = row if whole and not accumulate else R
                for j in range(tw):
                    v = _at4(
                        Z[t, 0, j], Z[t, 1, j], Z[t, 2, j], Z[t, 3, j], Z[t, 4, j], Z[t, 5, j], K
                    )
                    out[4 * j], out[4 * j + 1], out[4 * j + 2], out[4 * j + 3] = (
                        v[0] + b,
                        v[1] + b,
                        v[2] + b,
                        v[3] + b,
                    )
                if out is R or accumulate:
                    n = min(W, 4 * tw)
                    if accumulate:
                        for q in range(n):
                            row[q] += R[q]
                    else:
                        for q in range(n):
                            row[q] = R[q]


# ------------------------------------------- F(4x4, 3x3) transposed: backward-data with the forward's U


@njit(cache=True)
def _a6(g0, g1, g2, g3, k):
    """A of F(4x4, 3x3) (the transpose of ``_at4``'s Aᵀ) applied to four values; ``k`` = (2, 4, 8)."""
    two, four, eight = k
    p, n = g0 + four * g2, two * g1 + eight * g3
    return g0, g0 + g1 + g2 + g3, g0 - g1 + g2 - g3, p + n, p - n, g3


@njit(cache=True)
def _b6(g0, g1, g2, g3, g4, g5, k):
    """B of F(4x4, 3x3) (the transpose of ``_bt6``'s Bᵀ) applied to six values; ``k`` = (2, 4, 5)."""
    two, four, five = k
    return (
        four * g0,
        four * (g2 - g1 + g5) + two * (g4 - g3),
        -five * g0 - four * (g1 + g2) - g3 - g4,
        g1 - g2 + two * (g3 - g4) - five * g5,
        g0 + g1 + g2 + g3 + g4,
        g5,
    )


@njit(**_JIT)
def winograd4_output_adjoint(gy, t0, nt, tw, gM):
    """The transpose of ``winograd4_output``: gM[6a+s, o, i·tw + j] = (A g Aᵀ)[a, s] for the 4x4 block g of
    gy (O, H, W) at rows 4(t0+i)…, cols 4j…, zero beyond the image (cropped outputs had no part).
    Two passes per tile row: A down the four rows into Z, then A along Z's columns at stride 4."""
    O, H, W = gy.shape
    zero = gy.dtype.type(0)
    k = (gy.dtype.type(2), gy.dtype.type(4), gy.dtype.type(8))
    for o in prange(O):
        Z = np.zeros((6, 4 * tw), gy.dtype)  # columns W… stay 0
        for i in range(nt):
            r = 4 * (t0 + i)
            if r + 3 < H:
                for q in range(W):
                    e = _a6(gy[o, r, q], gy[o, r + 1, q], gy[o, r + 2, q], gy[o, r + 3, q], k)
                    Z[0, q], Z[1, q], Z[2, q], Z[3, q], Z[4, q], Z[5, q] = e
            else:
                for q in range(W):
                    e = _a6(
                        gy[o, r, q] if r < H else zero,
                        gy[o, r + 1, q] if r + 1 < H else zero,
                        gy[o, r + 2, q] if r + 2 < H else zero,
                        gy[o, r + 3, q] if r + 3 < H else zero,
                        k,
                    )
                    Z[0, q], Z[1, q], Z[2, q], Z[3, q], Z[4, q], Z[5, q] = e
            s = i * tw
            for a in range(6):
                for j in range(tw):
                    e = _a6(Z[a, 4 * j], Z[a, 4 * j + 1], Z[a, 4 * j + 2], Z[a, 4 * j + 3], k)
                    gM[6 * a + 0, o, s + j], gM[6 * a + 1, o, s + j], gM[6 * a + 2, o, s + j] = (
                        e[0],
                        e[1],
                        e[2],
                    )
                    gM[6 * a + 3, o, s + j], gM[6 * a + 4, o, s + j], gM[6 * a + 5, o, s + j] = (
                        e[3],
                        e[4],
                        e[5],
                    )


@njit(**_JIT)
def winograd4_input_adjoint(gV, t0, nt, tw, gx, accumulate):
    """The transpose of ``winograd4_input``: adds (B g Bᵀ) of every 6x6 block g = gV[:, c, i·tw + j] into
    gx (C, H, W) at rows 4(t0+i)−1…, cols 4j−1… (neighbouring tiles overlap by two rows and columns;
    the padding's share is dropped). A row's first writer stores instead of adding, unless
    ``accumulate``, so gx needs no zeroing: tile row i first writes rows 4i+1…4i+4 (row 0 for i = 0)."""
    C, H, W = gx.shape
    k = (gx.dtype.type(2), gx.dtype.type(4), gx.dtype.type(5))
    for c in prange(C):
        T = np.empty((6, 4 * tw + 2), gx.dtype)  # B along columns, T[a, 1 + col]
        for i in range(nt):
            s = i * tw
            for a in range(6):
                p4 = p5 = gx.dtype.type(0)  # tile j − 1's overlap into columns 4j and 4j + 1
                for j in range(tw):
                    e = _b6(
                        gV[6 * a, c, s + j],
                        gV[6 * a + 1, c, s + j],
                        gV[6 * a + 2, c, s + j],
                        gV[6 * a + 3, c, s + j],
                        gV[6 * a + 4, c, s + j],
                        gV[6 * a + 5, c, s + j],
                        k,
                    )
                    q = 4 * j
                    T[a, q], T[a, q + 1], T[a, q + 2], T[a, q + 3] = (
                        e[0] + p4,
                        e[1] + p5,
                        e[2],
                        e[3],
                    )
                    p4, p5 = e[4], e[5]
                T[a, 4 * tw], T[a, 4 * tw + 1] = p4, p5
            r = 4 * (t0 + i) - 1
            if (
                r >= 0 and r + 5 < H
            ):  # interior tile row: rows r, r + 1 were written by the row above
                for q in range(W):
                    e = _b6(
                        T[0, q + 1],
                        T[1, q + 1],
                        T[2, q + 1],
                        T[3, q + 1],
                        T[4, q + 1],
                        T[5, q + 1],
                        k,
                    )
                    gx[c, r, q] += e[0]
                    gx[c, r + 1, q] += e[1]
                    if accumulate:
                        gx[c, r + 2, q] += e[2]
                        gx[c, r + 3, q] += e[3]
                        gx[c, r + 4, q] += e[4]
                        gx[c, r + 5, q] += e[5]
                    else:
                        gx[c, r + 2, q], gx[c, r + 3, q], gx[c, r + 4, q], gx[c, r + 5, q] = (
                            e[2],
                            e[3],
                            e[4],
                            e[5],
                        )
                continue
            for q in range(
                W
            ):  # the first and last tile rows: rows outside the image are the padding's
                e = _b6(
                    T[0, q + 1], T[1, q + 1], T[2, q + 1], T[3, q + 1], T[4, q + 1], T[5, q + 1], k
                )
                for rho in range(6):
                    row = r + rho
                    if 0 <= row < H:
                        if accumulate or (rho <= 1 and row > 0):
                            gx[c, row, q] += e[rho]
                        else:
                            gx[c, row, q] = e[rho]
