"""Elementwise helpers: central differences one element at a time (small arrays only) and the
max-norm relative error between two arrays."""
from __future__ import annotations

from typing import Callable

import numpy as np

from .arrays import host


def rel_error(a, b) -> float:
    """Max-norm relative error between two arrays (or scalars); 0.0 when both are exactly zero."""
    a = np.asarray(host(a), dtype=np.float64)
    b = np.asarray(host(b), dtype=np.float64)
    scale = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0))
    if scale == 0.0:
        return 0.0
    return float(np.max(np.abs(a - b), initial=0.0) / scale)


def numerical_grad(f: Callable, x, *, eps: float = 1e-6, cotangent=None) -> np.ndarray:
    """Elementwise central-difference gradient of ``sum(cotangent · f(x))`` (or of scalar ``f``) w.r.t. ``x``.

    Costs two evaluations per element: for small arrays only. Runs in float64 on a copy of ``x``;
    ``f`` may return ``out`` or ``(out, cache)``.
    """
    x = np.array(host(x), dtype=np.float64)
    grad = np.zeros_like(x)

    def scalar(val):
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
