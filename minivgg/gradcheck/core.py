"""``check_vjp`` / ``check_grad`` and their pytest forms ``assert_vjp`` / ``assert_grad``.

One check: cast the float inputs to ``dtype``, run the function once (structural checks: inputs
unchanged, backward leaves ``u`` and the cache alone and repeats itself exactly, the gradient has
the input's shape, dtype and array module), then for each probe a random unit direction ``v`` (and
a random cotangent ``u``) compared along the line: ``⟨backward(u), v⟩`` against the Richardson
finite difference of ``t -> ⟨u, f(x + t·v)⟩``, with a tolerance derived from its error budget.
The automatic step retries shorter on a kink, confirms a failure at a shorter step and grows while
rounding-bound; a failure or a kink is then localised by bisection.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from . import finite
from .arrays import array_module, cast, changed_elements, dot64, fingerprint, host, is_float_array, norm64, to64
from .localize import bisect
from .result import CheckResult

ANALYTIC_ROUNDING = 4.0  # the backward's own rounding: this many machine epsilons of |⟨g, v⟩| + ‖g ⊙ v‖
DENSE_KINKS = {"pass": "kinks inside every step tried, but the one-sided slopes and the finite difference all "
                       "agree with the gradient within the tolerance",
               "fail": "kinks inside every step tried, but the one-sided slopes disagree by less than the "
                       "tolerance: they cannot explain the gap"}
SPREAD_SHARE = 0.25      # a block holding this share of its parent's gap is followed even below the threshold


@dataclasses.dataclass
class _Probe:
    """One direction's worth of data: the analytic gradient for its cotangent and f along the line."""
    g: object
    f0: float
    evaluate: object      # point -> f(point) as a float (⟨u, forward(point)⟩ for a VJP)
    fscale: float         # ‖u ⊙ out‖ (the rounding of the outputs), 0 for a scalar function
    v_raw: np.ndarray


