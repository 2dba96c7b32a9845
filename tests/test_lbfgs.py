"""The engine's projected L-BFGS (``minivgg.optim.lbfgs.minimize_lbfgs``) on NumPy: a convex quadratic
(against the solution and scipy's L-BFGS-B), bounds kept by projection, and scipy's stopping rules.
The same code runs on CuPy arrays (``test_gpu.py``); the driver that calls it is ``test_optim.py``."""

import numpy as np
import pytest
from scipy.optimize import minimize

from minivgg.optim.lbfgs import FTOL, GTOL, Result, minimize_lbfgs


def quadratic(n=60, seed=0):
    r = np.random.default_rng(seed)
    A = r.standard_normal((n, n))
    A = A @ A.T / n + 0.1 * np.eye(n)
    b = r.standard_normal(n) * 10
    return (lambda x: (float(0.5 * x @ A @ x - b @ x), A @ x - b)), A, b


def test_lbfgs_minimises_a_convex_quadratic_monotonically():
    fun, A, b = quadratic()
    values = []
    res = minimize_lbfgs(
        fun,
        np.zeros(len(b)),
        maxiter=500,
        gtol=1e-8,
        ftol=0,
        callback=lambda x: values.append(fun(x)[0]) and False,
    )
    x_star = np.linalg.solve(A, b)
    np.testing.assert_allclose(res.x, x_star, atol=1e-6 * np.abs(x_star).max())
    # Armijo steps lower f; near the optimum the decrease can fall below f's rounding.
    assert all(b_ <= a_ for a_, b_ in zip(values, values[1:])) and values[5] < values[0]


def test_lbfgs_with_bounds_matches_scipy_lbfgsb():
    fun, A, b = quadratic(seed=1)
    box = (-1.0, 1.0)
    inside = []
    res = minimize_lbfgs(
        fun,
        np.zeros(len(b)),
        maxiter=500,
        bounds=box,
        callback=lambda x: inside.append(bool(x.min() >= -1 and x.max() <= 1)) and False,
    )
    ref = minimize(fun, np.zeros(len(b)), jac=True, method="L-BFGS-B", bounds=[box] * len(b))
    assert all(inside)
    assert res.fun == pytest.approx(ref.fun, rel=1e-7)
    np.testing.assert_allclose(res.x, ref.x, atol=2e-3)


def test_stopping_rules():
    fun, A, b = quadratic(seed=2)
    x0 = np.zeros(len(b))
    res = minimize_lbfgs(fun, x0, maxiter=3)
    assert (res.nit, res.message) == (3, "maxiter reached")
    res = minimize_lbfgs(fun, x0, maxiter=100, maxfun=5)
    assert res.nfev <= 5 and res.message == "maxfun reached"
    res = minimize_lbfgs(fun, np.linalg.solve(A, b), maxiter=100)
    assert (res.nit, res.message) == (0, "projected gradient below gtol")
    res = minimize_lbfgs(fun, x0, maxiter=100, ftol=0.5)
    assert res.nit < 10 and res.message == "relative reduction of f below ftol"
    res = minimize_lbfgs(fun, x0, maxiter=100, callback=lambda x: True)
    assert (res.nit, res.message) == (1, "stopped by callback")
    # At a corner of the box with the gradient pushing outwards, the projected gradient is 0.
    res = minimize_lbfgs(
        lambda x: (float(x.sum()), np.ones_like(x)), np.full(4, 0.5), maxiter=50, bounds=(0, 1)
    )
    np.testing.assert_array_equal(res.x, 0)
    assert res.message == "projected gradient below gtol"


def test_defaults_are_scipys():
    assert FTOL == pytest.approx(1e7 * np.finfo(float).eps) and GTOL == 1e-5
    fun, A, b = quadratic(seed=3)
    res = minimize_lbfgs(fun, np.zeros(len(b)), maxiter=2)
    assert (
        isinstance(res, Result)
        and res.x.dtype == np.float64
        and res.fun == pytest.approx(fun(res.x)[0])
    )
