"""Projected L-BFGS on any array module: the engine's own optimiser, beside scipy's L-BFGS-B.

scipy's L-BFGS-B runs on the host: on the GPU every evaluation would copy the iterate host→device
and the float64 gradient device→host (6 MiB each way at 512²), and with bounds it builds a Python
list of n bound pairs (6 GB at 4096²). ``minimize_lbfgs`` keeps x, the gradient and the (s, y)
history where x lives (CuPy or NumPy); per evaluation only scalars reach the host. ``optim.lbfgs``
chooses between the two (``--optimizer lbfgs-device``, and bounded problems above 8M variables).

The method is projected L-BFGS: history m (default 10), the direction restricted to the variables
not held at a bound, a projected line search that backtracks on the Armijo condition (so every
accepted step lowers the loss) and expands a step whose slope is still steep (weak Wolfe: without
it, the unit-length first step from a stiff start such as the content image made every later step
tiny too), and scipy's stopping rules: ``maxiter``, ``maxfun``, ``ftol`` on the relative decrease,
``gtol`` on the max-norm of the projected gradient.

On print-size images the optimiser's vectors dominate the memory (one float64 vector of an 8192²
image is 1.6 GB). ``history_dtype="float32"`` keeps the (s, y) pairs and the search direction in
float32, half the bytes; their dot products still accumulate in float64, chunk by chunk, so no
float64 copy of a float32 vector is ever made. x, the gradient and the trial point stay float64.
Every step builds its vectors in place: x, g, the direction and the trial point are the only
full-size vectors alive during an evaluation, besides the history.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from ..engine.backend import get_array_module

FTOL = 1e7 * np.finfo(float).eps  # scipy's default factr · eps
GTOL = 1e-5  # scipy's default pgtol
_ARMIJO = 1e-4
_MAX_BACKTRACKS = 20  # evaluations per line search
_WOLFE = 0.9  # the weak Wolfe (curvature) constant of the line search's expansion
_EXPAND_MAX = 1 << 23  # variables up to which the line search may expand a step


@dataclasses.dataclass
class Result:
    """Outcome of ``minimize_lbfgs``: final x (device array), its loss, iterations, evaluations, why it stopped."""

    x: object
    fun: float
    nit: int
    nfev: int
    message: str


_CHUNK = 1 << 22  # elements per chunk of the mixed-precision vector operations (32 MiB of float64)


def _clip_into(x, bounds):
    """Project x onto the box in place (no-op without bounds); returns x."""
    if bounds is not None:
        get_array_module(x).clip(x, bounds[0], bounds[1], out=x)
    return x


def _free_mask(x, g, bounds):
    """Variables not held at a bound by the gradient (a boolean mask: True free, False held)."""
    if bounds is None:
        return None
    held = ((x <= bounds[0]) & (g > 0)) | ((x >= bounds[1]) & (g < 0))
    return ~held


def _projected_grad_norm(x, g, bounds):
    """``max |x − P(x − g)|``, scipy's pgtol measure (one temporary vector)."""
    xp = get_array_module(x)
    if not x.size:
        return 0.0
    t = _clip_into(x - g, bounds)
    t -= x
    return float(xp.max(xp.abs(t, out=t)))


def _spans(n):
    return [(i, min(n, i + _CHUNK)) for i in range(0, n, _CHUNK)]


def _dot(a, b):
    """``aᵀb`` accumulated in float64; by chunks when either is float32 (no float64 copy of a whole vector)."""
    xp = get_array_module(a)
    if a.dtype == b.dtype == np.float64:
        return xp.vdot(a, b)
    a, b = a.reshape(-1), b.reshape(-1)
    return sum(
        xp.vdot(a[i:j].astype(np.float64), b[i:j].astype(np.float64)) for i, j in _spans(a.size)
    )


def _axpy(q, alpha, y):
    """``q += alpha·y`` in q's memory (by chunks unless both are float64)."""
    if q.dtype == y.dtype == np.float64:
        q += alpha * y
        return
    qf, yf = q.reshape(-1), y.reshape(-1)
    for i, j in _spans(qf.size):
        qf[i:j] += alpha * yf[i:j]


def _difference(a, b, dtype):
    """``a − b`` as a new array of ``dtype`` (by chunks when that is narrower than a and b)."""
    xp = get_array_module(a)
    if np.dtype(dtype) == a.dtype:
        return a - b
    out = xp.empty(a.shape, dtype=dtype)
    of, af, bf = out.reshape(-1), a.reshape(-1), b.reshape(-1)
    for i, j in _spans(of.size):
        xp.subtract(af[i:j], bf[i:j], out=of[i:j])
    return out


