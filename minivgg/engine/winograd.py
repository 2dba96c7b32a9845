"""Winograd F(2x2, 3x3) and F(4x4, 3x3): a 3x3, stride-1, pad-1 convolution with 2.25x (4x) fewer multiplications.

Each 2x2 output tile is ``Y = Aᵀ [ Σ_c (G g_oc Gᵀ) ⊙ (Bᵀ d_c B) ] A`` for the 4x4 input tile ``d_c``
(Lavin & Gray 2015). Written as 16 independent GEMMs ``M[k] = U[k] @ V[k]`` with
``U[k] (O, C)`` the transformed kernels and ``V[k] (C, tiles)`` the transformed input tiles, so BLAS
does the heavy work; the transforms are adds and subtracts of strided slices. Tiles are processed in
bands of tile rows so the 4x-expanded ``V`` never exceeds a fixed size at any image size.

On the Numba path (C-contiguous float32/float64 NumPy arrays) the same conv runs as F(4x4, 3x3):
6x6 input tiles and 36 GEMMs over a quarter as many tiles, 2.25 multiplications per output instead
of 4, with the transforms fused in ``kernels/cpu_winograd.py`` (``winograd4_input``, ``winograd4_output``;
their Bᵀ and Aᵀ, for the points 0, ±1, ±2, ∞, are written out there, G is ``_G4``). Its
backward-data (from ``_TRANSPOSED_ADJOINT_FROM``: every layer by default) is the forward map
transposed, step by step (``winograd4_output_adjoint``: A gy Aᵀ per 4x4 block; the 36 GEMMs with
U[k]ᵀ; ``winograd4_input_adjoint``: B g Bᵀ added into the overlapping 6x6 windows), so it needs no
second memoised U (F(4x4)'s U are 4x the weights: 160 MB for VGG16 to ``block5_conv1``); below the
threshold it runs the forward routine on the flipped kernel's own U. It halves the
GEMM time of every layer (bench/results.md, "Winograd F(4x4)"). The price is rounding: its constants
(up to 8 and 1/24) make its float32 error ~6e-6 of the output's range at VGG's channel counts, ~20x
F(2x2)'s (``tests/test_kernels.py`` bounds both against float64; a whole evaluation still agrees
with PyTorch's to ~1e-7 in the loss and ~5e-4 in the gradient, ``python -m bench.compare --peers``).
"""

from __future__ import annotations

import math
import threading
import weakref

import numpy as np

from . import arena
from .backend import get_array_module
from .dispatch import cpu_kernels

# Largest transformed-input band (elements of V) built at once.
_BAND_ELEMENTS = (
    1 << 23
)  # 32 MiB of float32: measured best for the GEMMs at 512²–1024² (2^22: 5% slower)
# G of F(4x4, 3x3): U = G g Gᵀ is (6, 6) per (o, c).
_G4 = np.array(
    [
        [1 / 4, 0, 0],
        [-1 / 6, -1 / 6, -1 / 6],
        [-1 / 6, 1 / 6, -1 / 6],
        [1 / 24, 1 / 12, 1 / 6],
        [1 / 24, -1 / 12, 1 / 6],
        [0, 0, 1],
    ]
)
# F(4x4) backward-data of convs with C·O at least this runs the forward's U transposed instead of a
# second memoised U for the flipped kernel: 4·36·C·O bytes less (160 MB for VGG16 to block5_conv1),
# 5–11 % slower per backward conv alone but not measurably per evaluation (bench/results.md); raise it
# to keep the small layers' own U (28 MB for all layers below 256x512).
_TRANSPOSED_ADJOINT_FROM = 0
# Transformed kernels of frozen weights, keyed by the weight array (weakly: freed with it).
_U_MEMO: dict = {}
# Per-thread scratch for the V and M bands, reused across calls (allocating 16 MB per band made
# every call page-fault its scratch afresh): {(module, dtype, role): flat buffer}.
_SCRATCH = threading.local()


def _scratch(xp, dtype, role: str, shape):
    """A C-contiguous ``shape`` view of this thread's reusable ``role`` buffer, grown when too small."""
    size = math.prod(shape)
    bufs = _SCRATCH.__dict__.setdefault("bufs", {})
    key = (xp.__name__, xp.dtype(dtype).str, role)
    buf = bufs.get(key)
    if buf is None or buf.size < size:
        buf = bufs[key] = xp.empty(size, dtype=dtype)
    return buf[:size].reshape(shape)


