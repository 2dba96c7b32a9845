"""Elementwise helpers: central differences one element at a time (small arrays only) and the
max-norm relative error between two arrays."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .arrays import host


def rel_error(a: Any, b: Any) -> float:
    """Max-norm relative error between two arrays (or scalars).

    Parameters
    ----------
    a, b : array_like
        Same shape (or broadcastable); NumPy or CuPy arrays, or scalars.

    Returns
    -------
    float
        ``max|a − b| / max(max|a|, max|b|)``, 0.0 when both are exactly zero.

    Examples
    --------
    >>> from minivgg.gradcheck import rel_error
    >>> rel_error([1.0, 2.0], [1.0, 1.0])
    0.5
    >>> rel_error(0.0, 0.0)
    0.0
    """
    a = np.asarray(host(a), dtype=np.float64)
    b = np.asarray(host(b), dtype=np.float64)
    scale = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0))
    if scale == 0.0:
        return 0.0
    return float(np.max(np.abs(a - b), initial=0.0) / scale)


def numerical_grad(
    f: Callable[[np.ndarray], Any], x: Any, *, eps: float = 1e-6, cotangent: Any = None
) -> np.ndarray:
    """Elementwise central-difference gradient of ``sum(cotangent · f(x))`` (or of a scalar ``f``).

    Costs two evaluations per element: for small arrays only (``check_vjp`` costs O(1)). Runs in
    float64 on a copy of ``x``, with one fixed step and no error estimate.

    Parameters
    ----------
    f : callable
        ``f(x) -> out`` or ``(out, cache)``; ``out`` a scalar or an array.
    x : array_like
        The point (copied to a float64 host array).
    eps : float, default 1e-6
        The step of each central difference.
    cotangent : array_like, optional
        Weights of ``out`` (shaped like it); default: ``out`` is summed.

    Returns
    -------
    ndarray
        float64, shaped like ``x``.

    Examples
    --------
    >>> import numpy as np
    >>> from minivgg.gradcheck import numerical_grad
    >>> g = numerical_grad(lambda x: float(np.sum(x ** 3)), np.array([1.0, 2.0]))
    >>> np.allclose(g, [3.0, 12.0])
    True
    """
    x = np.array(host(x), dtype=np.float64)
    grad = np.zeros_like(x)

    def scalar(val: Any) -> float:
        val = val[0] if isinstance(val, tuple) else val
        val = np.asarray(host(val), dtype=np.float64)
        return float(np.sum(val * cotangent)) if cotangent is not None else float(val.sum())

    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + eps
        fp = scalar(f(x))
        x[i] = old - eps
        fm = scalar(f(x))
        x[i] = old
        grad[i] = (fp - fm) / (2 * eps)
    return grad
