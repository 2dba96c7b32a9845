"""The gradient-checking library (``minivgg.gradcheck``) itself: correct gradients pass in float64
and float32 with no hand-tuned eps; seeded bugs are caught and localised (last row, border, one
element, transposed kernel, missing bias, scale errors of 1e-5 in float64 and 1e-2 in float32);
kinks are told from bugs; structural faults are reported; the Frobenius estimate brackets a known
error; the library imports nothing of the engine. The engine's ops are only convenient test
subjects (the engine's own suite is ``minivgg.checks``, ``test_checks.py``)."""
import ast
import pathlib
import sys
import types

import numpy as np
import pytest

from minivgg import gradcheck as gc
from minivgg import losses, ops

W = np.random.default_rng(10).standard_normal((4, 3, 3, 3))
B = np.random.default_rng(11).standard_normal(4)


def conv(x):
    return ops.conv2d_forward(x, W, B)


def conv_grad(g, cache):
    return ops.conv2d_backward(g, cache)[0]


def with_gx(edit):
    """A conv backward whose input gradient goes through ``edit(gx)`` (a seeded bug)."""
    def backward(g, cache):
        gx = conv_grad(g, cache).copy()
        edit(gx)
        return gx
    return backward


X = np.random.default_rng(0).standard_normal((2, 3, 8, 8))


# ------------------------------------------------------------------------ correct gradients pass

CONV_SHAPES = [((1, 2, 5, 5), (3, 2, 3, 3), 1, 1), ((2, 3, 7, 6), (2, 3, 3, 3), 2, 1),
               ((1, 3, 6, 7), (2, 3, 2, 2), 1, 0), ((1, 2, 9, 7), (2, 2, 5, 3), 2, 2)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("xs,ws,stride,pad", CONV_SHAPES)
def test_conv_passes_for_every_input_in_both_dtypes(xs, ws, stride, pad, dtype, rng):
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    for wrt in range(3):
        res = gc.assert_vjp(ops.conv2d_forward, lambda g, c: ops.conv2d_backward(g, c, need_params=True),
                            (x, w, b), wrt=wrt, dtype=dtype, kwargs={"stride": stride, "pad": pad})
        assert res.dtype == np.dtype(dtype).name and res.problems == [] and res.suspects is None
        assert res.error <= res.tolerance < (1e-6 if dtype == np.float64 else 0.5)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(1, 1, 4, 4), (2, 3, 5, 7), (1, 4, 7, 6)])