def kernel_transform(w, adjoint: bool = False, m: int = 2):
    """U = G w Gᵀ for every (o, c): w (O, C, 3, 3) -> U (16, O, C), index k = 4·a + b (``m=4``:
    F(4x4)'s U (36, O, C), k = 6·a + b, computed in float64 and rounded once).

    ``adjoint=True`` transforms the flipped, transposed kernel (C, O, 3, 3) that backward-data needs
    (F(4x4)'s large layers run the forward U transposed instead).
    Results are memoised for read-only weight arrays (``VGG`` freezes its parameters), so a frozen
    network transforms each kernel once; writable arrays are transformed on every call.
    """
    frozen = getattr(getattr(w, "flags", None), "writeable", True) is False
    transform = _transform if m == 2 else _transform4
    if not frozen:
        return transform(_oriented(w, adjoint))
    key = (id(w), adjoint, m)
    hit = _U_MEMO.get(key)
    if hit is not None and hit[0]() is w:
        return hit[1]
    U = transform(_oriented(w, adjoint))
    try:
        ref = weakref.ref(w, lambda _: _U_MEMO.pop(key, None))
        _U_MEMO[key] = (ref, U)
    except TypeError:  # arrays that cannot be weakly referenced are simply not memoised
        pass
    return U


def _oriented(w, adjoint):
    return (
        get_array_module(w).ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
        if adjoint
        else w
    )


def _transform(w):
    xp = get_array_module(w)
    g0, g1, g2 = w[:, :, 0, :], w[:, :, 1, :], w[:, :, 2, :]
    half = w.dtype.type(0.5)
    rows = (g0, (g0 + g1 + g2) * half, (g0 - g1 + g2) * half, g2)  # G applied along kernel rows
    U = xp.empty((16,) + w.shape[:2], dtype=w.dtype)
    for a, r in enumerate(rows):
        c0, c1, c2 = r[..., 0], r[..., 1], r[..., 2]
        U[4 * a + 0] = c0
        U[4 * a + 1] = (c0 + c1 + c2) * half
        U[4 * a + 2] = (c0 - c1 + c2) * half
        U[4 * a + 3] = c2
    return U


def _transform4(w):
    """F(4x4)'s U (36, O, C) of a NumPy w (O, C, 3, 3)."""
    U = np.einsum("ai,ocij,bj->aboc", _G4, w.astype(np.float64), _G4)
    return np.ascontiguousarray(U.reshape((36,) + w.shape[:2]), dtype=w.dtype)


def _input_transform(xb, V):
    """V[4a+b] = (Bᵀ d B)[a, b] for all tiles of the padded band xb (C, 2·th+2, 2·tw+2); V (16, C, th, tw)."""
    _, hp, wp = xb.shape
    th, tw = (hp - 2) // 2, (wp - 2) // 2
    d = [xb[:, a : a + 2 * th : 2, :] for a in range(4)]
    t = (d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3])  # Bᵀ along rows
    for a, r in enumerate(t):
        e = [r[:, :, b : b + 2 * tw : 2] for b in range(4)]
        get_array_module(xb).subtract(e[0], e[2], out=V[4 * a + 0])
        get_array_module(xb).add(e[1], e[2], out=V[4 * a + 1])
        get_array_module(xb).subtract(e[2], e[1], out=V[4 * a + 2])
        get_array_module(xb).subtract(e[1], e[3], out=V[4 * a + 3])


def _output_transform(M, out, accumulate=False):
    """out (O, 2·th, 2·tw) = Aᵀ M A from M (16, O, th, tw); ``accumulate`` adds into ``out`` instead."""
    z = []
    for b in range(4):  # Aᵀ along rows: z[p][b]
        m0, m1, m2, m3 = M[b], M[4 + b], M[8 + b], M[12 + b]
        s = m1 + m2
        z.append((m0 + s, m1 - m2 - m3))
    for p in range(2):
        z0, z1, z2, z3 = (z[b][p] for b in range(4))
        s = z1 + z2
        if accumulate:
            out[:, p::2, 0::2] += z0 + s
            out[:, p::2, 1::2] += z1 - z2 - z3
        else:
            out[:, p::2, 0::2] = z0 + s
            out[:, p::2, 1::2] = z1 - z2 - z3


