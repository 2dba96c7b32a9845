"""Gradient checking as a product feature: prove a hand-written backward against finite differences.

- ``check_vjp``: the directional (adjoint) test for an ``op_forward/op_backward`` pair: for a random
  direction ``v`` and a random cotangent ``u``, ``<u, (f(x+εv) − f(x−εv)) / 2ε>`` must equal
  ``<backward(u), v>``. One scalar per check, so it scales to any array size.
- ``check_grad``: the same test for a scalar function that returns ``(value, grad)``.
- ``numerical_grad``: elementwise central differences, for small arrays.
- ``rel_error``: ``max|a − b| / max(max|a|, max|b|)``, 0 when both are 0.
Everything runs in float64; ``minivgg gradcheck`` runs ``default_cases()`` and prints a table.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Iterable, Sequence

import numpy as np

from .backend import get_array_module, to_host


def rel_error(a, b) -> float:
    """Max-norm relative error between two arrays (or scalars); 0.0 when both are exactly zero."""
    a = np.asarray(to_host(a), dtype=np.float64)
    b = np.asarray(to_host(b), dtype=np.float64)
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
    xp = get_array_module(a)
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
    xp = get_array_module(args[wrt])
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
    xp = get_array_module(x)
    v = direction if direction is not None else xp.asarray(np.random.default_rng(seed).standard_normal(x.shape))
    _, g = value_and_grad(x)
    analytic = float(xp.sum(xp.asarray(g, dtype=xp.float64) * v))
    numeric = (float(value_and_grad(x + eps * v)[0]) - float(value_and_grad(x - eps * v)[0])) / (2 * eps)
    return _verdict(name or "function", x.shape, analytic, numeric, rtol, atol)


def numerical_grad(f: Callable, x, *, eps: float = 1e-6, cotangent=None) -> np.ndarray:
    """Elementwise central-difference gradient of ``sum(cotangent · f(x))`` (or of scalar ``f``) w.r.t. ``x``.

    Costs two evaluations per element: for small arrays only. ``x`` is perturbed in place and restored.
    """
    x = np.array(to_host(x), dtype=np.float64)
    grad = np.zeros_like(x)

    def scalar(val):
        val = np.asarray(to_host(_out(val)), dtype=np.float64)
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


# ------------------------------------------------------------------------------- the CLI suite

@dataclasses.dataclass
class Case:
    """One row of ``minivgg gradcheck``: a name, a shape label and a thunk returning a CheckResult."""
    name: str
    shape: str
    run: Callable[[], CheckResult]
    needs_weights: bool = False


def _kinkless(rng, shape, gap=0.05):
    """Normal samples pushed at least ``gap`` away from 0, so ReLU kinks sit far outside ±ε."""
    z = rng.standard_normal(shape)
    return z + np.sign(z) * gap + (z == 0) * gap


def _distinct(rng, shape):
    """Values that are all distinct (spaced 1/size apart), so max-pool has no ties within ±ε."""
    n = int(np.prod(shape))
    return (rng.permutation(n).astype(np.float64) / n).reshape(shape) * 4 - 2


def op_cases(seed: int = 0) -> list[Case]:
    """Gradient checks for every op over representative shapes, strides and pads."""
    from . import ops
    rng = np.random.default_rng(seed)
    cases = []
    conv_grid = [((2, 3, 7, 6), (4, 3, 3, 3), 1, 1), ((1, 2, 9, 8), (3, 2, 3, 3), 2, 1),
                 ((1, 3, 8, 7), (2, 3, 2, 2), 1, 0), ((1, 2, 7, 9), (3, 2, 5, 3), 2, 2)]
    for xs, ws, s, p in conv_grid:
        x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
        for wrt, label in ((0, "x"), (1, "w"), (2, "b")):
            cases.append(Case(f"conv2d d/d{label} s{s}p{p} k{ws[2]}x{ws[3]}", f"{xs}", (lambda x=x, w=w, b=b, s=s, p=p, wrt=wrt: check_vjp(
                ops.conv2d_forward, lambda g, c: ops.conv2d_backward(g, c, need_params=True), (x, w, b), wrt=wrt,
                kwargs={"stride": s, "pad": p}, name="conv2d"))))
    for shape in ((2, 3, 6, 5), (1, 4, 7, 7)):
        x = _kinkless(rng, shape)
        cases.append(Case("relu", f"{shape}", lambda x=x: check_vjp(ops.relu_forward, ops.relu_backward, (x,), name="relu")))
        xa = rng.standard_normal(shape)
        cases.append(Case("avg_pool2d", f"{shape}", lambda x=xa: check_vjp(ops.avg_pool2d_forward, ops.avg_pool2d_backward, (x,), name="avg_pool2d")))
        xm = _distinct(rng, shape)
        cases.append(Case("max_pool2d", f"{shape}", lambda x=xm: check_vjp(ops.max_pool2d_forward, ops.max_pool2d_backward, (x,), name="max_pool2d", eps=1e-7)))
    return cases


def default_cases() -> list[Case]:
    """Every check the CLI runs: the ops, plus loss terms, presets and a VGG slice where available."""
    cases = op_cases()
    for modname in ("losses", "vgg", "objective"):
        try:
            mod = __import__(f"minivgg.{modname}", fromlist=["gradcheck_cases"])
        except ImportError:
            continue
        extra = getattr(mod, "gradcheck_cases", None)
        if extra is not None:
            cases.extend(extra())
    return cases


def run_cases(cases: Iterable[Case], out=print) -> bool:
    """Run ``cases`` and print the table (op, shape, max relative error, verdict); True when all pass."""
    ok = True
    out(f"{'check':<44} {'shape':<22} {'rel. error':>11}  result")
    out("-" * 88)
    for case in cases:
        try:
            res = case.run()
            passed = res.passed
            label = "pass" if passed else "FAIL"
            err = f"{res.error:.2e}"
        except Exception as exc:  # a check that crashes fails, with the reason on its row
            passed, label, err = False, f"ERROR: {exc}", "-"
        ok &= passed
        out(f"{case.name:<44} {case.shape:<22} {err:>11}  {label}")
    return ok
