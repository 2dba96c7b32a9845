"""The gradient-checking library (``minivgg.gradcheck``) itself: correct gradients pass in float64
and float32 with no hand-tuned eps; seeded bugs are caught and localised (last row, border, one
element, transposed kernel, missing bias, scale errors of 1e-5 in float64 and 1e-2 in float32);
kinks are told from bugs; near a kink a pass is still a proof (properties over random shapes with
inputs 1e-12 … 1e-6 from the kinks of six non-smooth NumPy functions: no negated, sign-flipped or
1 %-scaled backward passes, no correct one fails); a kink cannot pose as rounding noise; an
undecided check says "inconclusive"; the finite difference's order and budget are pinned;
structural faults are reported; the Frobenius estimate brackets a known error; the library
imports nothing of the engine. The engine's ops are only convenient test subjects (the engine's
own suite is ``minivgg.tools.checks``, ``test_checks.py``)."""

import ast
import pathlib
import sys
import types

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from minivgg import gradcheck as gc
from minivgg import ops
from minivgg.style import losses

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

CONV_SHAPES = [
    ((1, 2, 5, 5), (3, 2, 3, 3), 1, 1),
    ((2, 3, 7, 6), (2, 3, 3, 3), 2, 1),
    ((1, 3, 6, 7), (2, 3, 2, 2), 1, 0),
    ((1, 2, 9, 7), (2, 2, 5, 3), 2, 2),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("xs,ws,stride,pad", CONV_SHAPES)
def test_conv_passes_for_every_input_in_both_dtypes(xs, ws, stride, pad, dtype, rng):
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    for wrt in range(3):
        res = gc.assert_vjp(
            ops.conv2d_forward,
            lambda g, c: ops.conv2d_backward(g, c, need_params=True),
            (x, w, b),
            wrt=wrt,
            dtype=dtype,
            kwargs={"stride": stride, "pad": pad},
        )
        assert res.dtype == np.dtype(dtype).name and res.problems == [] and res.suspects is None
        assert res.error <= res.tolerance < (1e-6 if dtype == np.float64 else 0.5)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(1, 1, 4, 4), (2, 3, 5, 7), (1, 4, 7, 6)])
def test_relu_and_pools_pass_on_plain_normal_inputs(shape, dtype, rng):
    x = rng.standard_normal(shape)  # no inputs hand-picked away from kinks or ties
    for fwd, bwd in [
        (ops.relu_forward, ops.relu_backward),
        (ops.avg_pool2d_forward, ops.avg_pool2d_backward),
        (ops.max_pool2d_forward, ops.max_pool2d_backward),
    ]:
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
    assert (
        res.tolerance > 100 * gc.check_vjp(fwd, ops.avg_pool2d_backward, (X,)).tolerance
    )  # float32's own budget


def test_a_stationary_point_passes_where_a_relative_test_cannot():
    A = np.random.default_rng(3).standard_normal((5, 5))
    f = lambda x: (float(np.sum((A @ x) ** 2)) + 1e3, 2 * A.T @ (A @ x))
    res = gc.assert_grad(f, np.zeros(5))
    assert res.analytic == 0.0 and res.passed


# ------------------------------------------------------------------------ seeded bugs are caught


def test_dropped_last_row_is_blamed_on_that_row():
    res = gc.check_vjp(
        conv, with_gx(lambda gx: gx.__setitem__((Ellipsis, -1, slice(None)), 0)), (X,)
    )
    assert res.verdict == "fail" and not res.passed
    expected = np.zeros(X.shape, bool)
    expected[..., -1, :] = True
    np.testing.assert_array_equal(res.suspects, expected)
    assert "[0:2, 0:3, 7, 0:8] (all of that box)" in res.report()


