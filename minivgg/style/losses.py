"""Loss terms of style transfer, each a pure function returning ``(value, grad)``.

Features ``F`` arrive as (1, C, H, W) and are read as a matrix (C, M), M = H·W. Every gradient is
written by hand and checked in float64 by ``minivgg.tools.checks`` (``minivgg gradcheck``).
Scalar values are accumulated in float64 whatever the engine dtype.
"""

from __future__ import annotations

import numpy as np

from ..engine import arena
from ..engine.backend import get_array_module
from ..engine.dispatch import cpu_kernels, cuda_kernels

# ------------------------------------------------------------------------------------- content

CONTENT_NORMS = ("half_sum", "sum", "mean")


def content_loss(F, P, norm: str = "half_sum"):
    """``L = k · Σ (F − P)²`` with ``k = ½`` ('half_sum', Gatys), ``1`` ('sum'), ``1/size`` ('mean').

    Returns ``(L, dL/dF = 2k (F − P))``.
    """
    xp = get_array_module(F)
    if norm not in CONTENT_NORMS:
        raise ValueError(f"content_loss: unknown norm {norm!r}: expected one of {CONTENT_NORMS}")
    k = {"half_sum": 0.5, "sum": 1.0, "mean": 1.0 / F.size}[norm]
    diff = xp.subtract(F, P, out=arena.empty(F.shape, xp.result_type(F, P), xp))
    value = k * sum_squares(diff)
    diff *= diff.dtype.type(2 * k)
    return value, diff


def sum_squares(d) -> float:
    """``Σ d²`` accumulated in float64; on NumPy by ``einsum``, which casts in small buffers (no
    feature-map-sized temporary, and 1.7x faster than ``sum(square(d))``)."""
    xp = get_array_module(d)
    if xp is np:
        return float(np.einsum("i,i->", d.reshape(-1), d.reshape(-1), dtype=np.float64))
    return float(xp.sum(xp.square(d), dtype=xp.float64))


# ---------------------------------------------------------------------------------------- gram


def gram(F, scale: float = 1.0, center: bool = False):
    """Gram matrix ``G = scale · Fc Fcᵀ`` of F (1, C, H, W) read as (C, M); ``Fc = F − mean(F)``
    (one scalar over all elements) when ``center`` else ``F``. Returns (C, C)."""
    Fm = F.reshape(F.shape[1], -1)
    if center:
        Fm = Fm - Fm.mean()
    return gram_matrix(Fm, scale)


def gram_matrix(X, scale: float = 1.0):
    """``scale · X Xᵀ`` of a (C, M) matrix: SYRK on the engine's BLAS for NumPy arrays (one triangle,
    half the work; ``kernels/blas.py``), the array module's matmul otherwise."""
    kernels = cpu_kernels(X)
    if kernels is not None:
        return kernels.gram(X, scale)
    return (X @ X.T) * X.dtype.type(scale)


def matmul(a, b, out=None):
    """``a @ b`` (into ``out`` when given) on the engine's BLAS for C-contiguous NumPy arrays (never
    numpy's own, whose idle threads spin when numpy was imported before minivgg), the array module's
    matmul otherwise."""
    kernels = cpu_kernels(a, b)
    if kernels is None:
        return a @ b if out is None else get_array_module(a).matmul(a, b, out=out)
    return kernels.matmul(a, b, out)


