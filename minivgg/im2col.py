"""im2col / col2im: the patch matrix that turns a convolution into one matrix product.

One small utility module (Chainer's ``utils/conv.py`` shape) that works on NumPy and CuPy alike:
the loops run over the kh*kw kernel taps only, each a strided slice copy of the whole image.
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
            cols[:, :, i, j] = xpad[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride]
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
            img[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride] += cols[:, :, i, j]
    return img[:, :, pad:pad + h, pad:pad + w]
