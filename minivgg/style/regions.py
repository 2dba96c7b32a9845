"""One style per region: guided Gram matrices (Gatys et al. 2017, spatial control).

A content mask ``m_k`` (H, W) in [0, 1] says where style image k applies; an optional style mask
says where in style k its statistics are taken. ``tap_masks`` carries a mask down the network to
every tap's grid (``simple``: 2x2 means at each pool; ``inside``: a feature counts only when its
whole 3x3/2x2 neighbourhood is inside — min filters; ``all``: when any of it is — max filters; as
Gatys' ``get_fm_guides``). The guided Gram of features F (1, C, H_l, W_l) is

    G_m(F) = scale / a · (X ⊙ m)(X ⊙ m)ᵀ,   X = F (or F − mean(F) when centred),   a = mean(m),

the Gram of the masked features normalised by the mask's area, so a full mask gives the plain Gram.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..engine.backend import get_array_module
from ..errors import UserError
from ..network.arch import layer_sequence, tap_position
from . import losses

MASK_MODES = ("simple", "inside", "all")


def check_coverage(masks, what: str = "content masks") -> None:
    """UserError when the masks together cover no pixel at all."""
    if not np.any(np.sum(masks, axis=0) > 0):
        raise UserError(f"the {what} cover no pixel of the image")


def _pool(m, reduce):
    h, w = m.shape[0] // 2, m.shape[1] // 2
    return reduce(m[: 2 * h, : 2 * w].reshape(h, 2, w, 2), axis=(1, 3))


def tap_masks(arch: str, mask, taps, mode: str = "simple") -> dict:
    """``{tap: mask on that tap's (H_l, W_l) grid}`` for an input-sized mask (h, w)."""
    if mode not in MASK_MODES:
        raise UserError(f"unknown mask propagation {mode!r}: expected {', '.join(MASK_MODES)}")
    wanted = {tap_position(arch, t): t for t in taps}
    out, m = {}, np.asarray(mask, dtype=np.float64)
    if -1 in wanted:
        out[wanted[-1]] = m
    for i, (kind, _) in enumerate(layer_sequence(arch)[: max(wanted, default=-1) + 1]):
        if kind == "conv" and mode != "simple":
            m = (ndimage.minimum_filter if mode == "inside" else ndimage.maximum_filter)(
                m, size=3, mode="nearest"
            )
        elif kind == "pool":
            m = _pool(m, {"simple": np.mean, "inside": np.min, "all": np.max}[mode])
        if i in wanted:
            out[wanted[i]] = m
    return {t: out[t] for t in taps}


def guided_gram(F, mask, scale: float = 1.0, center: bool = False):
    """``G_m(F)`` (C, C) for F (1, C, H, W) and mask (H, W); zero when the mask is empty."""
    xp = get_array_module(F)
    m = xp.asarray(mask, dtype=F.dtype).reshape(1, -1)
    area = float(m.mean())
    X = F.reshape(F.shape[1], -1)
    if center:
        X = X - X.mean()
    X = X * m
    return losses.gram_matrix(xp.ascontiguousarray(X), scale / area if area > 0 else 0.0)


def guided_style_loss(F, A, mask, scale: float = 1.0, center: bool = False, norm: float = 1.0):
    """``E = norm · Σ (G_m(F) − A)²`` and ``dE/dF = (scale/a)(gG + gGᵀ)(X ⊙ m) ⊙ m`` (minus its mean when centred)."""
    xp = get_array_module(F)
    m = xp.asarray(mask, dtype=F.dtype).reshape(1, -1)
    area = float(m.mean())
    R = guided_gram(F, mask, scale, center) - A
    value = norm * float(xp.sum(R.astype(xp.float64) ** 2))
    if area == 0:
        return value, xp.zeros_like(F)
    S = R + R.T
    S *= S.dtype.type(2 * norm * scale / area)
    X = F.reshape(F.shape[1], -1)
    if center:
        X = X - X.mean()
    g = losses.matmul(S, X * m) * m
    if center:
        g -= g.mean()
    return value, g.reshape(F.shape)
