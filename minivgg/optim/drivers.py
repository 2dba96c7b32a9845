"""The optimiser driver: L-BFGS (scipy's L-BFGS-B or the engine's projected L-BFGS in ``lbfgs.py``,
continuous or in rounds of N evaluations) and Adam, over the pixels of an (H, W, 3) float64 image.

This is the one place that converts between an optimiser's flat float64 vector and the objective's
image. Both call ``callback(iteration, x, terms)`` after every iteration (return True to stop) and
raise ``NonFiniteError`` instead of stepping on a NaN/Inf.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import Bounds, minimize

from ..engine.backend import get_array_module
from ..style.memory import lbfgs_history, lbfgs_history_dtype
from .lbfgs import minimize_lbfgs


class NonFiniteError(ArithmeticError):
    """The loss or its gradient became NaN/Inf; ``term`` names the first non-finite part."""

    def __init__(self, term: str):
        super().__init__(f"the {term} term became non-finite")
        self.term = term


def checked(obj, x):
    """``obj.value_and_grad(x)``, or ``NonFiniteError`` naming the first non-finite term (x on any device)."""
    value, grad = obj.value_and_grad(x)
    if not math.isfinite(value) or not bool(get_array_module(grad).isfinite(grad).all()):
        parts = obj.last_terms or {}
        bad = next(
            (k for k in ("content", "style", "tv") if not math.isfinite(parts.get(k, 0.0))),
            "gradient",
        )
        raise NonFiniteError(bad)
    return value, grad


# scipy's L-BFGS-B turns bounds, even scalar ``Bounds``, into a Python list of n (lo, hi) tuples and
# loops over it in Python on every ``minimize`` call: ~130 bytes and ~1 µs per variable, 6 GB and a
# minute at 4096². Above this many variables (about 1670² pixels) ``lbfgs`` hands every problem,
# bounded or not, to the engine's own projected L-BFGS (``lbfgs.minimize_lbfgs``), which can also keep
# its history in float32 (``memory.lbfgs_history_dtype``) where scipy's workspace is all float64.
SCIPY_BOUNDS_MAX = 1 << 23


def lbfgs(
    obj,
    x0,
    iters: int,
    *,
    round_evals: int | None = None,
    bounds=(0.0, 255.0),
    history: int | None = None,
    callback=None,
    round_callback=None,
    start_iteration: int = 0,
    in_house: bool | None = None,
):
    """Minimise ``obj`` from ``x0`` (H, W, 3) with L-BFGS; returns the final image (float64, where x0 lives).

    Continuous mode runs ``iters`` L-BFGS iterations. With ``round_evals=N`` it runs rounds of at most
    N evaluations (restarting the history each round, as the Keras/CNTK scripts do) until ``iters``
    evaluations are spent, calling ``round_callback(round, x)`` after each. ``bounds`` clamps pixels.
    ``history`` pairs (default ``memory.lbfgs_history`` of the image: 10, fewer on huge images).
    ``in_house`` picks the engine's projected L-BFGS over scipy's L-BFGS-B; by default it runs for
    device arrays (nothing is copied per evaluation) and problems over ``SCIPY_BOUNDS_MAX`` variables.
    """
    xp = get_array_module(x0)
    shape = x0.shape
    x = xp.asarray(
        x0, dtype=xp.float64
    )  # no copy: both optimisers copy their start and never write to x0
    pixels = x.size // shape[-1] if x.ndim == 3 else x.size
    history = lbfgs_history(pixels) if history is None else history
    if in_house is None:
        in_house = xp is not np or x.size > SCIPY_BOUNDS_MAX
    state = {"it": start_iteration, "stop": False}

    def on_iter(xk) -> bool:
        state["it"] += 1
        stop = bool(
            callback is not None and callback(state["it"], xk.reshape(shape), obj.last_terms)
        )
        state["stop"] = stop
        return stop

    history_dtype = lbfgs_history_dtype(pixels, history) if in_house else "float64"

    def run(x, maxiter, maxfun):
        if in_house:
            return _in_house(obj, x, maxiter, maxfun, bounds, history, on_iter, history_dtype)
        return _scipy(obj, x, maxiter, maxfun, bounds, history, on_iter)

    if round_evals is None:
        return run(x, iters, max(2 * iters, iters + 20))[0].reshape(shape)
    spent, rnd = 0, 0
    while spent < iters and not state["stop"]:
        budget = min(round_evals, iters - spent)
        x, nfev = run(x, budget, budget)
        x = x.reshape(shape)
        spent += max(1, nfev)
        rnd += 1
        if round_callback is not None:
            round_callback(rnd, x)
    return x.reshape(shape)


def _scipy(obj, x, maxiter, maxfun, bounds, history, on_iter):
    """One scipy L-BFGS-B run on the flat host vector: ``(x, evaluations)``."""
    shape = x.shape

    def fun(flat):
        value, grad = checked(obj, flat.reshape(shape))
        return value, grad.ravel()

    def callback(intermediate_result):
        if on_iter(intermediate_result.x):
            raise StopIteration

    box = None if bounds is None else Bounds(bounds[0], bounds[1])
    res = minimize(
        fun,
        x.ravel(),
        jac=True,
        method="L-BFGS-B",
        bounds=box,
        callback=callback,
        options={"maxiter": maxiter, "maxfun": maxfun, "maxcor": history},
    )
    return res.x, res.nfev


def _in_house(obj, x, maxiter, maxfun, bounds, history, on_iter, history_dtype="float64"):
    """One projected L-BFGS run (``lbfgs.minimize_lbfgs``) where x lives: ``(x, evaluations)``."""
    res = minimize_lbfgs(
        lambda xk: checked(obj, xk),
        x,
        maxiter=maxiter,
        maxfun=maxfun,
        bounds=bounds,
        history=history,
        history_dtype=history_dtype,
        callback=on_iter,
    )
    return res.x, res.nfev


def adam(
    obj,
    x0,
    iters: int,
    *,
    lr=1.0,
    betas=(0.9, 0.999),
    eps: float = 1e-8,
    unit=1.0,
    decay_every: int | None = None,
    decay_gamma: float = 0.1,
    clip=None,
    callback=None,
    start_iteration: int = 0,
):
    """Adam on the pixels; ``lr`` and ``eps`` are in units of ``x / unit`` (``unit`` broadcasts over
    channels: 255 for [0, 1] images, ``255·std`` for ImageNet-normalised ones), so a seed's settings
    carry over unchanged. The rate is multiplied by ``decay_gamma`` every ``decay_every`` steps;
    ``clip=(lo, hi)`` clamps the pixels after every step. Returns the final image (float64)."""
    x = np.asarray(x0, dtype=np.float64).copy()
    unit = np.broadcast_to(np.asarray(unit, dtype=np.float64), (x.shape[-1],))
    lr = np.broadcast_to(np.asarray(lr, dtype=np.float64), ())
    b1, b2 = betas
    m = np.zeros_like(x)
    v = np.zeros_like(x)
    for t in range(1, iters + 1):
        _, grad = checked(obj, x)
        g = grad * unit  # gradient w.r.t. u = x / unit
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        step_lr = (
            lr * decay_gamma ** ((start_iteration + t - 1) // decay_every) if decay_every else lr
        )
        mhat = m / (1 - b1**t)
        vhat = v / (1 - b2**t)
        x -= unit * step_lr * mhat / (np.sqrt(vhat) + eps)
        if clip is not None:
            np.clip(x, clip[0], clip[1], out=x)
        if callback is not None and callback(start_iteration + t, x, obj.last_terms):
            break
    return x
