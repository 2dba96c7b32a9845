"""Gradient checking as a library: prove a hand-written backward against finite differences.

- ``check_vjp(forward, backward, args, wrt=0, *, eps, rtol, atol, dtype, seed, probes, name,
  kwargs)``: the directional (adjoint) test ``⟨backward(u), v⟩`` vs ``d/dt ⟨u, f(x + t·v)⟩`` for a
  random ``u`` and a random unit ``v``: O(1) evaluations whatever the size of ``x`` (17 for a pass).
- ``check_grad(value_and_grad, x, ...)``: the same for a scalar function, ``(value, grad)``.
- ``assert_vjp`` / ``assert_grad``: the same arguments; raise ``AssertionError(report)`` unless the
  verdict is "pass" (or one the caller allows: ``allow="kink"``, ``allow="inconclusive"``).
- ``CheckResult``: ``verdict`` ("pass", "fail", "kink" or "inconclusive"), ``passed``, ``error``,
  ``tolerance``, ``cap``, the noise used and why, ``suspects`` (the elements a failure or a kink is
  localised to), ``problems`` (structural faults), ``report()``.
- ``numerical_grad`` (elementwise, small arrays) and ``rel_error``.

A pass is a proof: the finite difference (extrapolated from steps h, h/2, h/4, error O(h⁶)) agrees
with the gradient within a tolerance built from its error budget (truncation, and rounding from
the machine-epsilon model or a noise measured where a kink cannot pose as it), that tolerance is
at most ``cap`` (1e-3 in float64, 1e-1 in float32) relative to the gradient, and no step it rests
on has a kink inside. Otherwise the check retries (shorter steps past a kink, longer ones when
rounding-bound, a fresh direction) and says what it found: "fail", "kink" (located), or
"inconclusive". ``dtype=np.float32`` runs everything in float32. The library imports nothing of the
engine: it works on NumPy arrays and on CuPy arrays (recognised through ``sys.modules``, never
imported), so any test suite can use it as is.
"""

from __future__ import annotations

from .asserts import assert_grad, assert_vjp
from .core import check_grad, check_vjp
from .elementwise import numerical_grad, rel_error
from .result import CheckResult

__all__ = [
    "check_vjp",
    "check_grad",
    "assert_vjp",
    "assert_grad",
    "CheckResult",
    "numerical_grad",
    "rel_error",
]
