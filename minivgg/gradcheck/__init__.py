"""Gradient checking as a library: prove a hand-written backward against finite differences.

- ``check_vjp(forward, backward, args, wrt=0, *, eps, rtol, atol, dtype, seed, probes, name, kwargs)``:
  the directional (adjoint) test ``⟨backward(u), v⟩`` vs ``d/dt ⟨u, f(x + t·v)⟩`` for random ``u``
  and a random unit ``v``: O(1) evaluations whatever the size of ``x``.
- ``check_grad(value_and_grad, x, ...)``: the same for a scalar function returning ``(value, grad)``.
- ``assert_vjp`` / ``assert_grad``: the same arguments; raise ``AssertionError(report)`` unless "pass".
- ``CheckResult``: ``verdict`` ("pass", "fail" or "kink"), ``passed``, ``error``, ``tolerance``,
  ``suspects`` (the elements a failure is localised to), ``problems`` (structural faults), ``report()``.
- ``numerical_grad`` (elementwise, small arrays) and ``rel_error``.

The finite difference is Richardson's on steps h and h/2; its truncation and rounding (from the
dtype's machine epsilon and the noise measured at a tiny step) give the tolerance, and the two
one-sided slopes tell a kink inside the step from a bug. ``dtype=np.float32`` runs everything in
float32. The library imports nothing of the engine: it works on NumPy arrays and on CuPy arrays
(recognised through ``sys.modules``, never imported), so any test suite can use it as is.
"""
from __future__ import annotations

from .core import assert_grad, assert_vjp, check_grad, check_vjp
from .elementwise import numerical_grad, rel_error
from .result import CheckResult

__all__ = ["check_vjp", "check_grad", "assert_vjp", "assert_grad", "CheckResult", "numerical_grad", "rel_error"]