def gram_backward(
    gG,
    F,
    scale: float = 1.0,
    center: bool = False,
    overwrite: bool = False,
    block_elements: int | None = None,
):
    """``dL/dF`` from ``dL/dG`` for ``gram``: ``scale · (gG + gGᵀ) Fc``, then minus its mean when centred.

    ``overwrite=True`` writes the result into F's own memory (F is consumed), one column block of
    ``block_elements`` (default ``OVERWRITE_BLOCK``) at a time, so no second feature-map-sized array
    is ever allocated.
    """
    Fm = F.reshape(F.shape[1], -1)
    S = gG + gG.T
    S *= S.dtype.type(scale)  # scaled while (C, C): no extra pass over the feature-map-sized result
    if overwrite:
        if center:
            Fm -= Fm.mean()
        step = max(1, (block_elements or OVERWRITE_BLOCK) // Fm.shape[0])
        kernels = cpu_kernels(S, Fm)
        for j in range(0, Fm.shape[1], step):
            if kernels is None:
                Fm[:, j : j + step] = S @ Fm[:, j : j + step]
            else:  # the engine's BLAS (kernels/blas.py) on a contiguous copy of the block
                Fm[:, j : j + step] = kernels.matmul(S, Fm[:, j : j + step].copy())
        if center:
            Fm -= Fm.mean()
        return F
    if center:
        Fm = Fm - Fm.mean()
    kernels = cpu_kernels(S, Fm)
    gF = (
        S @ Fm
        if kernels is None
        else kernels.matmul(S, Fm, arena.empty(Fm.shape, np.result_type(S, Fm)))
    )
    if center:
        gF -= gF.mean()
    return gF.reshape(F.shape)


# Elements per column block of ``gram_backward(overwrite=True)`` (8 MiB in float32: at 64 x 1024²,
# 118 ms against 150 ms for 16 MiB blocks and 124 ms for 4 MiB).
OVERWRITE_BLOCK = 1 << 21


# Gram variants of the presets: name -> (scale as a function of (C, M), centred?)
GRAMS = {
    "plain": (lambda C, M: 1.0, False),  # G = F Fᵀ (Gatys, Keras, Harvard)
    "centered": (lambda C, M: 1.0, True),  # g(F) = (F − μ)(F − μ)ᵀ (CNTK)
    "per_cm": (lambda C, M: 1.0 / (C * M), False),  # F Fᵀ / (C·M) (D2L)
    "per_m": (lambda C, M: 1.0 / M, False),  # F Fᵀ / M (EE8601)
}


def gram_variant(F, kind: str):
    """The preset Gram ``kind`` of F (see ``GRAMS``)."""
    scale, center = GRAMS[kind][0](F.shape[1], F.shape[2] * F.shape[3]), GRAMS[kind][1]
    return gram(F, scale, center)


def style_loss(F, A, kind: str = "plain", norm: float = 1.0):
    """``E = norm · Σ (G(F) − A)²`` with ``G`` the Gram variant ``kind`` and target Gram ``A`` (C, C).

    Returns ``(E, dE/dF)``; ``dE/dG = 2·norm·(G − A)`` is pushed through ``gram_backward``.
    """
    value, gG, scale, center = _style_parts(F, A, kind, norm)
    return value, gram_backward(gG, F, scale, center)


def style_loss_deferred(F, A, kind: str = "plain", norm: float = 1.0):
    """``style_loss`` with the gradient left for later: ``(E, grad)``, where ``grad(F2, overwrite=False)``
    returns ``dE/dF`` for F2 holding the same features (``overwrite=True``: computed in F2's memory). The value
    needs only the (C, C) Gram, so a caller short of memory can drop F and recompute it when the
    backward pass needs the gradient (``VGG.loss_and_input_grad`` does, for the first layer's tap)."""
    value, gG, scale, center = _style_parts(F, A, kind, norm)
    return value, lambda F2, overwrite=False: gram_backward(gG, F2, scale, center, overwrite)


def _style_parts(F, A, kind, norm):
    """``(E, dE/dG, scale, centred?)`` of the style term."""
    xp = get_array_module(F)
    scale, center = GRAMS[kind][0](F.shape[1], F.shape[2] * F.shape[3]), GRAMS[kind][1]
    R = gram(F, scale, center) - A
    value = norm * float(xp.sum(R.astype(xp.float64) ** 2))
    return value, R * R.dtype.type(2 * norm), scale, center


# ------------------------------------------------------------------------------------------ tv

TV_KINDS = ("squared", "keras", "harvard", "mean_squared", "mean_abs", "abs255")


def _diffs(x):
    """Vertical and horizontal neighbour differences of x (H, W, C)."""
    return x[1:, :, :] - x[:-1, :, :], x[:, 1:, :] - x[:, :-1, :]


def tv_loss(x, kind: str = "squared"):
    """Total variation of an image x (H, W, C) in pixel units, with its gradient.

    'squared' (Gatys): Σ dv² + Σ dh² over all neighbour pairs; 'mean_squared' (CNTK): ½(mean dv² + mean dh²);
    'mean_abs' (D2L): ½(mean|dv| + mean|dh|); 'abs255' (EE8601): (Σ|dv| + Σ|dh|)/255;
    'harvard': Σ_{i<H−1, j<W−1} (a + b) and 'keras': Σ_{i<H−1, j<W−1} (a + b)^1.25 with
    a = (x[i,j] − x[i+1,j])², b = (x[i,j] − x[i,j+1])². Subgradients at |0| and 0^0.25 are 0.
    Mean-subtraction and channel order cancel in differences, so x may be pixels or network input.
    """
    xp = get_array_module(x)
    if kind not in TV_KINDS:
        raise ValueError(f"tv_loss: unknown kind {kind!r}: expected one of {TV_KINDS}")
    if (
        k := cuda_kernels(x) or cpu_kernels(x)
    ) is not None:  # one fused pass (kernels/cpu.py, cuda_ops.py)
        return k.tv_loss(x, kind)
    g = xp.zeros_like(x)
    if kind in ("keras", "harvard"):
        dv = x[:-1, :-1] - x[1:, :-1]  # x[i,j] - x[i+1,j]
        dh = x[:-1, :-1] - x[:-1, 1:]  # x[i,j] - x[i,j+1]
        s = dv * dv + dh * dh
        if kind == "harvard":
            value, ds = float(xp.sum(s, dtype=xp.float64)), xp.ones_like(s)
        else:
            value, ds = float(xp.sum(s.astype(xp.float64) ** 1.25)), 1.25 * s**0.25
        gv, gh = 2 * ds * dv, 2 * ds * dh
        g[:-1, :-1] += gv + gh
        g[1:, :-1] -= gv
        g[:-1, 1:] -= gh
        return value, g
    dv, dh = _diffs(x)
    if kind == "squared":
        kv = kh = 1.0
        fv, fh = dv * dv, dh * dh
        gv, gh = 2 * dv, 2 * dh
    elif kind == "mean_squared":
        kv, kh = 0.5 / dv.size, 0.5 / dh.size
        fv, fh, gv, gh = dv * dv, dh * dh, 2 * dv, 2 * dh
    elif kind == "mean_abs":
        kv, kh = 0.5 / dv.size, 0.5 / dh.size
        fv, fh, gv, gh = xp.abs(dv), xp.abs(dh), xp.sign(dv), xp.sign(dh)
    else:  # abs255
        kv = kh = 1.0 / 255.0
        fv, fh, gv, gh = xp.abs(dv), xp.abs(dh), xp.sign(dv), xp.sign(dh)
    value = kv * float(xp.sum(fv, dtype=xp.float64)) + kh * float(xp.sum(fh, dtype=xp.float64))
    gv, gh = gv * kv, gh * kh
    g[1:] += gv
    g[:-1] -= gv
    g[:, 1:] += gh
    g[:, :-1] -= gh
    return value, g
