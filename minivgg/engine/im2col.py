"""im2col / col2im: the patch matrix that turns a convolution into one matrix product, and the
conv built on it (``conv_gemm``: the textbook algorithm, ``algorithm="im2col"`` in ``ops``).

One small utility module (Chainer's ``utils/conv.py`` shape) that works on NumPy and CuPy alike:
the loops run over the kh*kw kernel taps only, each a strided slice copy. The conv forward, its
backward-data and its weight gradient run in bands of output rows, so the patch matrix stays small
at any image size (no 600 MB matrix for conv1_2 at 512²).
"""

from __future__ import annotations

from .backend import get_array_module


def out_size(size: int, k: int, stride: int, pad: int) -> int:
    """Output length of a sliding window: ``floor((size + 2*pad - k) / stride) + 1``."""
    return (size + 2 * pad - k) // stride + 1


def im2col(x, kh: int, kw: int, stride: int = 1, pad: int = 0):
    """Patches of ``x`` (N, C, H, W) as ``cols`` (N, C, kh, kw, Ho, Wo).

    ``cols[n, c, i, j, p, q] = xpad[n, c, i + stride*p, j + stride*q]`` with zero padding ``pad``.
    Reshape to (N, C*kh*kw, Ho*Wo) for the GEMM; ``col2im`` is its exact adjoint.
    """
    xp = get_array_module(x)
    n, c, h, w = x.shape
    ho, wo = out_size(h, kh, stride, pad), out_size(w, kw, stride, pad)
    xpad = xp.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))) if pad else x
    cols = xp.empty((n, c, kh, kw, ho, wo), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = xpad[
                :, :, i : i + stride * ho : stride, j : j + stride * wo : stride
            ]
    return cols


def col2im(cols, h: int, w: int, stride: int = 1, pad: int = 0):
    """Adjoint of ``im2col``: scatter-add ``cols`` (N, C, kh, kw, Ho, Wo) back to (N, C, H, W)."""
    xp = get_array_module(cols)
    n, c, kh, kw, ho, wo = cols.shape
    # Padded canvas large enough for every window even when stride leaves a ragged edge.
    hp = max(h + 2 * pad, stride * (ho - 1) + kh)
    wp = max(w + 2 * pad, stride * (wo - 1) + kw)
    img = xp.zeros((n, c, hp, wp), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            img[:, :, i : i + stride * ho : stride, j : j + stride * wo : stride] += cols[
                :, :, i, j
            ]
    return img[:, :, pad : pad + h, pad : pad + w]


# ------------------------------------------------------------------ the conv as banded GEMMs
# Largest patch matrix (elements) built at once: 32 MiB of float32. Whole, the patch matrix of
# conv1_2 at 512² would be 64·9·512² floats = 604 MB; in bands of output rows it never exceeds this.
_BAND_ELEMENTS = 1 << 23


def _row_bands(ho: int, row_elements: int):
    """``(p0, p1)`` ranges of output rows whose patch matrix has at most ``_BAND_ELEMENTS`` elements."""
    step = max(1, _BAND_ELEMENTS // max(1, row_elements))
    return [(p0, min(ho, p0 + step)) for p0 in range(0, ho, step)]


def _padded_rows(x, p0: int, p1: int, kh: int, stride: int, pad: int):
    """Input rows that output rows [p0, p1) read, zero-padded: x (C, H, W) -> (C, (p1−p0−1)·stride + kh, W + 2·pad)."""
    xp = get_array_module(x)
    c, h, w = x.shape
    top = p0 * stride - pad  # first padded row, in image coordinates
    rows = (p1 - p0 - 1) * stride + kh
    band = xp.zeros((c, rows, w + 2 * pad), dtype=x.dtype)
    lo, hi = max(0, top), min(h, top + rows)
    if hi > lo:
        band[:, lo - top : hi - top, pad : pad + w] = x[:, lo:hi]
    return band


def conv_gemm(x, w, bias=None, stride: int = 1, pad: int = 0):
    """``y = w ⋆ x (+ bias)`` as im2col + one GEMM per band of output rows: x (N, C, H, W), w (O, C, kh, kw).

    ``y[n, :, p0:p1] = W₂ · cols`` with ``W₂ = w.reshape(O, C·kh·kw)`` and ``cols`` the patches of
    those rows only, so the patch matrix stays below ``_BAND_ELEMENTS`` at any image size.
    """
    xp = get_array_module(x)
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    ho, wo = out_size(h, kh, stride, pad), out_size(wd, kw, stride, pad)
    w2 = w.reshape(o, -1)
    y = xp.empty((n, o, ho, wo), dtype=x.dtype)
    for i in range(n):
        for p0, p1 in _row_bands(ho, c * kh * kw * wo):
            cols = im2col(_padded_rows(x[i], p0, p1, kh, stride, pad)[None], kh, kw, stride, 0)
            y[i, :, p0:p1] = xp.matmul(w2, cols.reshape(c * kh * kw, -1)).reshape(o, p1 - p0, wo)
    if bias is not None:
        y += bias.astype(x.dtype, copy=False).reshape(1, -1, 1, 1)
    return y


def conv_gemm_adjoint(gy, w, xshape, stride: int = 1, pad: int = 0, accumulate_into=None):
    """Backward-data of ``conv_gemm``: ``gx = col2im(W₂ᵀ · gy)``, band by band (gy (N, O, Ho, Wo) -> xshape).

    Neighbouring bands read overlapping input rows, so each band's ``col2im`` is added into gx.
    ``accumulate_into`` (shaped like x) receives the result instead of a fresh array.
    """
    xp = get_array_module(gy)
    n, o, ho, wo = gy.shape
    _, c, kh, kw = w.shape
    h, wd = xshape[2], xshape[3]
    w2t = w.reshape(o, -1).T
    gx = accumulate_into if accumulate_into is not None else xp.zeros(tuple(xshape), dtype=gy.dtype)
    for i in range(n):
        for p0, p1 in _row_bands(ho, c * kh * kw * wo):
            gcols = xp.matmul(w2t, gy[i, :, p0:p1].reshape(o, -1)).reshape(
                1, c, kh, kw, p1 - p0, wo
            )
            rows = (p1 - p0 - 1) * stride + kh
            band = col2im(gcols, rows, wd + 2 * pad, stride, 0)[0]
            top = p0 * stride - pad
            lo, hi = max(0, top), min(h, top + rows)
            if hi > lo:
                gx[i, :, lo:hi] += band[:, lo - top : hi - top, pad : pad + wd]
    return gx


def conv_gemm_weight_grad(x, gy, kh: int, kw: int, stride: int = 1, pad: int = 0):
    """``gw = Σ_bands gy_band · cols_bandᵀ`` (O, C, kh, kw): the weight gradient, with the same bands as ``conv_gemm``."""
    xp = get_array_module(x)
    n, c = x.shape[:2]
    o, ho, wo = gy.shape[1:]
    gw = xp.zeros((o, c * kh * kw), dtype=gy.dtype)
    for i in range(n):
        for p0, p1 in _row_bands(ho, c * kh * kw * wo):
            cols = im2col(_padded_rows(x[i], p0, p1, kh, stride, pad)[None], kh, kw, stride, 0)
            gw += xp.matmul(gy[i, :, p0:p1].reshape(o, -1), cols.reshape(c * kh * kw, -1).T)
    return gw.reshape(o, c, kh, kw)