def conv3x3_same(x, w, adjoint: bool = False, accumulate_into=None, bias=None):
    """y = conv(x, w) (+ bias), 3x3 kernel, stride 1, zero pad 1: x (N, C, H, W), w (O, C, 3, 3) -> (N, O, H, W).

    ``adjoint=True`` applies the transpose instead (backward-data: the conv with the flipped,
    transposed kernel), x then being (N, O, H, W). The zero padding is built band by band, so
    beyond ``x`` and ``y`` only one band's buffers are ever allocated; odd H or W are handled by
    computing the last half tile into a scratch band and cropping. ``accumulate_into`` adds the
    result into that array (returned) instead of allocating ``y``: backward uses it to fold a tap's
    gradient in without a third activation-sized buffer. ``bias`` (O,) is added to every output
    (in the output transform on the Numba path, so it costs no pass of its own). The Numba path
    computes F(4x4, 3x3), the array path (CuPy, other layouts, ``reference_only``) F(2x2, 3x3).
    """
    xp = get_array_module(x)
    n, c, h, wd = x.shape
    o = w.shape[1] if adjoint else w.shape[0]
    acc = accumulate_into is not None
    y = accumulate_into if acc else arena.empty((n, o, h, wd), x.dtype, xp)
    x = xp.ascontiguousarray(x)
    kernels = cpu_kernels(x, y)
    if (
        kernels is not None
    ):  # F(4x4): fused, parallel transforms; the padding is read as zeros in place
        transposed = adjoint and c * o >= _TRANSPOSED_ADJOINT_FROM
        U = kernel_transform(
            w, adjoint and not transposed, m=4
        )  # transposed: the forward's (36, O_w, C_w)
        th_all, tw = -(-h // 4), -(-wd // 4)
        band = max(1, min(th_all, _BAND_ELEMENTS // (36 * max(c, o) * tw)))
        b = (
            xp.zeros(0, dtype=x.dtype)
            if bias is None
            else xp.ascontiguousarray(bias, dtype=x.dtype)
        )
        for i in range(n):
            for t0 in range(0, th_all, band):
                nt = min(th_all, t0 + band) - t0
                V = _scratch(xp, x.dtype, "V", (36, c, nt * tw))
                M = _scratch(xp, x.dtype, "M", (36, o, nt * tw))
                if transposed:  # gx = B-scatter of Uᵀ (A gy Aᵀ): the forward below, transposed
                    kernels.winograd4_output_adjoint(x[i], t0, nt, tw, V)
                    kernels.winograd4_input_adjoint(
                        kernels.matmul(U, V, M, trans_a=True), t0, nt, tw, y[i], acc
                    )
                else:
                    kernels.winograd4_input(x[i], t0, nt, tw, V)
                    kernels.winograd4_output(kernels.matmul(U, V, M), nt, tw, y[i], 4 * t0, acc, b)
            if transposed and bias is not None:
                y[i] += b.reshape(-1, 1, 1)
        return y
    U = kernel_transform(w, adjoint)
    th_all, tw = (h + 1) // 2, (wd + 1) // 2
    band = max(1, min(th_all, _BAND_ELEMENTS // (16 * max(c, o) * tw)))
    xb_buf = xp.empty((c, 2 * band + 2, 2 * tw + 2), dtype=x.dtype)
    V_buf = xp.empty((16, c, band * tw), dtype=x.dtype)
    for i in range(n):
        for t0 in range(0, th_all, band):
            t1 = min(th_all, t0 + band)
            nt = t1 - t0
            # padded rows [2·t0, 2·t1 + 2) are image rows [2·t0 − 1, 2·t1 + 1), clipped to the image
            xb = xb_buf[:, : 2 * nt + 2]
            xb.fill(0)
            lo, hi = max(0, 2 * t0 - 1), min(h, 2 * t1 + 1)
            xb[:, lo - (2 * t0 - 1) : hi - (2 * t0 - 1), 1 : wd + 1] = x[i, :, lo:hi]
            V = V_buf[:, :, : nt * tw]
            _input_transform(xb, V.reshape(16, c, nt, tw))
            M = xp.matmul(U, V).reshape(16, o, nt, tw)
            r0, r1 = 2 * t0, min(h, 2 * t1)
            if r1 - r0 == 2 * nt and 2 * tw == wd:
                _output_transform(M, y[i, :, r0:r1], acc)
            else:  # ragged edge: compute whole tiles, keep what is inside the image
                yb = xp.empty((o, 2 * nt, 2 * tw), dtype=x.dtype)
                _output_transform(M, yb)
                if acc:
                    y[i, :, r0:r1] += yb[:, : r1 - r0, :wd]
                else:
                    y[i, :, r0:r1] = yb[:, : r1 - r0, :wd]
    if bias is not None:
        y += bias.astype(x.dtype, copy=False).reshape(1, -1, 1, 1)
    return y
