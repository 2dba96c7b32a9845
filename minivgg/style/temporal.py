"""Ruder et al.'s temporal loss: stay close to the previous stylised frame where the flow is reliable.

``L_t(x) = (1/D) Σ_{i,j,k} c_ij (x_ijk − w_ijk)²`` with ``w`` the previous stylised frame warped onto
this one by the optical flow, ``c`` the (H, W) reliability mask (0 at disocclusions and motion
boundaries, 1 elsewhere) and ``D = H·W·3``; ``dL_t/dx = (2/D) c ⊙ (x − w)`` (``docs/gradients.md``).
``TemporalTerm`` adds it, weighted, to an ``Objective`` (``Objective.extra_terms``); a list of
``(target, mask)`` pairs gives the paper's long-term form (eq. 9), one pair per earlier frame.
"""

from __future__ import annotations

import numpy as np

from ..engine.backend import get_array_module
from ..errors import UserError


def temporal_loss(x, target, mask):
    """``(L_t, dL_t/dx)``: the mean over pixels and channels of ``mask · (x − target)²``.

    Parameters
    ----------
    x : ndarray, shape (H, W, C), float
        The image being optimised (pixels 0..255).
    target : ndarray, shape (H, W, C)
        The previous stylised frame warped onto this one (same units as ``x``).
    mask : ndarray, shape (H, W)
        Per-pixel weights in [0, 1]: 1 where the flow is reliable, 0 at occlusions.

    Returns
    -------
    value : float
        ``(1/D) Σ mask ⊙ (x − target)²`` with ``D = x.size``.
    grad : ndarray, shape (H, W, C), dtype of ``x``
        ``(2/D) mask ⊙ (x − target)``.

    Raises
    ------
    ValueError
        When the shapes do not match.

    Examples
    --------
    >>> x = np.full((2, 2, 3), 2.0)
    >>> value, grad = temporal_loss(x, np.zeros((2, 2, 3)), np.array([[1.0, 0.0], [0.0, 0.0]]))
    >>> value, float(grad[0, 0, 0]), float(grad[1, 1, 0])
    (1.0, 0.3333333333333333, 0.0)
    """
    xp = get_array_module(x)
    if tuple(target.shape) != tuple(x.shape) or tuple(mask.shape) != tuple(x.shape[:2]):
        raise ValueError(
            f"temporal_loss: x {tuple(x.shape)}, target {tuple(target.shape)} and mask "
            f"{tuple(mask.shape)} do not match"
        )
    d = x - xp.asarray(target, dtype=x.dtype)
    cd = xp.asarray(mask, dtype=x.dtype)[:, :, None] * d
    scale = 1.0 / x.size
    value = scale * float(xp.sum((cd * d).astype(xp.float64)))
    return value, cd * x.dtype.type(2.0 * scale)


class TemporalTerm:
    """``weight · Σ_k L_t(x; target_k, mask_k)`` as an extra term of an ``Objective``.

    Parameters
    ----------
    weight : float
        The term's weight, finite and >= 0.
    pairs : list of (target, mask)
        ``target`` (H, W, 3) float, ``mask`` (H, W) in [0, 1]; one pair per earlier frame.

    Examples
    --------
    >>> term = TemporalTerm(10.0, [(np.zeros((2, 2, 3)), np.ones((2, 2)))])
    >>> value, grad = term(np.ones((2, 2, 3)))
    >>> value, grad.shape
    (10.0, (2, 2, 3))
    """

    name = "temporal"

    def __init__(self, weight: float, pairs):
        weight = float(weight)
        if not np.isfinite(weight) or weight < 0:
            raise UserError(f"--temporal-weight must be a finite number >= 0, got {weight}")
        self.weight = weight
        self.pairs = [(np.asarray(t), np.asarray(m)) for t, m in pairs]

    def __call__(self, x):
        """``(weighted value, weighted gradient)`` at ``x`` (H, W, 3)."""
        xp = get_array_module(x)
        value, grad = 0.0, xp.zeros_like(x)
        for target, mask in self.pairs:
            v, g = temporal_loss(x, xp.asarray(target), xp.asarray(mask))
            value += v
            grad += g
        return self.weight * value, grad * x.dtype.type(self.weight)
