"""Projected L-BFGS on any array module: the engine's own optimiser, beside scipy's L-BFGS-B.

scipy's L-BFGS-B runs on the host: on the GPU every evaluation would copy the iterate host→device
and the float64 gradient device→host (6 MiB each way at 512²), and with bounds it builds a Python
list of n bound pairs (6 GB at 4096²). ``minimize_lbfgs`` keeps x, the gradient and the (s, y)
history where x lives (CuPy or NumPy); per evaluation only scalars reach the host. ``optim.lbfgs``
chooses between the two (``--optimizer lbfgs-device``, and bounded problems above 8M variables).

The method is projected L-BFGS: history m (default 10), the direction restricted to the variables
not held at a bound, a projected Armijo backtracking line search (so every accepted step lowers the
loss), and scipy's stopping rules: ``maxiter``, ``maxfun``, ``ftol`` on the relative decrease,
``gtol`` on the max-norm of the projected gradient.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .backend import get_array_module

FTOL = 1e7 * np.finfo(float).eps   # scipy's default factr · eps
GTOL = 1e-5                         # scipy's default pgtol
_ARMIJO = 1e-4
_MAX_BACKTRACKS = 20


@dataclasses.dataclass
class Result:
    """Outcome of ``minimize_lbfgs``: final x (device array), its loss, iterations, evaluations, why it stopped."""
    x: object
    fun: float
    nit: int
    nfev: int
    message: str


def _project(x, bounds):
    return x if bounds is None else x.clip(bounds[0], bounds[1])


def _free_mask(x, g, bounds):
    """Variables not held at a bound by the gradient (a float mask: 1 free, 0 held)."""
    if bounds is None:
        return None
    held = ((x <= bounds[0]) & (g > 0)) | ((x >= bounds[1]) & (g < 0))
    return (~held).astype(x.dtype)


def _projected_grad_norm(x, g, bounds):
    """``max |x − P(x − g)|``, scipy's pgtol measure."""
    xp = get_array_module(x)
    return float(xp.max(xp.abs(x - _project(x - g, bounds)))) if x.size else 0.0


def _two_loop(g, history, free, gamma=1.0):
    """``−H g`` by the L-BFGS two-loop recursion over ``history`` [(s, y, 1/sᵀy)] with ``H0 = gamma·I``,
    on the free variables. The alphas stay device scalars: the recursion makes no host round trip."""
    xp = get_array_module(g)
    q = g * free if free is not None else g.copy()
    alphas = []
    for s, y, rho in reversed(history):
        a = rho * xp.vdot(s, q)
        q -= a * y
        alphas.append(a)
    q *= gamma
    for (s, y, rho), a in zip(history, reversed(alphas)):
        b = rho * xp.vdot(y, q)
        q += (a - b) * s
    q = -q
    if free is not None:
        q *= free
    return q


def minimize_lbfgs(fun, x0, *, maxiter: int, maxfun: int | None = None, bounds=None, history: int = 10,
                   ftol: float = FTOL, gtol: float = GTOL, callback=None) -> Result:
    """Minimise ``fun(x) -> (float, grad like x)`` from ``x0`` with projected L-BFGS, on x's device.

    ``bounds=(lo, hi)`` (scalars) keeps every iterate inside the box by projection. ``callback(x)``
    runs after each iteration; returning True stops. The loss never increases from one iteration to
    the next (every accepted step satisfies the Armijo condition along the projected path).
    """
    xp = get_array_module(x0)
    maxfun = maxfun if maxfun is not None else max(2 * maxiter, maxiter + 20)
    x = _project(xp.asarray(x0, dtype=xp.float64).copy(), bounds)
    f, g = fun(x)
    nfev, nit, pairs, gamma = 1, 0, [], 1.0
    if _projected_grad_norm(x, g, bounds) <= gtol:
        return Result(x, f, 0, nfev, "projected gradient below gtol")
    message = "maxiter reached"
    while nit < maxiter:
        free = _free_mask(x, g, bounds)
        d = _two_loop(g, pairs, free, gamma)
        steepest = not pairs
        accepted = None
        for attempt in range(2):  # the L-BFGS direction, then (after a failed search) steepest descent
            if attempt == 1:
                if steepest:
                    break
                pairs.clear()
                d, steepest = _two_loop(g, pairs, free), True
            if float(xp.vdot(g, d)) >= 0:
                continue
            t = 1.0
            if steepest:  # scipy's first step: unit length
                t = min(1.0, 1.0 / max(float(xp.sqrt(xp.vdot(d, d))), 1e-300))
            for _ in range(_MAX_BACKTRACKS):
                x_new = _project(x + t * d, bounds)
                s = x_new - x
                gs = float(xp.vdot(g, s))
                if gs >= 0:  # the projection undid the descent: no decrease is promised
                    break
                f_new, g_new = fun(x_new)
                nfev += 1
                if f_new <= f + _ARMIJO * gs:
                    accepted = (x_new, f_new, g_new, s)
                    break
                if nfev >= maxfun:
                    break
                # Quadratic interpolation of the decrease, kept within [t/10, t/2].
                curv = f_new - f - gs
                t = t * min(0.5, max(0.1, -gs / (2 * curv))) if curv > 0 else t * 0.5
            if accepted is not None or nfev >= maxfun:
                break
        if accepted is None:
            message = "maxfun reached" if nfev >= maxfun else "line search found no decrease"
            break
        x_new, f_new, g_new, s = accepted
        y = g_new - g
        sy, yy = float(xp.vdot(s, y)), float(xp.vdot(y, y))
        if sy > np.finfo(float).eps * yy:  # curvature condition, as L-BFGS-B; else the pair is skipped
            pairs.append((s, y, 1.0 / sy))
            gamma = sy / yy
            if len(pairs) > history:
                pairs.pop(0)
        f_old, x, f, g = f, x_new, f_new, g_new
        nit += 1
        if callback is not None and callback(x):
            message = "stopped by callback"
            break
        if (f_old - f) / max(abs(f_old), abs(f), 1.0) <= ftol:
            message = "relative reduction of f below ftol"
            break
        if _projected_grad_norm(x, g, bounds) <= gtol:
            message = "projected gradient below gtol"
            break
        if nfev >= maxfun:
            message = "maxfun reached"
            break
    return Result(x, f, nit, nfev, message)
