"""``check_vjp`` / ``check_grad``: one gradient check, from the call to the ``CheckResult``.

One check: cast the float inputs to ``dtype``, run the function once (structural checks: inputs
unchanged, backward leaves ``u`` and the cache alone and repeats itself exactly, the gradient has
the input's shape, dtype and array module), then for each probe a random unit direction ``v`` (and
a random cotangent ``u``) compared along the line: ``⟨backward(u), v⟩`` against the extrapolated
finite difference of ``t -> ⟨u, f(x + t·v)⟩`` (``finite.py``), with a tolerance derived from its
error budget and a noise measured where a kink cannot pose as it (``noise.py``). What each step can
prove, the retries and the verdict are ``decide.py``'s; a failure or a kink is then localised.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import decide, finite
from .arrays import (
    array_module,
    cast,
    changed_elements,
    dot64,
    fingerprint,
    host,
    is_float_array,
    norm64,
    to64,
)
from .localize import describe
from .result import CheckResult


class _Counter:
    """``fn`` counting its calls (the forward evaluations a check spends)."""

    def __init__(self, fn: Callable) -> None:
        self.fn, self.calls = fn, 0

    def __call__(self, *a: Any, **k: Any) -> Any:
        self.calls += 1
        return self.fn(*a, **k)


def _split(result: Any) -> tuple[Any, Any]:
    """Forward functions may return ``out`` or ``(out, cache)``."""
    if isinstance(result, tuple):
        return result[0], (result[1] if len(result) > 1 else None)
    return result, None


def _gradient_problems(g: Any, x: Any, exact_dtype: bool) -> list[str]:
    """Shape, dtype and array-module faults of a gradient ``g`` for the input ``x``."""
    if g is None or not hasattr(g, "shape"):
        return [
            f"the gradient is {type(g).__name__}, "
            f"not an array shaped like the input {tuple(x.shape)}"
        ]
    out = []
    if tuple(g.shape) != tuple(x.shape):
        out.append(f"the gradient has shape {tuple(g.shape)}, the input {tuple(x.shape)}")
    gk = getattr(g.dtype, "kind", "")
    if exact_dtype and g.dtype != x.dtype:
        out.append(
            f"the gradient is {g.dtype}, the input {x.dtype} (a backward keeps its input's dtype)"
        )
    elif not exact_dtype and (gk != "f" or np.finfo(g.dtype).eps > np.finfo(x.dtype).eps):
        out.append(f"the gradient is {g.dtype}, less precise than the input's {x.dtype}")
    if array_module(g) is not array_module(x):
        out.append(
            f"the gradient is a {array_module(g).__name__} array, "
            f"the input a {array_module(x).__name__} array"
        )
    return out


def _direction(rng: np.random.Generator, shape: tuple) -> tuple[np.ndarray, np.random.Generator]:
    """The probe's first direction and a generator of its fresh ones (seeded from ``rng``)."""
    v_raw = rng.standard_normal(shape)
    return v_raw, np.random.default_rng(int(rng.integers(2**63)))


def _relative(step: decide.Step) -> tuple[float, float]:
    """The step's gap and tolerance relative to ``max(|⟨g, v⟩|, |numeric|)``."""
    if step.scale > 0:
        return step.gap / step.scale, step.tol / step.scale
    return (0.0 if step.gap == 0 else math.inf), math.inf


