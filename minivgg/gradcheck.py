"""Gradient checking as a product feature: prove a hand-written backward against finite differences.

- ``check_vjp``: the directional (adjoint) test for an ``op_forward/op_backward`` pair: for a random
  direction ``v`` and a random cotangent ``u``, ``<u, (f(x+εv) − f(x−εv)) / 2ε>`` must equal
  ``<backward(u), v>``. One scalar per check, so it scales to any array size.
- ``check_grad``: the same test for a scalar function that returns ``(value, grad)``.
- ``numerical_grad``: elementwise central differences, for small arrays.
- ``rel_error``: ``max|a − b| / max(max|a|, max|b|)``, 0 when both are 0.
Everything runs in float64. The library imports nothing of the engine: it works on NumPy arrays and
on any array whose module has NumPy's API (CuPy), so a test suite for other ops can use it as is.
The engine's own checks, which ``minivgg gradcheck`` and pytest run, are in ``minivgg.checks``.
"""
from __future__ import annotations

import dataclasses
import sys
from typing import Callable, Sequence

import numpy as np


def _xp(a):
    """The array module of ``a``: CuPy for a CuPy array (never imported here), else NumPy."""
    cupy = sys.modules.get("cupy")
    return cupy if cupy is not None and isinstance(a, cupy.ndarray) else np


def _host(a) -> np.ndarray:
    """``a`` as a NumPy array (CuPy arrays copied to the host)."""
    return a.get() if _xp(a) is not np else np.asarray(a)


def rel_error(a, b) -> float:
    """Max-norm relative error between two arrays (or scalars); 0.0 when both are exactly zero."""
    a = np.asarray(_host(a), dtype=np.float64)
    b = np.asarray(_host(b), dtype=np.float64)
    scale = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0))
    if scale == 0.0:
        return 0.0
    return float(np.max(np.abs(a - b), initial=0.0) / scale)


@dataclasses.dataclass
class CheckResult:
    """Outcome of one gradient check: the two numbers compared, their relative error, and the verdict."""
    name: str
    shape: tuple
    analytic: float | np.ndarray
    numeric: float | np.ndarray
    error: float
    passed: bool

    def report(self) -> str:
        """A one-paragraph failure report: what was compared and how far apart it is."""
        return (f"gradient check {self.name} {self.shape}: analytic {self.analytic!r} vs numeric "
                f"{self.numeric!r}, relative error {self.error:.3e} ({'pass' if self.passed else 'FAIL'})")


def _as_f64(a):
    xp = _xp(a)
    return xp.asarray(a, dtype=xp.float64)


def _out(result):
    """Forward functions may return ``out`` or ``(out, cache)``."""
    return result[0] if isinstance(result, tuple) else result


def _verdict(name, shape, analytic, numeric, rtol, atol) -> CheckResult:
    err = rel_error(analytic, numeric)
    diff = float(np.max(np.abs(np.asarray(analytic, dtype=np.float64) - np.asarray(numeric, dtype=np.float64)), initial=0.0))
    return CheckResult(name, tuple(shape), analytic, numeric, err, bool(err <= rtol or diff <= atol))


def check_vjp(forward: Callable, backward: Callable, args: Sequence, wrt: int = 0, *, eps: float = 1e-6,
              rtol: float = 1e-6, atol: float = 0.0, seed: int = 0, name: str = "", kwargs: dict | None = None) -> CheckResult:
    """Directional (adjoint) check of ``backward`` against ``forward`` w.r.t. ``args[wrt]``, in float64.

    ``forward(*args, **kwargs) -> out`` or ``(out, cache)``; ``backward(u, cache)`` returns the input
    gradients (an array, or a tuple indexed by ``wrt``). Float arrays in ``args`` are cast to float64.
    Passes when ``rel_error(<backward(u), v>, <u, Δf/2ε>) <= rtol`` (or the absolute gap <= ``atol``).
    """
    kwargs = kwargs or {}
    args = [(_as_f64(a) if getattr(getattr(a, "dtype", None), "kind", "") == "f" else a) for a in args]
    xp = _xp(args[wrt])
    rng = np.random.default_rng(seed)
    out, cache = forward(*args, **kwargs)
    u = xp.asarray(rng.standard_normal(out.shape))
    v = xp.asarray(rng.standard_normal(args[wrt].shape))
    grads = backward(u, cache)
    g = grads[wrt] if isinstance(grads, tuple) else grads
    if tuple(g.shape) != tuple(args[wrt].shape):
        raise AssertionError(f"{name or forward.__name__}: gradient shape {tuple(g.shape)} != input shape {tuple(args[wrt].shape)}")
    analytic = float(xp.sum(g * v))

    def f_along(t):
        shifted = list(args)
        shifted[wrt] = args[wrt] + t * v
        return float(xp.sum(u * _out(forward(*shifted, **kwargs))))

    numeric = (f_along(eps) - f_along(-eps)) / (2 * eps)
    return _verdict(name or getattr(forward, "__name__", "op"), args[wrt].shape, analytic, numeric, rtol, atol)


def check_grad(value_and_grad: Callable, x, *, eps: float = 1e-6, rtol: float = 1e-6, atol: float = 0.0,
               seed: int = 0, name: str = "", direction=None) -> CheckResult:
    """Directional check of a scalar function ``value_and_grad(x) -> (value, grad)`` at ``x`` (float64).

    Compares ``<grad, v>`` with ``(f(x+εv) − f(x−εv)) / 2ε`` for a random unit-variance ``v``
    (or ``direction``).
    """
    x = _as_f64(x)
    xp = _xp(x)
    v = direction if direction is not None else xp.asarray(np.random.default_rng(seed).standard_normal(x.shape))
    _, g = value_and_grad(x)
    analytic = float(xp.sum(xp.asarray(g, dtype=xp.float64) * v))
    numeric = (float(value_and_grad(x + eps * v)[0]) - float(value_and_grad(x - eps * v)[0])) / (2 * eps)
    return _verdict(name or "function", x.shape, analytic, numeric, rtol, atol)


def numerical_grad(f: Callable, x, *, eps: float = 1e-6, cotangent=None) -> np.ndarray:
    """Elementwise central-difference gradient of ``sum(cotangent · f(x))`` (or of scalar ``f``) w.r.t. ``x``.

    Costs two evaluations per element: for small arrays only. ``x`` is perturbed in place and restored.
    """
    x = np.array(_host(x), dtype=np.float64)
    grad = np.zeros_like(x)

    def scalar(val):
        val = np.asarray(_host(_out(val)), dtype=np.float64)
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
