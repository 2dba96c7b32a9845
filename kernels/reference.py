"""The reference backend: every op of ``OPS`` as plain array code that runs on NumPy and CuPy alike.

This is the definition the Numba (``cpu``) and CUDA (``cuda_ops``) kernels are tested against, and
the path that runs whenever they cannot (non-contiguous or integer arrays, ``MINIVGG_CPU_KERNELS=0``,
CuPy without numba-cuda). Pools use the strided-quarters view of each 2x2 window (cs231n's
pool-equals-stride trick), so no loop runs over pixels.
"""

from __future__ import annotations

from minivgg.engine.backend import get_array_module
from minivgg.engine.masks import PackedMask


def relu_forward(x, inplace: bool = False, pack: bool = False):
    """``(max(x, 0), x > 0)``; ``inplace`` writes y over x, ``pack`` returns the mask as a ``PackedMask``."""
    xp = get_array_module(x)
    mask = x > 0
    y = xp.maximum(x, x.dtype.type(0), out=x) if inplace else xp.where(mask, x, x.dtype.type(0))
    return y, (PackedMask.pack(mask) if pack else mask)


def relu_backward(gy, mask, inplace: bool = False):
    """``gy · mask`` (the subgradient at 0 is 0); ``inplace`` writes it into gy."""
    if isinstance(mask, PackedMask):
        mask = mask.unpack()
    if inplace:
        return get_array_module(gy).multiply(gy, mask, out=gy)
    return gy * mask


def _quarters(x, ho, wo):
    """The four corners of every 2x2 window as strided views (top-left, top-right, bottom-left, bottom-right)."""
    return [x[:, :, i : 2 * ho : 2, j : 2 * wo : 2] for i in (0, 1) for j in (0, 1)]


def avg_pool2d_forward(x):
    """Mean of each 2x2 window: (N, C, H, W) -> (N, C, H//2, W//2); the cache is the input shape."""
    n, c, h, w = x.shape
    tl, tr, bl, br = _quarters(x, h // 2, w // 2)
    y = tl + tr
    y += bl
    y += br
    y *= x.dtype.type(0.25)
    return y, x.shape


def avg_pool2d_backward(gy, xshape):
    """Each input of a window gets ``gy/4``; a dropped odd last row/column gets 0."""
    xp = get_array_module(gy)
    n, c, h, w = xshape
    gx = xp.empty((n, c, h, w), dtype=gy.dtype)
    gx[:, :, 2 * (h // 2) :] = 0
    gx[:, :, :, 2 * (w // 2) :] = 0
    quarter = gy * gy.dtype.type(0.25)
    for view in _quarters(gx, h // 2, w // 2):
        view[...] = quarter
    return gx


def max_pool2d_forward(x):
    """Max of each 2x2 window; later corners win only when strictly larger (ties: the first maximum).
    The cache is ``(argmax uint8 (N, C, H//2, W//2), x.shape)``."""
    xp = get_array_module(x)
    corners = _quarters(x, x.shape[2] // 2, x.shape[3] // 2)
    y = corners[0].copy()
    idx = xp.zeros(y.shape, dtype=xp.uint8)
    for k, v in enumerate(corners[1:], start=1):
        better = v > y
        xp.copyto(y, v, where=better)
        idx[better] = k
    return y, (idx, x.shape)


def max_pool2d_backward(gy, cache):
    """Route each ``gy`` to its window's argmax; every other input gets 0."""
    idx, (n, c, h, w) = cache
    xp = get_array_module(gy)
    gx = xp.zeros((n, c, h, w), dtype=gy.dtype)
    for k, view in enumerate(_quarters(gx, h // 2, w // 2)):
        xp.copyto(view, gy, where=idx == k)
    return gx
