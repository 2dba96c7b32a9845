"""Optimisers over the pixels: scipy's L-BFGS-B (continuous, or in rounds of N evaluations) and Adam.

This is the one place that converts between the optimiser's flat float64 host vector and the
objective's (H, W, 3) image. Both optimisers call ``callback(iteration, x, terms)`` after every
iteration (return True to stop) and raise ``NonFiniteError`` instead of stepping on a NaN/Inf.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.optimize import Bounds, minimize


class NonFiniteError(ArithmeticError):
    """The loss or its gradient became NaN/Inf; ``term`` names the first non-finite part."""

    def __init__(self, term: str):
        super().__init__(f"the {term} term became non-finite")
        self.term = term


def _checked(obj, x):
    value, grad = obj.value_and_grad(x)
    if not math.isfinite(value) or not np.all(np.isfinite(grad)):
        parts = obj.last_terms or {}
        bad = next((k for k in ("content", "style", "tv") if not math.isfinite(parts.get(k, 0.0))), "gradient")
        raise NonFiniteError(bad)
    return value, grad


# scipy's L-BFGS-B turns bounds, even scalar ``Bounds``, into a Python list of n (lo, hi) tuples and
# loops over it in Python on every ``minimize`` call: ~130 bytes and ~1 µs per variable, 6 GB and a
# minute at 4096². Above this many variables (about 1670² pixels) ``lbfgs`` hands bounded problems
# to the engine's own projected L-BFGS (``optim_device.minimize_lbfgs``, NumPy arrays on the CPU).
SCIPY_BOUNDS_MAX = 1 << 23


def lbfgs(obj, x0, iters: int, *, round_evals: int | None = None, bounds=(0.0, 255.0), history: int = 10,
          callback=None, round_callback=None, start_iteration: int = 0):
    """Minimise ``obj`` from ``x0`` (H, W, 3) with L-BFGS-B; returns the final image (float64).

    Continuous mode runs ``iters`` L-BFGS iterations. With ``round_evals=N`` it runs rounds of at most
    N evaluations (restarting the history each round, as the Keras/CNTK scripts do) until ``iters``
    evaluations are spent, calling ``round_callback(round, x)`` after each. ``bounds`` clamps pixels.
    Bounded problems of more than ``SCIPY_BOUNDS_MAX`` variables run the in-house projected L-BFGS.
    """
    shape = x0.shape
    x = np.asarray(x0, dtype=np.float64).ravel().copy()
    state = {"it": start_iteration, "stop": False}

    def fun(flat):
        value, grad = _checked(obj, flat.reshape(shape))
        return value, grad.ravel()

    def on_iter(intermediate_result):
        state["it"] += 1
        if callback is not None and callback(state["it"], intermediate_result.x.reshape(shape), obj.last_terms):
            state["stop"] = True
            raise StopIteration

    if bounds is not None and x.size > SCIPY_BOUNDS_MAX:
        from .optim_device import lbfgs_device
        return lbfgs_device(obj, x.reshape(shape), iters, round_evals=round_evals, bounds=bounds, history=history,
                            callback=callback, round_callback=round_callback, start_iteration=start_iteration)
    box = None if bounds is None else Bounds(bounds[0], bounds[1])
    if round_evals is None:
        res = minimize(fun, x, jac=True, method="L-BFGS-B", bounds=box, callback=on_iter,
                       options={"maxiter": iters, "maxfun": max(2 * iters, iters + 20), "maxcor": history})
        return res.x.reshape(shape)
    spent, rnd = 0, 0
    while spent < iters and not state["stop"]:
        budget = min(round_evals, iters - spent)
        res = minimize(fun, x, jac=True, method="L-BFGS-B", bounds=box, callback=on_iter,
                       options={"maxiter": budget, "maxfun": budget, "maxcor": history})
        spent += max(1, res.nfev)
        x = res.x
        rnd += 1
        if round_callback is not None:
            round_callback(rnd, x.reshape(shape))
    return x.reshape(shape)


def adam(obj, x0, iters: int, *, lr=1.0, betas=(0.9, 0.999), eps: float = 1e-8, unit=1.0,
         decay_every: int | None = None, decay_gamma: float = 0.1, clip=None, callback=None, start_iteration: int = 0):
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
        _, grad = _checked(obj, x)
        g = grad * unit  # gradient w.r.t. u = x / unit
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        step_lr = lr * decay_gamma ** ((start_iteration + t - 1) // decay_every) if decay_every else lr
        mhat = m / (1 - b1 ** t)
        vhat = v / (1 - b2 ** t)
        x -= unit * step_lr * mhat / (np.sqrt(vhat) + eps)
        if clip is not None:
            np.clip(x, clip[0], clip[1], out=x)
        if callback is not None and callback(start_iteration + t, x, obj.last_terms):
            break
    return x