def _check(
    name, what, x, probes_data, eps, rtol, atol, dtype, problems, suspects, counter
) -> CheckResult:
    """Run every probe, pick the worst, localise it, and build the CheckResult."""
    xp = array_module(x)
    x64 = to64(x)
    user = None
    if rtol is not None or atol is not None:
        user = lambda scale: max(atol or 0.0, (rtol or 0.0) * scale)
    runs = [decide.run_probe(p, x64, xp, dtype, eps, user) for p in probes_data]

    def badness(o: decide.Outcome) -> tuple[int, float]:
        s = o.step
        return decide.RANK[o.verdict], s.gap / s.tol if s.tol > 0 else (math.inf if s.gap else 0.0)

    worst = max(runs, key=badness)
    verdict, step = worst.verdict, worst.step
    spent = 0
    if verdict in ("fail", "kink"):
        suspects, spent = decide.localize(worst, x.shape)
    note = worst.note
    if verdict == "kink" and not problems and suspects is not None and (~suspects).any():
        # the kink's elements cannot be checked; the others can, along v with the kink's left out
        rest = decide.along(worst.probe, worst.v_raw * ~suspects, x64, xp, dtype, eps, user)
        if rest.verdict == "fail":
            rest = decide.confirm(rest, x64, xp, dtype, eps, user, ~suspects)
        if rest.verdict == "fail":
            kinks = describe(suspects)
            suspects, more = decide.localize(rest, x.shape)
            spent += more
            worst, verdict, step = rest, "fail", rest.step
            note = f"beside the kink at {kinks}, the other elements fail"
        elif rest.verdict == "pass":
            e, t = _relative(rest.step)
            note = (f"{note}; " if note else "") + (
                f"the other {int((~suspects).sum())} elements pass alone (relative error {e:.2e} "
                f"<= {t:.2e})"
            )
    if problems:
        verdict = "fail"
    error, tolerance = _relative(step)
    if not step.finite_ok:
        problems.append(
            "the function or its gradient is not finite at the input (or along the step)"
        )
    j_err, j_bound = finite.jacobian_error(
        [(o.a - o.step.numeric) * o.norm for o in runs], [o.step.numeric * o.norm for o in runs]
    )
    n = worst.noise
    return CheckResult(
        name=name,
        shape=tuple(x.shape),
        verdict=verdict,
        error=float(error),
        tolerance=float(tolerance),
        eps=step.h,
        analytic=worst.a,
        numeric=step.numeric,
        input=what,
        dtype=str(np.dtype(dtype)),
        derived=user is None,
        budget=step.budget,
        suspects=suspects,
        problems=problems,
        probes=len(runs),
        jacobian_error=j_err,
        jacobian_bound=j_bound,
        forwards=counter.calls,
        localization_forwards=spent,
        retries=worst.retries,
        note=note,
        noise=n.value,
        noise_model=n.model,
        noise_measured=n.measured,
        noise_source=n.source,
        noise_why=n.why,
        cap=worst.cap,
        slope_jump=step.fit.slope_jump,
        steps=tuple(worst.steps),
        directions=worst.directions,
    )


