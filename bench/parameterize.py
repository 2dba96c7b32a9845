"""Image parameterisations for L-BFGS (issue 25): optimise a variable z with x = T(z) instead of x.

Mordvintsev et al. 2018 ("Differentiable image parameterizations", Distill) show that the variable
an optimiser steps in changes which directions it finds cheap. Both maps here are linear (plus a
constant), so the wrapped loss is ``L(T(z))`` and its gradient is the adjoint of T applied to the
pixel gradient, ``∇_z L = Tᵀ ∇_x L``: one evaluation of the inner objective per evaluation, and the
optimiser sees a different metric. Both wrappers forward ``last_terms``, so
``minivgg.optim.drivers.lbfgs(wrapper, wrapper.from_image(x0), iters, bounds=None)`` runs them
unchanged; ``wrapper.to_image(z)`` is the picture.

``ColorDecorrelated``: per pixel, ``x = mean + C z`` (as rows, ``x = mean + z·Cᵀ``), C the square
root of the ImageNet colour covariance (Lucid's ``color_correlation_svd_sqrt``, 0..1 units) times
255: a z of unit variance per component has ImageNet's colour covariance in 0..255 pixels (C·Cᵀ
has a diagonal of about 70², the per-channel std of ImageNet photos), so z has unit scale for a
natural picture. (Lucid divides by the largest column norm instead, to feed a sigmoid; a scalar
factor changes little for L-BFGS, which rescales its first Hessian guess by sᵀy / yᵀy.) Its first
column is luminance; the other two, chroma, are 3.6 and 7.5 times shorter, so a step in z moves
brightness far more than hue. Gradient: ``g_z = g_x·C``. Inverse: ``z = (x - mean)·C⁻ᵀ``.

``LaplacianPyramid``: ``x = Σ_k m_k U_k z_k``, k = 0..levels-1, where z_k is an
(⌈H/2^k⌉, ⌈W/2^k⌉, 3) image and U_k upsamples it bilinearly to (H, W) (linear interpolation along
each axis, half-pixel centres, edges clamped: ``scipy.ndimage.zoom(order=1, grid_mode=True,
mode="nearest")``). U_k is separable: per channel ``U_k z = A_k z B_kᵀ`` with dense 1-D matrices
A_k (H, h_k) and B_k (W, w_k); its adjoint is ``A_kᵀ g B_k``. A_0, B_0 are the identity, so
``from_image`` (z_0 = x, the rest 0) is an exact inverse on its image. The multiplier ``m_k =
level_scale**k`` defaults to 1, as Lucid's ``laplacian_pyramid``: U_k alone already makes coarse
levels move faster. A steepest-descent step in z moves the pixels by ``-Σ_k m_k² U_k U_kᵀ g``, and
for a gradient g smooth at scale 2^k, ``U_k U_kᵀ g ≈ 4^k g`` (U_kᵀ sums about 4^k pixels into each
coarse one): the pyramid is a preconditioner that amplifies smooth directions, and L-BFGS's first
steps and its history see them so. The state is one flat float64 vector (``pack`` / ``unpack``);
the driver reshapes the optimiser's vector to x0's shape, 1-D included.

Neither map takes the pixel box 0..255 to a box in z, so run L-BFGS with ``bounds=None``: the
picture may leave 0..255 during the optimisation and is clipped to 0..255 when it is saved
(``minivgg.run.image.save_image`` clips and rounds to uint8). The driver's ``callback(it, z,
terms)`` gets the state z: call ``to_image`` for the picture. With a 1-D state the driver counts
every variable as a pixel when it sizes the history (``memory.lbfgs_history``): harmless up to about
1000² pixels, past which pass ``history=10`` explicitly. Host NumPy only. The wrappers compose:
``LaplacianPyramid(ColorDecorrelated(obj), shape)`` is a pyramid of decorrelated colours (its
``to_image`` gives the inner wrapper's z).
"""

from __future__ import annotations

import numpy as np

# Lucid's square root of the ImageNet colour covariance (0..1 pixel units; rows R, G, B).
COLOR_CORRELATION_SVD_SQRT = np.array(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=np.float64
)


