"""The pytest forms ``assert_vjp`` / ``assert_grad``: ``check_vjp`` / ``check_grad`` that raise the
report unless the verdict is "pass" or one the caller allows explicitly (``allow="kink"``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .core import check_grad, check_vjp
from .result import VERDICTS, CheckResult


def _allowed(allow: str | Iterable[str] | None) -> set[str]:
    """The verdicts besides "pass" that an assert form accepts."""
    names = {allow} if isinstance(allow, str) else set(allow or ())
    bad = names - {"kink", "inconclusive"}
    if bad:
        raise ValueError(
            f"allow= takes 'kink' and/or 'inconclusive', not {sorted(bad)} "
            f"(verdicts: {', '.join(VERDICTS)})"
        )
    return names


def _raise_unless(res: CheckResult, allow: set[str]) -> CheckResult:
    __tracebackhide__ = True
    if not res.passed and res.verdict not in allow:
        raise AssertionError(res.report())
    return res


def assert_vjp(
    forward: Callable[..., Any],
    backward: Callable[[Any, Any], Any],
    args: Sequence[Any],
    wrt: int = 0,
    *,
    allow: str | Iterable[str] | None = None,
    **kwargs: Any,
) -> CheckResult:
    """``check_vjp`` for test suites: raise the report unless the verdict is "pass".

    Parameters
    ----------
    forward, backward, args, wrt
        As for ``check_vjp``.
    allow : {"kink", "inconclusive"} or a collection of them, optional
        Verdicts accepted besides "pass" (say so only where a test is about kinks: a kink or an
        undecided check proves nothing about the gradient).
    **kwargs
        ``check_vjp``'s keyword arguments (eps, rtol, atol, dtype, seed, probes, name, kwargs).

    Returns
    -------
    CheckResult
        The result, when its verdict is "pass" or allowed.

    Raises
    ------
    AssertionError
        With ``CheckResult.report()`` as its message, for any other verdict.
    ValueError
        When ``allow`` names something other than "kink" or "inconclusive".

    Examples
    --------
    >>> import numpy as np
    >>> from minivgg.gradcheck import assert_vjp
    >>> relu = lambda x: (np.maximum(x, 0), x > 0)
    >>> x = np.array([1.0, 1e-13, -2.0])
    >>> assert_vjp(relu, lambda u, m: u * m, (x,), allow="kink").verdict
    'kink'
    >>> assert_vjp(relu, lambda u, m: u * m, (x,))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    AssertionError: gradient check <lambda> w.r.t. args[0] (3,) in float64: KINK (not ...
    ...
    """
    __tracebackhide__ = True
    allowed = _allowed(allow)
    return _raise_unless(check_vjp(forward, backward, args, wrt, **kwargs), allowed)


def assert_grad(
    value_and_grad: Callable[..., tuple[Any, Any]],
    x: Any,
    *,
    allow: str | Iterable[str] | None = None,
    **kwargs: Any,
) -> CheckResult:
    """``check_grad`` for test suites: raise the report unless the verdict is "pass".

    Parameters
    ----------
    value_and_grad, x
        As for ``check_grad``.
    allow : {"kink", "inconclusive"} or a collection of them, optional
        Verdicts accepted besides "pass".
    **kwargs
        ``check_grad``'s keyword arguments.

    Returns
    -------
    CheckResult
        The result, when its verdict is "pass" or allowed.

    Raises
    ------
    AssertionError
        With ``CheckResult.report()`` as its message, for any other verdict.
    ValueError
        When ``allow`` names something other than "kink" or "inconclusive".

    Examples
    --------
    >>> import numpy as np
    >>> from minivgg.gradcheck import assert_grad
    >>> assert_grad(lambda x: (float(x @ x), 2 * x), np.array([1.0, -2.0])).passed
    True
    >>> assert_grad(lambda x: (float(x @ x), x), np.array([1.0, -2.0]))
    Traceback (most recent call last):
    ...
    AssertionError: gradient check function w.r.t. x (2,) in float64: FAIL
    ...
    """
    __tracebackhide__ = True
    allowed = _allowed(allow)
    return _raise_unless(check_grad(value_and_grad, x, **kwargs), allowed)