def test_relu_and_pools_pass_on_plain_normal_inputs(shape, dtype, rng):
    x = rng.standard_normal(shape)  # no inputs hand-picked away from kinks or ties
    for fwd, bwd in [(ops.relu_forward, ops.relu_backward), (ops.avg_pool2d_forward, ops.avg_pool2d_backward),
                     (ops.max_pool2d_forward, ops.max_pool2d_backward)]:
        gc.assert_vjp(fwd, bwd, (x,), dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", list(losses.GRAMS))
def test_style_loss_passes_in_both_dtypes(kind, dtype, rng):
    F = rng.standard_normal((1, 4, 3, 5))
    A = losses.gram_variant(rng.standard_normal(F.shape), kind).astype(dtype)
    gc.assert_grad(lambda F: losses.style_loss(F, A, kind, 0.7), F, dtype=dtype)


def test_float32_runs_end_to_end_and_default_is_float64():
    seen = []

    def fwd(x):
        seen.append(x.dtype)
        return ops.avg_pool2d_forward(x)
    x32 = X.astype(np.float32)
    assert gc.check_vjp(fwd, ops.avg_pool2d_backward, (x32,)).dtype == "float64"
    assert set(seen) == {np.dtype(np.float64)}
    seen.clear()
    res = gc.check_vjp(fwd, ops.avg_pool2d_backward, (X,), dtype=np.float32)
    assert res.passed and set(seen) == {np.dtype(np.float32)} and res.dtype == "float32"
    assert res.tolerance > 100 * gc.check_vjp(fwd, ops.avg_pool2d_backward, (X,)).tolerance  # float32's own budget


def test_a_stationary_point_passes_where_a_relative_test_cannot():
    A = np.random.default_rng(3).standard_normal((5, 5))
    f = lambda x: (float(np.sum((A @ x) ** 2)) + 1e3, 2 * A.T @ (A @ x))  # noqa: E731  <g, v> = 0 exactly
    res = gc.assert_grad(f, np.zeros(5))
    assert res.analytic == 0.0 and res.passed


# ------------------------------------------------------------------------ seeded bugs are caught

def test_dropped_last_row_is_blamed_on_that_row():
    res = gc.check_vjp(conv, with_gx(lambda gx: gx.__setitem__((Ellipsis, -1, slice(None)), 0)), (X,))
    assert res.verdict == "fail" and not res.passed
    expected = np.zeros(X.shape, bool)
    expected[..., -1, :] = True
    np.testing.assert_array_equal(res.suspects, expected)
    assert "[0:2, 0:3, 7, 0:8] (all of that box)" in res.report()


def test_wrong_border_is_blamed_on_the_border():
    def edit(gx):
        for idx in ((Ellipsis, 0, slice(None)), (Ellipsis, -1, slice(None)), (Ellipsis, slice(None), 0),
                    (Ellipsis, slice(None), -1)):
            gx[idx] *= 1.1
    res = gc.check_vjp(conv, with_gx(edit), (X,))
    ring = np.ones(X.shape, bool)
    ring[..., 1:-1, 1:-1] = False
    assert res.verdict == "fail"
    np.testing.assert_array_equal(res.suspects, ring)
    assert "all on the border" in res.report()


def test_one_wrong_element_costs_a_logarithmic_number_of_forwards():
    w = np.random.default_rng(4).standard_normal((2, 4, 3, 3))
    x = np.random.default_rng(5).standard_normal((1, 4, 32, 32))

    def backward(g, cache):
        gx = ops.conv2d_backward(g, cache)[0].copy()
        gx[0, 2, 17, 9] *= 1.5
        return gx
    res = gc.check_vjp(lambda x: ops.conv2d_forward(x, w, None), backward, (x,))
    assert res.verdict == "fail" and np.argwhere(res.suspects).tolist() == [[0, 2, 17, 9]]
    assert res.localization_forwards <= 2 * (np.log2(x.size) + 4)
    assert "1 of 4096 elements: [0, 2, 17, 9]" in res.report()


def test_transposed_kernel_fails_and_the_right_adjoint_passes():
    w = np.random.default_rng(2).standard_normal((1, 1, 3, 3))
    x = np.random.default_rng(1).standard_normal((1, 1, 6, 6))
    fwd = lambda x: ops.conv2d_forward(x, w, None)  # noqa: E731
    bad = lambda g, c: ops.conv2d_forward(g, w, None)[0]  # noqa: E731  unflipped kernel
    assert gc.check_vjp(fwd, bad, (x,)).verdict == "fail"
    assert gc.check_vjp(fwd, lambda g, c: ops.conv2d_backward(g, c)[0], (x,)).passed


def test_missing_bias_term_fails_on_the_bias():
    fwd = lambda x, w, b: ops.conv2d_forward(x, w, None)  # noqa: E731  the bias was forgotten in the forward
    bwd = lambda g, c: (None, None, g.sum(axis=(0, 2, 3)))  # noqa: E731
    res = gc.check_vjp(fwd, bwd, (X, W, B), wrt=2)
    assert res.verdict == "fail" and res.input == "args[2]" and res.suspects.all()


@pytest.mark.parametrize("dtype,scale", [(np.float64, 1e-5), (np.float32, 1e-2)])
def test_small_scale_errors_are_caught(dtype, scale):
    res = gc.check_vjp(conv, lambda g, c: conv_grad(g, c) * (1 + scale), (X,), dtype=dtype, probes=3)
    assert res.verdict == "fail" and res.error > res.tolerance
    assert res.error == pytest.approx(scale, rel=0.5)
    assert gc.check_vjp(conv, conv_grad, (X,), dtype=dtype, probes=3).passed


# ----------------------------------------------------------------------------------------- kinks

def test_relu_inputs_closer_to_zero_than_any_step_are_a_kink_not_a_failure():
    x = np.random.default_rng(6).standard_normal((1, 2, 4, 4))
    x[0, 1, 2, 3] = 1e-14
    res = gc.check_vjp(ops.relu_forward, ops.relu_backward, (x,))
    assert res.verdict == "kink" and not res.passed and res.retries == 3
    assert res.suspects[0, 1, 2, 3] and res.suspects.sum() <= 2
    with pytest.raises(AssertionError, match=r"KINK(.|\n)*kink at: 1 of 32 elements: \[0, 1, 2, 3\]"):
        gc.assert_vjp(ops.relu_forward, ops.relu_backward, (x,))


def test_max_pool_ties_are_a_kink():
    x = np.random.default_rng(7).standard_normal((1, 1, 4, 4))
    x[0, 0, 1, 1] = x[0, 0, 0, 0] = 3.0  # a tie for the maximum of the first window
    res = gc.check_vjp(ops.max_pool2d_forward, ops.max_pool2d_backward, (x,))
    assert res.verdict == "kink"
    assert res.suspects[0, 0, :2, :2].any() and not res.suspects[0, 0, 2:, :].any()


def test_a_given_eps_is_used_as_given_and_a_kink_inside_it_is_reported():
    x = np.random.default_rng(8).standard_normal((1, 1, 4, 4))
    x[0, 0, 0, 0] = 1e-3
    res = gc.check_vjp(ops.relu_forward, ops.relu_backward, (x,), eps=0.5)
    assert res.verdict == "kink" and res.eps == 0.5 and res.retries == 0


def test_the_automatic_step_retries_smaller_past_a_nearby_kink():
    x = np.random.default_rng(9).standard_normal((1, 2, 4, 4))
    x[0, 0, 1, 1] = 2e-7  # inside the first step (this element moves by ~8e-7), outside the retried one
    res = gc.check_vjp(ops.relu_forward, ops.relu_backward, (x,))
    assert res.passed and res.retries >= 1


# ------------------------------------------------------------------------------ structural checks

def test_forward_that_mutates_its_input_fails_naming_the_elements():
    def fwd(x):
        x[0, 0, 0, 0] += 1.0
        return conv(x)
    res = gc.check_vjp(fwd, conv_grad, (X,))
    assert res.verdict == "fail" and "the forward changed its input args[0]" in res.problems[0]
    assert np.argwhere(res.suspects).tolist() == [[0, 0, 0, 0]]
    assert gc.check_grad(lambda x: (x.__imul__(2).sum(), np.ones_like(x)), np.ones(3)).problems == [
        "the function changed its input x"]


def test_backward_that_mutates_u_or_the_cache_fails():
    x = np.random.default_rng(12).standard_normal((1, 2, 3, 4))
    res = gc.check_vjp(ops.relu_forward, lambda g, m: ops.relu_backward(g, m, inplace=True), (x,))
    assert res.verdict == "fail" and any("changed its cotangent u" in p for p in res.problems)

    def eats_cache(g, cache):
        gx = conv_grad(g, cache)
        cache[1].flags.writeable = True
        cache[1][...] = 0  # the kernel in the cache
        return gx
    res = gc.check_vjp(lambda x: ops.conv2d_forward(x, W.copy(), B), eats_cache, (X,))
    assert res.verdict == "fail" and any("changed the cache" in p for p in res.problems)
    assert any("two backward calls" in p for p in res.problems)


def test_nondeterministic_backward_fails():
    noise = np.random.default_rng(13)
    res = gc.check_vjp(conv, lambda g, c: conv_grad(g, c) + noise.standard_normal(X.shape) * 1e-12, (X,))
    assert res.verdict == "fail" and "two backward calls with the same u and cache disagree" in res.report()
    assert res.suspects.all()


def test_wrong_gradient_shape_dtype_or_module_is_a_problem(monkeypatch):
    res = gc.check_vjp(conv, lambda g, c: conv_grad(g, c)[..., :-1], (X,))
    assert res.verdict == "fail" and "the gradient has shape (2, 3, 8, 7), the input (2, 3, 8, 8)" in res.problems
    res = gc.check_vjp(conv, lambda g, c: conv_grad(g, c).astype(np.float64), (X,), dtype=np.float32)
    assert res.verdict == "fail" and "the gradient is float64, the input float32" in res.problems[0]
    # check_grad accepts a more precise gradient: a float32 engine behind a float64 boundary
    assert gc.check_grad(lambda x: (float(np.sum(x.astype(float) ** 2)), 2 * x.astype(float)), X[0, 0],
                         dtype=np.float32).passed

    class FakeDeviceArray(np.ndarray):
        def get(self):
            return np.asarray(self)
    fake = types.ModuleType("cupy")
    fake.ndarray = FakeDeviceArray
    monkeypatch.setitem(sys.modules, "cupy", fake)
    res = gc.check_vjp(conv, lambda g, c: conv_grad(g, c).view(FakeDeviceArray), (X,))
    assert "the gradient is a cupy array, the input a numpy array" in res.problems


# ---------------------------------------------------------------------- guarantee, report, pytest

def test_probes_estimate_the_relative_jacobian_error_with_a_bound():
    bad = gc.check_vjp(conv, lambda g, c: conv_grad(g, c) * (1 + 1e-3), (X,), probes=16)
    assert bad.probes == 16 and 3e-4 < bad.jacobian_error < 3e-3 and bad.jacobian_bound > bad.jacobian_error
    good = gc.check_vjp(conv, conv_grad, (X,), probes=16)
    assert good.passed and good.jacobian_error < 1e-8 and good.jacobian_bound < 1e-7
    assert "‖Ĵ − J‖_F / ‖J‖_F" in good.report() and "16 Gaussian probe pairs" in good.report()


def test_report_names_input_eps_tolerance_and_suspects():
    res = gc.check_vjp(conv, with_gx(lambda gx: gx.__setitem__((1, 2), 0)), (X,), name="myconv")
    text = res.report()
    assert text.startswith("gradient check myconv w.r.t. args[0] (2, 3, 8, 8) in float64: FAIL")
    assert f"eps = {res.eps:.3g}" in text and "tolerance derived from the error budget" in text
    assert "suspects: 64 of 384 elements, [1, 2, 0:8, 0:8] (all of that box)" in text
    d = res.as_dict()
    assert d["verdict"] == "fail" and d["suspects"]["count"] == 64 and d["passed"] is False


def test_rtol_and_atol_replace_the_derived_tolerance():
    f = lambda x: (float(np.sum(x ** 2)), 2 * x + 1e-9)  # noqa: E731  a tiny constant bias
    assert gc.check_grad(f, np.zeros(3)).verdict == "fail"
    assert not gc.check_grad(f, np.zeros(3), rtol=0).passed
    res = gc.check_grad(f, np.zeros(3), rtol=0, atol=1e-6)
    assert res.passed and not res.derived and "tolerance given" in res.report()


def test_assert_forms_raise_the_report_and_return_the_result_on_pass():
    assert gc.assert_vjp(conv, conv_grad, (X,)).passed
    with pytest.raises(AssertionError, match=r"FAIL(.|\n)*suspects"):
        gc.assert_vjp(conv, lambda g, c: conv_grad(g, c) * 2, (X,))
    with pytest.raises(AssertionError, match="FAIL"):
        gc.assert_grad(lambda x: (float(np.sum(x ** 2)), x), np.ones(4))


def test_rel_error_and_numerical_grad():
    assert gc.rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert gc.rel_error(1.0, 1.0 + 1e-9) == pytest.approx(1e-9, rel=1e-3)
    assert gc.rel_error([1.0, 2.0], [1.0, 1.0]) == pytest.approx(0.5)
    A = np.random.default_rng(3).standard_normal((4, 4))
    x = np.arange(4.0)
    np.testing.assert_allclose(gc.numerical_grad(lambda x: float(x @ A @ x), x), (A + A.T) @ x, rtol=1e-7, atol=1e-7)
    x = np.random.default_rng(4).standard_normal((1, 1, 4, 4))
    y, cache = ops.avg_pool2d_forward(x)
    u = np.random.default_rng(5).standard_normal(y.shape)
    np.testing.assert_allclose(gc.numerical_grad(ops.avg_pool2d_forward, x, cotangent=u),
                               ops.avg_pool2d_backward(u, cache), rtol=1e-7, atol=1e-9)


def test_the_library_imports_nothing_of_the_engine():
    package = pathlib.Path(gc.__file__).parent
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                assert node.level <= 1, f"{path.name}: import from outside the package ({node.module!r})"
                names = set() if node.level == 1 else {node.module.split(".")[0]}
            else:
                continue
            assert names <= {"__future__", "collections", "dataclasses", "functools", "hashlib", "math", "sys",
                             "typing", "numpy"}, (path.name, names)