class _Counter:
    """``fn`` counting its calls (the forward evaluations a check spends)."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *a, **k):
        self.calls += 1
        return self.fn(*a, **k)


def _split(result):
    """Forward functions may return ``out`` or ``(out, cache)``."""
    if isinstance(result, tuple):
        return result[0], (result[1] if len(result) > 1 else None)
    return result, None


def _gradient_problems(g, x, exact_dtype: bool) -> list:
    """Shape, dtype and array-module faults of a gradient ``g`` for the input ``x``."""
    if g is None or not hasattr(g, "shape"):
        return [f"the gradient is {type(g).__name__}, not an array shaped like the input {tuple(x.shape)}"]
    out = []
    if tuple(g.shape) != tuple(x.shape):
        out.append(f"the gradient has shape {tuple(g.shape)}, the input {tuple(x.shape)}")
    gk = getattr(g.dtype, "kind", "")
    if exact_dtype and g.dtype != x.dtype:
        out.append(f"the gradient is {g.dtype}, the input {x.dtype} (a backward keeps its input's dtype)")
    elif not exact_dtype and (gk != "f" or np.finfo(g.dtype).eps > np.finfo(x.dtype).eps):
        out.append(f"the gradient is {g.dtype}, less precise than the input's {x.dtype}")
    if array_module(g) is not array_module(x):
        out.append(f"the gradient is a {array_module(g).__name__} array, the input a {array_module(x).__name__} array")
    return out


def _run_probe(p: _Probe, x64, xp, dtype, eps, tol_abs_user):
    """The directional comparison for one probe: returns a dict of the numbers and the line fit."""
    eps_m = float(np.finfo(dtype).eps)
    v64 = p.v_raw / np.sqrt(np.sum(p.v_raw ** 2))
    g64 = to64(p.g)

    def line(direction):
        return lambda t: p.evaluate(xp.asarray((x64 + t * direction).astype(dtype)))

    a = float(np.sum(g64 * v64))
    an_err = eps_m * ANALYTIC_ROUNDING * (abs(a) + float(np.sqrt(np.sum((g64 * v64) ** 2))))
    h = float(eps) if eps is not None else finite.auto_step(x64, eps_m)
    tiny = finite.probe_noise(line(v64), h)
    norm_gx = float(np.sqrt(np.sum((g64 * x64) ** 2)))

    def assess(h, retries):
        model = eps_m / 2 * (abs(p.f0) + h * abs(a) + p.fscale + norm_gx)
        fit = finite.fit_line(line(v64), h, p.f0, model, tiny)
        numeric = fit.numeric
        budget = {"rounding": fit.rounding, "truncation": fit.truncation, "analytic": an_err,
                  "multiple": finite.SAFETY}
        scale = max(abs(a), abs(numeric))
        total = fit.rounding + fit.truncation + an_err
        tol_abs = finite.SAFETY * total if tol_abs_user is None else tol_abs_user(scale)
        gap = abs(a - numeric)
        finite_ok = math.isfinite(numeric) and math.isfinite(a)
        verdict = "pass" if finite_ok and gap <= tol_abs else "fail"
        # a kink: the one-sided slopes disagree well beyond rounding, or beyond the gap they explain
        if fit.kink or (verdict == "fail" and finite_ok and fit.slope_jump >= gap and fit.kinked(finite.SAFETY / 2)):
            verdict = "kink"
        return dict(a=a, numeric=numeric, gap=gap, scale=scale, tol_abs=tol_abs, fit=fit, h=h, retries=retries,
                    verdict=verdict, budget=budget, total=total, g64=g64, v64=v64, line=line, an_err=an_err,
                    eps_m=eps_m, finite_ok=finite_ok, norm=float(np.sqrt(np.sum(p.v_raw ** 2))))

    r = assess(h, 0)
    if eps is not None:
        return r
    while r["verdict"] != "pass" and r["retries"] < finite.RETRIES:
        shorter = assess(r["h"] / finite.RETRY_FACTOR, r["retries"] + 1)
        # a failure stands when a shorter step finds the same finite difference; when it moves beyond
        # both budgets, f was not smooth at the longer step (dense kinks) and the shorter one decides
        if (r["verdict"] == "fail"
                and abs(shorter["numeric"] - r["numeric"]) <= finite.SAFETY * (r["total"] + shorter["total"])):
            break
        r = shorter
    if (r["verdict"] == "kink" and r["retries"] == finite.RETRIES and r["finite_ok"]
            and r["fit"].slope_jump <= r["tol_abs"]):
        # kinks at every step (a big network: millions of ReLUs), too small to move the verdict either way
        r["verdict"] = "pass" if r["gap"] <= r["tol_abs"] else "fail"
        r["note"] = DENSE_KINKS[r["verdict"]]
    for _ in range(finite.LONGER_STEPS if r["retries"] == 0 else 0):
        # rounding-bound (the output's scale is not x's): a longer step proves more, unless it meets a kink
        if not r["fit"].rounding_bound or r["fit"].rounding <= an_err:
            break
        longer = assess(r["h"] * finite.RETRY_FACTOR, 0)
        if longer["verdict"] == "kink" or longer["total"] >= r["total"]:
            break
        r = longer
    return r


def _localize(r, shape):
    """Suspects of a failing or kinked probe ``r`` (see ``localize.bisect``) and the evaluations spent."""
    fit, h, g64, v64, line = r["fit"], r["h"], r["g64"], r["v64"], r["line"]
    if r["verdict"] == "kink":
        def split(_, ml, mr):
            kinks = [finite.fit_line(line(v64 * m), h, fit.f0, fit.noise).kinked(finite.SAFETY / 2)
                     for m in (ml, mr)]
            return kinks[0], kinks[1], 8
        return bisect(shape, True, split, bool)

    def threshold(vb, ab):
        an = r["eps_m"] * ANALYTIC_ROUNDING * (abs(ab) + float(np.sqrt(np.sum((g64 * vb) ** 2))))
        return finite.SAFETY * (fit.noise / h + 2 * fit.truncation + an)

    def split(parent, ml, mr):
        a_p, n_p, t_p, _ = parent
        vl = v64 * ml
        a_l = float(np.sum(g64 * vl))
        n_l = finite.central(line(vl), h)
        t_l = threshold(vl, a_l)
        gap_p = abs(a_p - n_p)  # the right half is the parent minus the left: no evaluations of its own
        return (a_l, n_l, t_l, gap_p), (a_p - a_l, n_p - n_l, t_p + t_l, gap_p), 2

    def bad(state):
        # fails alone, or carries a good share of its parent's gap (a fault spread over both halves)
        a, n, t, gap_parent = state
        gap = abs(a - n)
        return gap > t or (gap > SPREAD_SHARE * gap_parent and gap > t / 4)

    root = (r["a"], r["numeric"], min(r["tol_abs"], threshold(v64, r["a"])) if r["finite_ok"] else 0.0, 0.0)
    return bisect(shape, root, split, bad)


def _check(name, what, x, probes_data, eps, rtol, atol, dtype, problems, suspects, counter):
    """Run every probe, pick the worst, localise it, and build the CheckResult."""
    xp = array_module(x)
    x64 = to64(x)
    user = None
    if rtol is not None or atol is not None:
        user = lambda scale: max(atol or 0.0, (rtol or 0.0) * scale)  # noqa: E731
    runs = [_run_probe(p, x64, xp, dtype, eps, user) for p in probes_data]
    rank = {"kink": 1, "fail": 2, "pass": 0}

    def badness(r):
        return (rank[r["verdict"]], r["gap"] / r["tol_abs"] if r["tol_abs"] > 0 else (math.inf if r["gap"] else 0))
    worst = max(runs, key=badness)
    verdict = worst["verdict"]
    spent = 0
    if verdict != "pass":
        suspects, spent = _localize(worst, x.shape)
    if problems:
        verdict = "fail"
    scale = worst["scale"]
    error = worst["gap"] / scale if scale > 0 else (0.0 if worst["gap"] == 0 else math.inf)
    tolerance = worst["tol_abs"] / scale if scale > 0 else math.inf
    if not worst["finite_ok"]:
        problems.append("the function or its gradient is not finite at the input (or along the step)")
    j_err, j_bound = finite.jacobian_error([(r["a"] - r["numeric"]) * r["norm"] for r in runs],
                                           [r["numeric"] * r["norm"] for r in runs])
    return CheckResult(name=name, shape=tuple(x.shape), verdict=verdict, error=float(error), tolerance=float(tolerance),
                       eps=worst["h"], analytic=worst["a"], numeric=worst["numeric"], input=what,
                       dtype=str(np.dtype(dtype)), derived=user is None, budget=worst["budget"], suspects=suspects,
                       problems=problems, probes=len(runs), jacobian_error=j_err, jacobian_bound=j_bound,
                       forwards=counter.calls, localization_forwards=spent, retries=worst["retries"],
                       note=worst.get("note", ""))


def check_vjp(forward, backward, args, wrt: int = 0, *, eps=None, rtol=None, atol=None, dtype=None, seed: int = 0,
              probes: int = 1, name: str = "", kwargs=None) -> CheckResult:
    """Check ``backward`` against ``forward`` w.r.t. ``args[wrt]`` by the directional (adjoint) test.

    ``forward(*args, **kwargs) -> out`` or ``(out, cache)``; ``backward(u, cache)`` returns the
    gradient (an array, or a tuple indexed by ``wrt``). Float arrays in ``args`` are cast to ``dtype``
    (default float64). ``eps`` is the step along a unit direction (default: from the dtype and ‖x‖,
    retried smaller on a kink); ``rtol``/``atol`` replace the derived tolerance; ``probes`` pairs (u, v).
    """
    dtype = np.dtype(dtype or np.float64)
    kwargs = dict(kwargs or {})
    args = [cast(a, dtype) for a in args]
    x = args[wrt]
    if not is_float_array(x):
        raise TypeError(f"check_vjp: args[{wrt}] must be a float array, got {type(x).__name__}")
    label = name or getattr(forward, "__name__", "op")
    fwd = _Counter(lambda *a: _split(forward(*a, **kwargs)))
    before = [fingerprint(a) for a in args]
    x_before = host(x).copy()
    out, cache = fwd(*args)
    problems, suspects = [], None
    for i, (b, a) in enumerate(zip(before, args)):
        if fingerprint(a) != b:
            problems.append(f"the forward changed its input args[{i}]")
            if i == wrt:
                suspects = changed_elements(x_before, x)
    x = array_module(x).asarray(x_before)  # every evaluation starts from the input as given
    out_xp = array_module(out)
    rng = np.random.default_rng(seed)

    def grad_of(u):
        grads = backward(u, cache)
        return grads[wrt] if isinstance(grads, (tuple, list)) else grads

    probes_data = []
    for k in range(max(1, int(probes))):
        u = out_xp.asarray(rng.standard_normal(np.shape(out)).astype(dtype))
        v_raw = rng.standard_normal(x.shape)
        f0 = dot64(u, out)  # before any backward, which might reuse out's memory
        fscale = norm64(to64(u) * to64(out))
        if k == 0:
            u_before, cache_before = fingerprint(u), fingerprint(cache)
            u_copy = out_xp.array(u, copy=True)
            g = grad_of(u)
            if fingerprint(u) != u_before:
                problems.append("the backward changed its cotangent u (work on a copy, or document inplace=)")
            if fingerprint(cache) != cache_before:
                problems.append("the backward changed the cache (a second backward would see different data)")
            shape_problems = _gradient_problems(g, x, exact_dtype=True)
            problems += shape_problems
            if shape_problems and (g is None or not hasattr(g, "shape") or tuple(g.shape) != tuple(x.shape)):
                return CheckResult(name=label, shape=tuple(x.shape), verdict="fail", error=math.inf,
                                   input=f"args[{wrt}]", dtype=str(dtype), problems=problems, forwards=fwd.calls)
            g_host = host(g).copy()
            g2 = grad_of(u_copy)
            if g2 is not None and hasattr(g2, "shape") and tuple(g2.shape) == tuple(x.shape):
                diff = changed_elements(g_host, g2)
                if diff.any():
                    problems.append(f"two backward calls with the same u and cache disagree at {int(diff.sum())} "
                                    f"elements (max difference {float(np.max(np.abs(to64(g2) - g_host))):.3g})")
                    suspects = diff if suspects is None else suspects | diff
            g = out_xp.asarray(g_host) if array_module(g) is out_xp else g_host
        else:
            g = grad_of(u)
        probes_data.append(_Probe(g, f0, lambda p, u=u: dot64(u, fwd(*args[:wrt], p, *args[wrt + 1:])[0]),
                                  fscale, v_raw))
    return _check(label, f"args[{wrt}]", x, probes_data, eps, rtol, atol, dtype, problems, suspects, fwd)


def check_grad(value_and_grad, x, *, eps=None, rtol=None, atol=None, dtype=None, seed: int = 0, probes: int = 1,
               name: str = "", kwargs=None) -> CheckResult:
    """The same check for a scalar function: ``value_and_grad(x, **kwargs) -> (value, grad)``.

    Compares ``⟨grad, v⟩`` with the finite difference of the value along unit directions ``v``;
    the gradient may be more precise than x (a float32 network behind a float64 boundary is fine).
    """
    dtype = np.dtype(dtype or np.float64)
    kwargs = dict(kwargs or {})
    x = cast(x, dtype)
    if not is_float_array(x):
        raise TypeError(f"check_grad: x must be a float array, got {type(x).__name__}")
    fn = _Counter(lambda p: value_and_grad(p, **kwargs))
    x_before = host(x).copy()
    f0, g = fn(x)
    problems, suspects = [], None
    if fingerprint(x) != fingerprint(x_before):
        problems.append("the function changed its input x")
        suspects = changed_elements(x_before, x)
    x = array_module(x).asarray(x_before)
    shape_problems = _gradient_problems(g, x, exact_dtype=False)
    problems += shape_problems
    if g is None or not hasattr(g, "shape") or tuple(g.shape) != tuple(x.shape):
        return CheckResult(name=name or "function", shape=tuple(x.shape), verdict="fail", error=math.inf, input="x",
                           dtype=str(dtype), problems=problems, forwards=fn.calls)
    g_host = host(g).copy()
    f0b, g2 = fn(array_module(x).array(x_before, copy=True))
    value_moved = changed_elements(np.float64(f0), np.float64(f0b)).any()
    if value_moved or (hasattr(g2, "shape") and changed_elements(g_host, g2).any()):
        problems.append("two calls at the same x disagree (value or gradient)")
    rng = np.random.default_rng(seed)
    probes_data = [_Probe(g, float(f0), lambda p: float(fn(p)[0]), 0.0, rng.standard_normal(x.shape))
                   for _ in range(max(1, int(probes)))]
    return _check(name or "function", "x", x, probes_data, eps, rtol, atol, dtype, problems, suspects, fn)


def assert_vjp(*args, **kwargs) -> CheckResult:
    """``check_vjp`` for test suites: raises ``AssertionError(report)`` unless the verdict is "pass"."""
    __tracebackhide__ = True
    res = check_vjp(*args, **kwargs)
    if not res.passed:
        raise AssertionError(res.report())
    return res


def assert_grad(*args, **kwargs) -> CheckResult:
    """``check_grad`` for test suites: raises ``AssertionError(report)`` unless the verdict is "pass"."""
    __tracebackhide__ = True
    res = check_grad(*args, **kwargs)
    if not res.passed:
        raise AssertionError(res.report())
    return res