def test_wrong_border_is_blamed_on_the_border():
    def edit(gx):
        for idx in (
            (Ellipsis, 0, slice(None)),
            (Ellipsis, -1, slice(None)),
            (Ellipsis, slice(None), 0),
            (Ellipsis, slice(None), -1),
        ):
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
    fwd = lambda x: ops.conv2d_forward(x, w, None)
    bad = lambda g, c: ops.conv2d_forward(g, w, None)[0]
    assert gc.check_vjp(fwd, bad, (x,)).verdict == "fail"
    assert gc.check_vjp(fwd, lambda g, c: ops.conv2d_backward(g, c)[0], (x,)).passed


def test_missing_bias_term_fails_on_the_bias():
    fwd = lambda x, w, b: ops.conv2d_forward(x, w, None)
    bwd = lambda g, c: (None, None, g.sum(axis=(0, 2, 3)))
    res = gc.check_vjp(fwd, bwd, (X, W, B), wrt=2)
    assert res.verdict == "fail" and res.input == "args[2]" and res.suspects.all()


@pytest.mark.parametrize("dtype,scale", [(np.float64, 1e-5), (np.float32, 1e-2)])
def test_small_scale_errors_are_caught(dtype, scale):
    res = gc.check_vjp(
        conv, lambda g, c: conv_grad(g, c) * (1 + scale), (X,), dtype=dtype, probes=3
    )
    assert res.verdict == "fail" and res.error > res.tolerance
    assert res.error == pytest.approx(scale, rel=0.5)
    assert gc.check_vjp(conv, conv_grad, (X,), dtype=dtype, probes=3).passed


# ----------------------------------------------------------------------------------------- kinks


def test_relu_inputs_closer_to_zero_than_any_step_are_a_kink_not_a_failure():
    x = np.random.default_rng(6).standard_normal((1, 2, 4, 4))
    x[0, 1, 2, 3] = 1e-14
    res = gc.check_vjp(ops.relu_forward, ops.relu_backward, (x,))
    assert res.verdict == "kink" and not res.passed and res.retries >= 3
    assert res.suspects[0, 1, 2, 3] and res.suspects.sum() <= 2
    assert (
        "the other 31 elements pass alone" in res.note
    )  # the rest of the gradient is still proven
    with pytest.raises(
        AssertionError, match=r"KINK(.|\n)*kink at: 1 of 32 elements: \[0, 1, 2, 3\]"
    ):
        gc.assert_vjp(ops.relu_forward, ops.relu_backward, (x,))
    assert gc.assert_vjp(ops.relu_forward, ops.relu_backward, (x,), allow="kink").verdict == "kink"
    # a negated gradient is not hidden behind the kink: the other elements fail
    res = gc.check_vjp(ops.relu_forward, lambda g, m: -ops.relu_backward(g, m), (x,))
    assert res.verdict == "fail" and "beside the kink at 1 of 32 elements" in res.note
    with pytest.raises(AssertionError, match="FAIL"):
        gc.assert_vjp(ops.relu_forward, lambda g, m: -ops.relu_backward(g, m), (x,), allow="kink")


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
    x[0, 0, 1, 1] = (
        2e-7  # inside the first step (this element moves by ~8e-7), outside the retried one
    )
    res = gc.check_vjp(ops.relu_forward, ops.relu_backward, (x,))
    assert res.passed and res.retries >= 1


# ------------------------------------------------ near a kink a pass is still a proof (properties)
# Six non-smooth functions in plain NumPy with their correct backwards; a few inputs are placed
# within 1e-12 … 1e-6 of a kink, closer than any automatic step.


def _scatter(shape, index, values):
    g = np.zeros(shape)
    np.put_along_axis(g, index, values, -1)
    return g