def interpolation_matrix(n_out: int, n_in: int) -> np.ndarray:
    """The (n_out, n_in) matrix of 1-D linear upsampling: half-pixel centres, edges clamped.

    Output i samples the input at ``s = (i + 0.5)·n_in/n_out - 0.5`` clamped to [0, n_in - 1],
    mixing its two neighbours; every row sums to 1 and ``n_out == n_in`` gives the identity.

    Parameters
    ----------
    n_out, n_in : int >= 1
        The sizes of the output and of the input.

    Returns
    -------
    ndarray, shape (n_out, n_in), float64

    Examples
    --------
    >>> interpolation_matrix(4, 2)
    array([[1.  , 0.  ],
           [0.75, 0.25],
           [0.25, 0.75],
           [0.  , 1.  ]])
    """
    rows = np.arange(n_out)
    s = np.clip((rows + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    left = np.floor(s).astype(np.intp)
    right = np.minimum(left + 1, n_in - 1)
    frac = s - left
    A = np.zeros((n_out, n_in))
    np.add.at(A, (rows, left), 1.0 - frac)  # add: left == right at the clamped edge
    np.add.at(A, (rows, right), frac)
    return A


class ColorDecorrelated:
    """Optimise decorrelated colours z, with ``x = mean + z·Cᵀ`` per pixel (z shaped like x).

    Parameters
    ----------
    obj : object with ``value_and_grad(x (H, W, 3)) -> (float, grad)`` and ``last_terms``
    matrix : array_like (3, 3), optional
        C, in pixels (0..255) per unit of z; default ``255 · COLOR_CORRELATION_SVD_SQRT``.
    mean : float or array_like (3,)
        The picture at z = 0 (default 127.5; the content's mean colour is the other natural pick).

    Examples
    --------
    >>> target = np.full((2, 2, 3), 100.0)
    >>> class Quadratic:
    ...     last_terms = None
    ...     def value_and_grad(self, x):
    ...         return 0.5 * float(np.sum((x - target) ** 2)), x - target
    >>> wrapped = ColorDecorrelated(Quadratic())
    >>> z = wrapped.from_image(target)
    >>> bool(np.allclose(wrapped.to_image(z), target)), wrapped.value_and_grad(z)[0] < 1e-20
    (True, True)
    """

    def __init__(self, obj, matrix=None, mean=127.5) -> None:
        self.obj = obj
        self.matrix = (
            255.0 * COLOR_CORRELATION_SVD_SQRT
            if matrix is None
            else np.array(matrix, dtype=np.float64)
        )
        self.mean = np.broadcast_to(np.asarray(mean, dtype=np.float64), (3,)).copy()
        self.inverse = np.linalg.inv(self.matrix)

    @property
    def last_terms(self):
        """The inner objective's weighted terms of the last evaluation."""
        return self.obj.last_terms

    def to_image(self, z: np.ndarray) -> np.ndarray:
        """The picture ``mean + z·Cᵀ`` (H, W, 3) of the colours z (H, W, 3)."""
        return self.mean + np.asarray(z, dtype=np.float64) @ self.matrix.T

    def from_image(self, x: np.ndarray) -> np.ndarray:
        """The z with ``to_image(z) == x`` (to rounding): ``(x - mean)·C⁻ᵀ``."""
        return (np.asarray(x, dtype=np.float64) - self.mean) @ self.inverse.T

    def pullback(self, grad_x: np.ndarray) -> np.ndarray:
        """The adjoint of ``to_image``'s linear part: ``∇_z = ∇_x·C``."""
        return np.asarray(grad_x, dtype=np.float64) @ self.matrix

    def value_and_grad(self, z: np.ndarray) -> tuple[float, np.ndarray]:
        """``(L(to_image(z)), ∇_z)``: one evaluation of the inner objective."""
        value, grad_x = self.obj.value_and_grad(self.to_image(z))
        return value, self.pullback(grad_x)

    __call__ = value_and_grad


class LaplacianPyramid:
    """Optimise a pyramid: ``x = Σ_k level_scale**k · U_k z_k``, held as one flat float64 vector.

    Level k is (⌈H/2^k⌉, ⌈W/2^k⌉, 3) and U_k its bilinear upsampling to (H, W). With the default
    ``level_scale = 1`` a gradient smooth at scale 2^k reaches z_k summed over ~4^k pixels, and the
    step that z_k takes comes back through U_k on all of them: coarse structure moves ~4^k times
    faster than under pixels (Lucid's pyramid). ``level_scale > 1`` favours coarse levels more
    (the step's share of level k grows as level_scale**(2k)).

    Parameters
    ----------
    obj : object with ``value_and_grad(x (H, W, 3)) -> (float, grad)`` and ``last_terms``
    shape : tuple (H, W, C)
        The inner objective's input shape.
    levels : int >= 1
        Level 0 is full size; coarser levels stop at 1 pixel.
    level_scale : float > 0
        m_k = level_scale**k.

    Examples
    --------
    >>> pyramid = LaplacianPyramid(None, (5, 4, 3), levels=3)
    >>> pyramid.level_shapes, pyramid.x0_shape
    ([(5, 4, 3), (3, 2, 3), (2, 1, 3)], (84,))
    >>> x = np.arange(60.0).reshape(5, 4, 3)
    >>> bool(np.array_equal(pyramid.to_image(pyramid.from_image(x)), x))
    True
    """

    def __init__(self, obj, shape, levels: int = 4, level_scale: float = 1.0) -> None:
        H, W, C = shape
        self.obj, self.shape = obj, (H, W, C)
        self.level_shapes = [(-(-H // 2**k), -(-W // 2**k), C) for k in range(levels)]
        self.multipliers = [float(level_scale) ** k for k in range(levels)]
        self.rows = [interpolation_matrix(H, h) for h, _, _ in self.level_shapes]
        self.cols = [interpolation_matrix(W, w) for _, w, _ in self.level_shapes]
        self.offsets = np.cumsum([0] + [h * w * C for h, w, C in self.level_shapes])
        self.x0_shape = (int(self.offsets[-1]),)

    @property
    def last_terms(self):
        """The inner objective's weighted terms of the last evaluation."""
        return self.obj.last_terms

    def pack(self, levels) -> np.ndarray:
        """One flat float64 vector of the levels (a list of (h_k, w_k, C) arrays)."""
        return np.concatenate([np.asarray(z, dtype=np.float64).ravel() for z in levels])

    def unpack(self, v) -> list[np.ndarray]:
        """The levels (views into v) of a flat vector of size ``x0_shape[0]``."""
        v = np.asarray(v, dtype=np.float64).reshape(-1)
        o = self.offsets
        if v.size != o[-1]:
            raise ValueError(f"a pyramid state has {o[-1]} values, got {v.size}")
        return [v[o[k] : o[k + 1]].reshape(s) for k, s in enumerate(self.level_shapes)]

    def to_image(self, v) -> np.ndarray:
        """The picture ``Σ_k m_k A_k z_k B_kᵀ`` (H, W, C) of a flat state."""
        x = np.zeros(self.shape)
        for m, A, B, z in zip(self.multipliers, self.rows, self.cols, self.unpack(v)):
            x += m * np.einsum("Hh,hwc,Ww->HWc", A, z, B, optimize=True)
        return x

    def from_image(self, x) -> np.ndarray:
        """A flat state whose picture is exactly x: z_0 = x / m_0 (= x), coarser levels 0."""
        levels = [np.zeros(s) for s in self.level_shapes]
        levels[0] = np.asarray(x, dtype=np.float64) / self.multipliers[0]
        return self.pack(levels)

    def pullback(self, grad_x) -> np.ndarray:
        """The adjoint of ``to_image``: the flat ``[m_k A_kᵀ g B_k]_k``."""
        g = np.asarray(grad_x, dtype=np.float64)
        return self.pack(
            m * np.einsum("Hh,HWc,Ww->hwc", A, g, B, optimize=True)
            for m, A, B in zip(self.multipliers, self.rows, self.cols)
        )

    def value_and_grad(self, v) -> tuple[float, np.ndarray]:
        """``(L(to_image(v)), ∇_v)``, v and ∇_v flat: one evaluation of the inner objective."""
        value, grad_x = self.obj.value_and_grad(self.to_image(v))
        return value, self.pullback(grad_x)

    __call__ = value_and_grad