def check_vjp(
    forward: Callable[..., Any],
    backward: Callable[[Any, Any], Any],
    args: Sequence[Any],
    wrt: int = 0,
    *,
    eps: float | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    dtype: Any = None,
    seed: int = 0,
    probes: int = 1,
    name: str = "",
    kwargs: dict[str, Any] | None = None,
) -> CheckResult:
    """Check ``backward`` against ``forward`` w.r.t. ``args[wrt]`` by the directional test.

    For a random cotangent ``u`` and a random unit direction ``v``, ``⟨backward(u), v⟩`` is compared
    with the finite difference of ``t -> ⟨u, forward(x + t·v)⟩``, extrapolated from steps h, h/2
    and h/4: O(1) evaluations whatever the size of x (17 for a plain pass).

    Parameters
    ----------
    forward : callable
        ``forward(*args, **kwargs) -> out`` or ``(out, cache)``.
    backward : callable
        ``backward(u, cache)`` returns the gradient: an array shaped like ``args[wrt]``, or a tuple
        of gradients indexed by ``wrt``.
    args : sequence
        The forward's positional arguments; float arrays are cast to ``dtype`` (copies).
    wrt : int, default 0
        Index of the float array in ``args`` to check.
    eps : float, optional
        The step along a unit direction, used as given. Default: ``eps_dtype^(1/3)·‖x‖``, retried
        8x shorter on a kink and 8x longer when rounding keeps the check from deciding.
    rtol, atol : float, optional
        Replace the derived tolerance by ``max(atol, rtol·scale)`` (and drop its cap).
    dtype : numpy dtype, default float64
        What the check runs in, end to end (``np.float32`` to check the dtype an engine ships).
    seed : int, default 0
        Seeds ``u`` and ``v``.
    probes : int, default 1
        Number of (u, v) pairs; more of them bound ``‖Ĵ − J‖_F / ‖J‖_F`` (``jacobian_bound``).
    name : str, optional
        Label for the report (default: the forward's ``__name__``).
    kwargs : dict, optional
        Keyword arguments for ``forward``.

    Returns
    -------
    CheckResult
        ``verdict`` "pass", "fail", "kink" or "inconclusive", with the numbers behind it.

    Raises
    ------
    TypeError
        When ``args[wrt]`` is not a float array.

    Examples
    --------
    >>> import numpy as np
    >>> from minivgg.gradcheck import check_vjp
    >>> x = np.array([[0.5, -1.0, 2.0], [1.5, 0.3, -0.7]])
    >>> check_vjp(np.tanh, lambda u, _: u * (1 - np.tanh(x) ** 2), (x,)).verdict
    'pass'
    >>> check_vjp(np.tanh, lambda u, _: -u * (1 - np.tanh(x) ** 2), (x,)).verdict
    'fail'
    >>> relu = lambda x: (np.maximum(x, 0), x > 0)
    >>> check_vjp(relu, lambda u, m: u * m, (np.array([1.0, 1e-13, -2.0]),)).verdict
    'kink'
    """
    dtype = np.dtype(dtype or np.float64)
    kw = dict(kwargs or {})
    cargs = [cast(a, dtype) for a in args]
    x = cargs[wrt]
    if not is_float_array(x):
        raise TypeError(f"check_vjp: args[{wrt}] must be a float array, got {type(x).__name__}")
    label = name or getattr(forward, "__name__", "op")
    fwd = _Counter(lambda *a: _split(forward(*a, **kw)))
    before = [fingerprint(a) for a in cargs]
    x_before = host(x).copy()
    out, cache = fwd(*cargs)
    problems: list[str] = []
    suspects = None
    for i, (b, a) in enumerate(zip(before, cargs)):
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

    out_copy = out_xp.array(out, copy=True)  # before any backward, which might reuse out's memory

    def probe_for(u, g, v_raw, fresh):
        evaluate = lambda p: dot64(u, fwd(*cargs[:wrt], p, *cargs[wrt + 1 :])[0])
        renew = lambda: probe_for(*_cotangent(), *_direction(fresh, x.shape))
        return decide.Probe(
            g, dot64(u, out_copy), evaluate, norm64(to64(u) * to64(out_copy)), v_raw, fresh, renew
        )

    def _cotangent():
        u = out_xp.asarray(rng.standard_normal(np.shape(out_copy)).astype(dtype))
        return u, grad_of(u)

    probes_data = []
    for k in range(max(1, int(probes))):
        u = out_xp.asarray(rng.standard_normal(np.shape(out)).astype(dtype))
        v_raw, fresh = _direction(rng, x.shape)
        if k == 0:
            u_before, cache_before = fingerprint(u), fingerprint(cache)
            u_copy = out_xp.array(u, copy=True)
            g = grad_of(u)
            if fingerprint(u) != u_before:
                problems.append(
                    "the backward changed its cotangent u (work on a copy, or document inplace=)"
                )
            if fingerprint(cache) != cache_before:
                problems.append(
                    "the backward changed the cache (a second backward would see different data)"
                )
            shape_problems = _gradient_problems(g, x, exact_dtype=True)
            problems += shape_problems
            if shape_problems and (
                g is None or not hasattr(g, "shape") or tuple(g.shape) != tuple(x.shape)
            ):
                return CheckResult(
                    name=label,
                    shape=tuple(x.shape),
                    verdict="fail",
                    error=math.inf,
                    input=f"args[{wrt}]",
                    dtype=str(dtype),
                    problems=problems,
                    forwards=fwd.calls,
                )
            g_host = host(g).copy()
            g2 = grad_of(u_copy)
            if g2 is not None and hasattr(g2, "shape") and tuple(g2.shape) == tuple(x.shape):
                diff = changed_elements(g_host, g2)
                if diff.any():
                    problems.append(
                        f"two backward calls with the same u and cache disagree at "
                        f"{int(diff.sum())} elements (max difference "
                        f"{float(np.max(np.abs(to64(g2) - g_host))):.3g})"
                    )
                    suspects = diff if suspects is None else suspects | diff
            g = out_xp.asarray(g_host) if array_module(g) is out_xp else g_host
        else:
            g = grad_of(u)
        probes_data.append(probe_for(u, g, v_raw, fresh))
    return _check(
        label, f"args[{wrt}]", x, probes_data, eps, rtol, atol, dtype, problems, suspects, fwd
    )