def _windows(x):
    """(C, H, W) -> (C, H/2, W/2, 4): the 2x2 windows of a max pool."""
    c, h, w = x.shape
    return x.reshape(c, h // 2, 2, w // 2, 2).transpose(0, 1, 3, 2, 4).reshape(c, h // 2, w // 2, 4)


def _unwindows(win):
    c, h2, w2, _ = win.shape
    return win.reshape(c, h2, w2, 2, 2).transpose(0, 1, 3, 2, 4).reshape(c, 2 * h2, 2 * w2)


def _sort_forward(x):
    index = np.argsort(x, axis=-1)
    return np.take_along_axis(x, index, -1), (index, x.shape)


def _max_forward(x):
    index = np.argmax(x, axis=-1)[..., None]
    return np.take_along_axis(x, index, -1)[..., 0], (index, x.shape)


def _pool_forward(x):
    index = np.argmax(_windows(x), axis=-1)[..., None]
    return np.take_along_axis(_windows(x), index, -1)[..., 0], (index, _windows(x).shape)


NONSMOOTH = {
    "abs": (lambda x: (np.abs(x), np.sign(x)), lambda u, s: u * s),
    "relu": (lambda x: (np.maximum(x, 0), x > 0), lambda u, m: u * m),
    "clip": (lambda x: (np.clip(x, -1, 1), (x > -1) & (x < 1)), lambda u, m: u * m),
    "sort": (_sort_forward, lambda u, c: _scatter(c[1], c[0], u)),
    "max": (_max_forward, lambda u, c: _scatter(c[1], c[0], u[..., None])),
    "maxpool": (_pool_forward, lambda u, c: _unwindows(_scatter(c[1], c[0], u[..., None]))),
}


def _near_kinks(name, x, rng, gap, count):
    """Move ``count`` inputs within ``gap`` of a kink of ``name``; returns x and the moved ones."""
    moved = np.zeros(x.shape, bool)
    sign = lambda: rng.choice([-1.0, 1.0])
    if name in ("abs", "relu", "clip"):
        for i in rng.choice(x.size, min(count, x.size), replace=False):
            x.flat[i] = (rng.choice([-1.0, 1.0]) if name == "clip" else 0.0) + sign() * gap
            moved.flat[i] = True
        return x, moved
    rows = _windows(x) if name == "maxpool" else x
    win = rows.reshape(-1, rows.shape[-1])
    for r in rng.choice(win.shape[0], min(count, win.shape[0]), replace=False):
        top = int(np.argmax(win[r]))
        other = (top + 1 + int(rng.integers(win.shape[1] - 1))) % win.shape[1]
        win[r, other] = win[r, top] + sign() * gap  # a near-tie with the largest (sort: any two)
        mask = np.zeros(win.shape, bool)
        mask[r, other] = True
        moved |= (
            _unwindows(mask.reshape(rows.shape)) if name == "maxpool" else mask.reshape(x.shape)
        )
    x = _unwindows(win.reshape(rows.shape)) if name == "maxpool" else win.reshape(x.shape)
    return x, moved


def _broken(backward, how, moved):
    """The backward negated, with one sign flipped (at a moved input if it matters), or 1 % off."""

    def wrong(u, cache):
        g = backward(u, cache).astype(float)
        if how == "negated":
            return -g
        if how == "scaled":
            return g * 1.01
        big = np.abs(g) >= 0.1 * np.abs(g).max()
        i = np.argmax(np.abs(g) * (big & moved)) if (big & moved).any() else np.argmax(np.abs(g))
        g.flat[i] = -g.flat[i]
        return g

    return wrong


@st.composite
def near_kink_cases(draw):
    name = draw(st.sampled_from(sorted(NONSMOOTH)))
    dims = st.integers(1, 4)
    if name == "maxpool":
        shape = (draw(st.integers(1, 2)), 2 * draw(st.integers(1, 3)), 2 * draw(st.integers(1, 3)))
    elif name in ("sort", "max"):
        shape = (draw(dims), draw(st.integers(2, 6)))
    else:
        shape = tuple(draw(st.lists(dims, min_size=1, max_size=3)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    gap = 10.0 ** draw(st.floats(-12, -6))
    x, moved = _near_kinks(name, rng.standard_normal(shape), rng, gap, draw(st.integers(1, 3)))
    out, cache = NONSMOOTH[name][0](x)
    assume(NONSMOOTH[name][1](np.ones_like(out), cache).any())  # else every "broken" one is right
    return name, x, moved, gap


def _settings(examples):
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None)


@_settings(100)
@given(near_kink_cases())
def test_near_a_kink_no_broken_backward_passes_and_no_correct_one_fails(case):
    name, x, moved, gap = case
    forward, backward = NONSMOOTH[name]
    res = gc.check_vjp(forward, backward, (x,), name=name)
    assert res.verdict in ("pass", "kink"), res.report()
    assert res.verdict == "pass" or res.suspects.any()
    for how in ("negated", "flip", "scaled"):
        res = gc.check_vjp(forward, _broken(backward, how, moved), (x,), name=f"{name} {how}")
        assert res.verdict != "pass", f"{how} {name}, inputs {gap:.1e} from a kink\n{res.report()}"


@_settings(40)
@given(near_kink_cases())
def test_near_a_kink_in_float32_no_gross_error_passes(case):
    # in float32 most of these near-ties are exact ties, and the steps float32 can resolve are long:
    # a tolerance up to the cap (1e-1) may hold a one-element sign flip or a 1 % error, never these
    name, x, moved, _ = case
    forward, backward = NONSMOOTH[name]
    as32 = lambda bwd: lambda u, c: bwd(u, c).astype(np.float32)
    res = gc.check_vjp(forward, as32(backward), (x,), dtype=np.float32)
    assert res.verdict in ("pass", "kink"), res.report()
    res = gc.check_vjp(forward, as32(_broken(backward, "negated", moved)), (x,), dtype=np.float32)
    assert res.verdict != "pass", res.report()


def test_the_issues_near_kink_cases_no_longer_pass_a_negated_gradient():
    # a few inputs 1e-9 from a kink: the old checker passed 11 of these 18 broken backwards (its
    # noise probe crossed the kinks and read their jump as rounding); now each fails, at a step
    # shorter than the kink's distance, and the correct backwards pass there
    rng = np.random.default_rng(0)
    for name, (forward, backward) in NONSMOOTH.items():
        shape = (2, 4, 6)
        x, moved = _near_kinks(name, rng.standard_normal(shape), rng, 1e-9, 3)
        res = gc.check_vjp(forward, backward, (x,))
        assert res.passed and res.noise_source in ("model", "measured"), res.report()
        assert res.noise <= 4 * res.noise_model and res.eps < 1e-7
        for how in ("negated", "flip", "scaled"):
            assert gc.check_vjp(forward, _broken(backward, how, moved), (x,)).verdict == "fail"


def test_a_kink_cannot_pose_as_rounding_noise():
    # ties at x itself: the noise probe's stencils keep out of (-d, d), so it reads the model
    x = np.array([[3.0, 3.0, 1.0, -2.0], [0.5, 0.5, 0.5, -1.0]])
    res = gc.check_vjp(*NONSMOOTH["max"], (x,))
    assert res.verdict == "kink" and res.noise_source == "model" and res.suspects[:, :3].any()
    assert "noise" in res.report() and "(model)" in res.report()
    # kinks spread over the probe's own points: it shrinks with its spacing, as rounding never does
    x = np.random.default_rng(1).standard_normal(40)
    x[:8] = 1e-8 * np.arange(1, 9)
    res = gc.check_vjp(*NONSMOOTH["relu"], (x,))
    assert res.noise <= 4 * res.noise_model and res.verdict in ("pass", "kink")


def test_amplified_rounding_is_verified_and_used_but_not_beyond_three_orders():
    # catastrophic cancellation: (x + 1e4) − 1e4 rounds x to 1.8e-12, some 300x the machine-epsilon
    # model; the probe reads it steady across spacings 8x apart (rounding, not a kink) and uses it
    res = gc.check_vjp(lambda x: (x + 1e4) - 1e4, lambda u, _: u, (X,))
    assert res.passed and res.noise_source == "verified" and 30 * res.noise_model < res.noise
    assert "steady across spacings 8x apart" in res.noise_why
    # (x + 1e6) − 1e6: a staircase of 1.2e-10 steps, 1e4x the model: no pass rests on such a noise
    staircase = lambda x: (x + 1e6) - 1e6
    res = gc.check_vjp(staircase, lambda u, _: u, (X,))
    assert res.verdict in ("kink", "inconclusive") and res.noise_measured > 1e3 * res.noise_model
    assert res.noise_source in ("implausible", "unverified") and "cannot pass" in res.noise_why
    assert gc.check_vjp(staircase, lambda u, _: u, (X,), rtol=1e-3).passed  # unless told


def test_a_tolerance_above_the_cap_is_inconclusive_never_a_pass():
    # a value of 1e12 around a gradient of order 1: rounding swamps every step, 8x and 64x longer
    f = lambda x: (1e12 + float(x @ x), 2 * x)
    res = gc.check_grad(f, np.linspace(-1, 1, 5))
    assert res.verdict == "inconclusive" and res.tolerance > res.cap == 1e-3
    assert "above the cap" in res.note and len(res.steps) == 3 and res.directions == 2
    with pytest.raises(AssertionError, match="INCONCLUSIVE"):
        gc.assert_grad(f, np.linspace(-1, 1, 5))
    assert gc.assert_grad(f, np.linspace(-1, 1, 5), allow="inconclusive").verdict == "inconclusive"
    with pytest.raises(ValueError, match="allow="):
        gc.assert_grad(f, np.linspace(-1, 1, 5), allow="fail")


# ---------------------------------------------------------- the finite difference's order, pinned


def _derivative(kind, k, n, x):
    """The n-th derivative of exp(k·x) or sin(k·x)."""
    return k**n * (np.exp(k * x) if kind == "exp" else np.sin(k * x + n * np.pi / 2))


@pytest.mark.parametrize("kind,k", [("exp", 3.0), ("sin", 4.0)])
def test_the_finite_difference_is_sixth_order_and_its_budget_fourth(kind, k):
    # one element, so v = ±1 and φ(t) = f(0.3 ± t): φ's odd derivatives are known. The value
    # (64·D(h/4) − 20·D(h/2) + D(h))/45 errs by f⁽⁷⁾h⁶/322560; its budget |R₁ − R₂|/15 is
    # f⁽⁵⁾h⁴/7680. A first-order value (2·D(h/2) − D(h)) errs by ~f'''h²/12, plain Richardson by
    # f⁽⁵⁾h⁴/480: both are caught here, and so is a budget of the wrong order (|D(h) − D(h/2)|).
    def f(x):
        return float(_derivative(kind, k, 0, x[0])), np.array([_derivative(kind, k, 1, x[0])])

    x0, gaps = 0.3, []
    for h in (0.1, 0.05):
        res = gc.check_grad(f, np.array([x0]), eps=h)
        gap = abs(res.analytic - res.numeric)
        gaps.append(gap)
        assert gap == pytest.approx(abs(_derivative(kind, k, 7, x0)) * h**6 / 322560, rel=0.05)
        trunc = abs(_derivative(kind, k, 5, x0)) * h**4 / 7680
        assert res.budget["truncation"] == pytest.approx(trunc, rel=0.05)
        scale = max(abs(res.analytic), abs(res.numeric))
        budget = res.budget["rounding"] + res.budget["truncation"] + res.budget["analytic"]
        assert gap <= res.tolerance * scale == pytest.approx(4 * budget, rel=1e-12)
    assert 55 < gaps[0] / gaps[1] < 75  # halving the step: 2⁶


def test_a_plain_pass_costs_seventeen_evaluations():
    res = gc.check_vjp(conv, conv_grad, (X,))
    assert res.passed and res.forwards == 17 and res.steps == (res.eps,) and res.retries == 0
    assert gc.check_grad(lambda x: (float(np.sum(x**2)), 2 * x), X).forwards == 18  # two calls at x


# ------------------------------------------------------------------------------ structural checks


def test_forward_that_mutates_its_input_fails_naming_the_elements():
    def fwd(x):
        x[0, 0, 0, 0] += 1.0
        return conv(x)

    res = gc.check_vjp(fwd, conv_grad, (X,))
    assert res.verdict == "fail" and "the forward changed its input args[0]" in res.problems[0]
    assert np.argwhere(res.suspects).tolist() == [[0, 0, 0, 0]]
    assert gc.check_grad(lambda x: (x.__imul__(2).sum(), np.ones_like(x)), np.ones(3)).problems == [
        "the function changed its input x"
    ]


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
    res = gc.check_vjp(
        conv, lambda g, c: conv_grad(g, c) + noise.standard_normal(X.shape) * 1e-12, (X,)
    )
    assert (
        res.verdict == "fail"
        and "two backward calls with the same u and cache disagree" in res.report()
    )
    assert res.suspects.all()


def test_wrong_gradient_shape_dtype_or_module_is_a_problem(monkeypatch):
    res = gc.check_vjp(conv, lambda g, c: conv_grad(g, c)[..., :-1], (X,))
    assert (
        res.verdict == "fail"
        and "the gradient has shape (2, 3, 8, 7), the input (2, 3, 8, 8)" in res.problems
    )
    res = gc.check_vjp(
        conv, lambda g, c: conv_grad(g, c).astype(np.float64), (X,), dtype=np.float32
    )
    assert res.verdict == "fail" and "the gradient is float64, the input float32" in res.problems[0]
    # check_grad accepts a more precise gradient: a float32 engine behind a float64 boundary
    assert gc.check_grad(
        lambda x: (float(np.sum(x.astype(float) ** 2)), 2 * x.astype(float)),
        X[0, 0],
        dtype=np.float32,
    ).passed

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
    assert (
        bad.probes == 16
        and 3e-4 < bad.jacobian_error < 3e-3
        and bad.jacobian_bound > bad.jacobian_error
    )
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
    f = lambda x: (float(np.sum(x**2)), 2 * x + 1e-9)
    assert gc.check_grad(f, np.zeros(3)).verdict == "fail"
    assert not gc.check_grad(f, np.zeros(3), rtol=0).passed
    res = gc.check_grad(f, np.zeros(3), rtol=0, atol=1e-6)
    assert res.passed and not res.derived and "tolerance given" in res.report()


def test_assert_forms_raise_the_report_and_return_the_result_on_pass():
    assert gc.assert_vjp(conv, conv_grad, (X,)).passed
    with pytest.raises(AssertionError, match=r"FAIL(.|\n)*suspects"):
        gc.assert_vjp(conv, lambda g, c: conv_grad(g, c) * 2, (X,))
    with pytest.raises(AssertionError, match="FAIL"):
        gc.assert_grad(lambda x: (float(np.sum(x**2)), x), np.ones(4))


def test_rel_error_and_numerical_grad():
    assert gc.rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert gc.rel_error(1.0, 1.0 + 1e-9) == pytest.approx(1e-9, rel=1e-3)
    assert gc.rel_error([1.0, 2.0], [1.0, 1.0]) == pytest.approx(0.5)
    A = np.random.default_rng(3).standard_normal((4, 4))
    x = np.arange(4.0)
    np.testing.assert_allclose(
        gc.numerical_grad(lambda x: float(x @ A @ x), x), (A + A.T) @ x, rtol=1e-7, atol=1e-7
    )
    x = np.random.default_rng(4).standard_normal((1, 1, 4, 4))
    y, cache = ops.avg_pool2d_forward(x)
    u = np.random.default_rng(5).standard_normal(y.shape)
    np.testing.assert_allclose(
        gc.numerical_grad(ops.avg_pool2d_forward, x, cotangent=u),
        ops.avg_pool2d_backward(u, cache),
        rtol=1e-7,
        atol=1e-9,
    )


def test_the_library_imports_nothing_of_the_engine():
    package = pathlib.Path(gc.__file__).parent
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                assert node.level <= 1, (
                    f"{path.name}: import from outside the package ({node.module!r})"
                )
                names = set() if node.level == 1 else {node.module.split(".")[0]}
            else:
                continue
            assert names <= {
                "__future__",
                "collections",
                "dataclasses",
                "functools",
                "hashlib",
                "math",
                "sys",
                "typing",
                "numpy",
            }, (path.name, names)