def _two_loop(g, history, free, gamma=1.0, dtype=np.float64):
    """``−H g`` by the L-BFGS two-loop recursion over ``history`` [(s, y, 1/sᵀy)] with ``H0 = gamma·I``,
    on the free variables, as an array of ``dtype``. The alphas stay device scalars: the recursion
    makes no host round trip."""
    xp = get_array_module(g)
    q = xp.multiply(g, free, dtype=dtype) if free is not None else g.astype(dtype, copy=True)
    alphas = []
    for s, y, rho in reversed(history):
        a = rho * _dot(s, q)
        _axpy(q, -a, y)
        alphas.append(a)
    q *= gamma
    for (s, y, rho), a in zip(history, reversed(alphas)):
        b = rho * _dot(y, q)
        _axpy(q, a - b, s)
    q *= -1
    if free is not None:
        q *= free
    return q


def _line_search(fun, x, f, g, d, t, bounds, budget):
    """Search along the projected path P(x + t·d) from step ``t``: backtrack (quadratic
    interpolation within [t/10, t/2]) while the Armijo condition fails; while it holds but the slope
    is still steep (gₙₑᵥ·s < 0.9·g·s, the weak Wolfe condition) and no step has been too long yet,
    expand t fourfold (below ``_EXPAND_MAX`` variables: an expansion keeps one more x and g alive).
    Returns ``((x, f, g) of the last Armijo point or None, evaluations)``."""
    xp = get_array_module(x)
    expand, too_long, best, n = x.size <= _EXPAND_MAX, False, None, 0
    while n < min(_MAX_BACKTRACKS, budget):
        x_new = xp.multiply(d, t, dtype=xp.float64)  # P(x + t·d), built in one array
        x_new += x
        _clip_into(x_new, bounds)
        s = x_new - x
        gs = float(_dot(g, s))
        if gs >= 0:  # the projection undid the descent: no decrease is promised
            break
        f_new, g_new = fun(x_new)
        n += 1
        if f_new > f + _ARMIJO * gs:
            del x_new, g_new
            if best is not None:  # an expansion went too far: keep the step before it
                break
            too_long = True
            curv = f_new - f - gs
            t = t * min(0.5, max(0.1, -gs / (2 * curv))) if curv > 0 else t * 0.5
            continue
        best = (x_new, f_new, g_new)
        if too_long or not expand or float(_dot(g_new, s)) >= _WOLFE * gs:
            break
        del s
        t *= 4.0
    return best, n


def minimize_lbfgs(
    fun,
    x0,
    *,
    maxiter: int,
    maxfun: int | None = None,
    bounds=None,
    history: int = 10,
    history_dtype=None,
    ftol: float = FTOL,
    gtol: float = GTOL,
    callback=None,
) -> Result:
    """Minimise ``fun(x) -> (float, grad like x)`` from ``x0`` with projected L-BFGS, on x's device.

    ``bounds=(lo, hi)`` (scalars) keeps every iterate inside the box by projection. ``callback(x)``
    runs after each iteration; returning True stops. The loss never increases from one iteration to
    the next (every accepted step satisfies the Armijo condition along the projected path).
    ``history_dtype`` (default float64) is the dtype of the (s, y) pairs and the direction.
    """
    xp = get_array_module(x0)
    hdtype = np.dtype(history_dtype or np.float64)
    maxfun = maxfun if maxfun is not None else max(2 * maxiter, maxiter + 20)
    x = _clip_into(xp.array(x0, dtype=xp.float64, copy=True), bounds)
    f, g = fun(x)
    nfev, nit, gamma = 1, 0, 1.0
    pairs: list[tuple[Any, Any, float]] = []  # (s, y, 1/sᵀy), oldest first
    if _projected_grad_norm(x, g, bounds) <= gtol:
        return Result(x, f, 0, nfev, "projected gradient below gtol")
    message = "maxiter reached"
    while nit < maxiter:
        free = _free_mask(x, g, bounds)
        d = _two_loop(g, pairs, free, gamma, hdtype)
        steepest = not pairs
        accepted = None
        for attempt in range(
            2
        ):  # the L-BFGS direction, then (after a failed search) steepest descent
            if attempt == 1:
                if steepest:
                    break
                pairs.clear()
                d, steepest = _two_loop(g, pairs, free, dtype=hdtype), True
            if float(_dot(g, d)) >= 0:
                continue
            t = 1.0
            if steepest:  # scipy's first step: unit length
                t = min(1.0, 1.0 / max(math.sqrt(float(_dot(d, d))), 1e-300))
            accepted, n = _line_search(fun, x, f, g, d, t, bounds, maxfun - nfev)
            nfev += n
            if accepted is not None or nfev >= maxfun:
                break
        if accepted is None:
            message = "maxfun reached" if nfev >= maxfun else "line search found no decrease"
            break
        x_new, f_new, g_new = accepted
        accepted = d = None  # each old vector is let go as soon as the new pair no longer needs it
        s = _difference(x_new, x, hdtype)
        x = x_new
        y = _difference(g_new, g, hdtype)
        g = g_new
        sy, yy = float(_dot(s, y)), float(_dot(y, y))
        if (
            sy > np.finfo(float).eps * yy
        ):  # curvature condition, as L-BFGS-B; else the pair is skipped
            pairs.append((s, y, 1.0 / sy))
            gamma = sy / yy
            if len(pairs) > history:
                pairs.pop(0)
        del s, y
        f_old, f = f, f_new
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
