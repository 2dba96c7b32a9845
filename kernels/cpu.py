"""The Numba CPU backend: the ops of ``OPS`` (ReLU, 2x2 pools) and the Winograd F(4x4, 3x3) tile
transforms as fused, parallel (``prange``) loops doing in one pass what the reference (``reference.py``,
and ``minivgg/winograd.py``'s F(2x2, 3x3) array code) does in several; tests compare the two. Arrays are C-contiguous float32
(the engine) or float64 (gradient checks); kernels compile on first use and are cached on disk.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from minivgg.engine import arena
from minivgg.engine.masks import PackedMask

from . import tv
from .blas import gram, matmul  # noqa: F401  (the GEMMs, on scipy's OpenBLAS: see blas.py)

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
