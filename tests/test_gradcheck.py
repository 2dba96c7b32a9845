"""The gradient-checking library (``minivgg.gradcheck``) itself: it passes correct gradients, catches
wrong ones, works in float64, and imports nothing of the engine. The engine's own suite of checks is
``minivgg.checks`` (``test_checks.py``); the ops below are only convenient test subjects."""
import ast
import inspect

import numpy as np
import pytest

from minivgg import gradcheck as gc
from minivgg import ops


def test_rel_error_basic():
    assert gc.rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert gc.rel_error(1.0, 1.0 + 1e-9) == pytest.approx(1e-9, rel=1e-3)
    assert gc.rel_error([1.0, 2.0], [1.0, 1.0]) == pytest.approx(0.5)


def test_check_vjp_catches_a_wrong_backward():
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 4))
    wrong = lambda g, cache: ops.avg_pool2d_backward(g, cache) * 1.01  # noqa: E731
    res = gc.check_vjp(ops.avg_pool2d_forward, wrong, (x,))
    assert not res.passed and res.error > 1e-3
    assert "FAIL" in res.report()


def test_check_vjp_catches_a_transposed_gradient():
    x = np.random.default_rng(1).standard_normal((1, 1, 4, 4))
    w = np.random.default_rng(2).standard_normal((1, 1, 3, 3))
    fwd = lambda x: ops.conv2d_forward(x, w, None)  # noqa: E731
    bad = lambda g, c: ops.conv2d_forward(g, w, None)[0]  # unflipped kernel: wrong adjoint  # noqa: E731
    assert not gc.check_vjp(fwd, bad, (x,)).passed
    assert gc.check_vjp(fwd, lambda g, c: ops.conv2d_backward(g, c)[0], (x,)).passed


def test_check_grad_and_numerical_grad_agree_on_a_quadratic():
    A = np.random.default_rng(3).standard_normal((4, 4))
    f = lambda x: (float(x @ A @ x), (A + A.T) @ x)  # noqa: E731
    x = np.arange(4.0)
    assert gc.check_grad(f, x).passed
    assert not gc.check_grad(lambda x: (f(x)[0], A @ x), x).passed
    num = gc.numerical_grad(lambda x: f(x)[0], x)
    np.testing.assert_allclose(num, (A + A.T) @ x, rtol=1e-7, atol=1e-7)


def test_numerical_grad_with_cotangent_matches_vjp():
    x = np.random.default_rng(4).standard_normal((1, 1, 4, 4))
    y, cache = ops.avg_pool2d_forward(x)
    u = np.random.default_rng(5).standard_normal(y.shape)
    num = gc.numerical_grad(ops.avg_pool2d_forward, x, cotangent=u)
    np.testing.assert_allclose(num, ops.avg_pool2d_backward(u, cache), rtol=1e-7, atol=1e-9)


def test_check_vjp_casts_float32_to_float64():
    x = np.random.default_rng(6).standard_normal((1, 1, 4, 4)).astype(np.float32)
    seen = []

    def fwd(x):
        seen.append(x.dtype)
        return ops.avg_pool2d_forward(x)
    assert gc.check_vjp(fwd, ops.avg_pool2d_backward, (x,)).passed
    assert set(seen) == {np.dtype(np.float64)}


def test_check_result_report_names_what_was_compared():
    res = gc.CheckResult("op", (2, 3), 1.0, 1.5, gc.rel_error(1.0, 1.5), False)
    text = res.report()
    assert "op (2, 3)" in text and "analytic 1.0" in text and "numeric 1.5" in text and "3.333e-01" in text
    assert "FAIL" in text


def test_check_grad_atol_passes_tiny_absolute_gaps():
    f = lambda x: (float(np.sum(x ** 2)), 2 * x + 1e-9)  # noqa: E731  a tiny constant bias
    assert not gc.check_grad(f, np.zeros(3), rtol=0).passed
    assert gc.check_grad(f, np.zeros(3), rtol=0, atol=1e-6).passed


def test_the_library_imports_nothing_of_the_engine():
    tree = ast.parse(inspect.getsource(gc))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"relative import from {node.module!r}"
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "dataclasses", "sys", "typing", "numpy"}, imported