def check_grad(
    value_and_grad: Callable[..., tuple[Any, Any]],
    x: Any,
    *,
    eps: float | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    dtype: Any = None,
    seed: int = 0,
    probes: int = 1,
    name: str = "",
    kwargs: dict[str, Any] | None = None,
) -> CheckResult:
    """The same check for a scalar function: ``value_and_grad(x, **kwargs) -> (value, grad)``.

    Compares ``⟨grad, v⟩`` with the finite difference of the value along unit directions ``v``;
    the gradient may be more precise than x (a float32 network behind a float64 boundary is fine).

    Parameters
    ----------
    value_and_grad : callable
        ``value_and_grad(x, **kwargs) -> (value, grad)``, value a scalar, grad shaped like x.
    x : array
        The point (a float NumPy or CuPy array; cast to ``dtype``, a copy).
    eps, rtol, atol, dtype, seed, probes, name, kwargs
        As for ``check_vjp``.

    Returns
    -------
    CheckResult
        With ``input == "x"``.

    Raises
    ------
    TypeError
        When ``x`` is not a float array.

    Examples
    --------
    >>> import numpy as np
    >>> from minivgg.gradcheck import check_grad
    >>> f = lambda x: (float(np.sum(np.sin(x))), np.cos(x))
    >>> res = check_grad(f, np.linspace(0.0, 3.0, 7))
    >>> res.verdict, res.forwards
    ('pass', 18)
    >>> wrong = lambda x: (float(np.sum(np.sin(x))), 1.01 * np.cos(x))  # 1 % off
    >>> check_grad(wrong, np.linspace(0.0, 3.0, 7)).verdict
    'fail'
    """
    dtype = np.dtype(dtype or np.float64)
    kw = dict(kwargs or {})
    x = cast(x, dtype)
    if not is_float_array(x):
        raise TypeError(f"check_grad: x must be a float array, got {type(x).__name__}")
    fn = _Counter(lambda p: value_and_grad(p, **kw))
    x_before = host(x).copy()
    f0, g = fn(x)
    problems: list[str] = []
    suspects = None
    if fingerprint(x) != fingerprint(x_before):
        problems.append("the function changed its input x")
        suspects = changed_elements(x_before, x)
    x = array_module(x).asarray(x_before)
    problems += _gradient_problems(g, x, exact_dtype=False)
    if g is None or not hasattr(g, "shape") or tuple(g.shape) != tuple(x.shape):
        return CheckResult(
            name=name or "function",
            shape=tuple(x.shape),
            verdict="fail",
            error=math.inf,
            input="x",
            dtype=str(dtype),
            problems=problems,
            forwards=fn.calls,
        )
    g_host = host(g).copy()
    f0b, g2 = fn(array_module(x).array(x_before, copy=True))
    value_moved = changed_elements(
        np.asarray(f0, dtype=np.float64), np.asarray(f0b, dtype=np.float64)
    ).any()
    if value_moved or (hasattr(g2, "shape") and changed_elements(g_host, g2).any()):
        problems.append("two calls at the same x disagree (value or gradient)")
    rng = np.random.default_rng(seed)
    probes_data = [
        decide.Probe(g, float(f0), lambda p: float(fn(p)[0]), 0.0, *_direction(rng, x.shape))
        for _ in range(max(1, int(probes)))
    ]
    return _check(
        name or "function", "x", x, probes_data, eps, rtol, atol, dtype, problems, suspects, fn
    )
