"""Coarse to fine: the sizes and iterations of each scale of a run, and how each scale is weighted.

``--scales 256,362,512`` lists the longest side of every scale (the last is the output's);
``--min-scale S`` makes √2 steps from S up to ``--size`` (crowsonkb's schedule). ``--iters`` is one
value for every scale or one per scale. Each scale starts from the previous result resized
(bicubic) and re-targets content and style at its own size.

The default route (no ``--scales``, ``--min-scale``, ``--iters`` or ``--single-scale``): the preset's
``coarse`` scales (divisors of the output's side, each kept only when its side is at least
``MIN_COARSE_SIDE``) with their ``coarse_iters``, then the output's scale with the preset's ``iters``
and its convergence stop (``default_route``).

Weighting: with sum-type content norms (``gatys``' ½Σ(F−P)², ``sum``) the content term grows with the
pixel count while the style term (normalised by M²) does not, so a coarse scale would be nearly
all style. ``content_scale`` multiplies the content weight of a scale of longest side s by
(S/s)², S the output's: every scale then keeps the output scale's content/style balance.
"""

from __future__ import annotations

import math

from ..errors import UserError

SUM_NORMS = ("half_sum", "sum")


def _positive_ints(values, flag):
    out = []
    for v in values:
        if (
            isinstance(v, bool)
            or not isinstance(v, (int, float))
            or not math.isfinite(v)
            or v < 1
            or v != int(v)
        ):
            raise UserError(f"{flag} must be a positive number (a whole one), got {v!r}")
        out.append(int(v))
    return out


def scale_sizes(size: int, scales=None, min_scale=None) -> list[int]:
    """The longest side of every scale, coarse to fine; ``[size]`` for a single-scale run."""
    if scales is not None and min_scale is not None:
        raise UserError("--scales and --min-scale are two ways to give the scales; choose one")
    if scales is not None:
        sizes = _positive_ints(
            list(scales) if isinstance(scales, (list, tuple)) else [scales], "--scales"
        )
        if not sizes:
            raise UserError("--scales needs at least one size")
        return sizes
    if min_scale is not None:
        (low,) = _positive_ints([min_scale], "--min-scale")
        if low > size:
            raise UserError(f"--min-scale {low} is larger than --size {size}")
        sizes, s = [], float(low)
        while round(s) < size:
            sizes.append(round(s))
            s *= math.sqrt(2)
        return sizes + [size]
    return [size]


def scale_iters(iters, default: int, n: int) -> list[int]:
    """Iterations per scale: one value for all (``default`` when None) or one per scale."""
    if iters is None:
        return [default] * n
    values = list(iters) if isinstance(iters, (list, tuple)) else [iters]
    values = _positive_ints(values, "--iters")
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise UserError(
            f"--iters has {len(values)} values for {n} scales; give one, or one per scale"
        )
    return values


def content_scale(content_norm: str, side: int, final_side: int) -> float:
    """The content-weight factor of a scale of longest side ``side`` (see the module docstring)."""
    return (final_side / side) ** 2 if content_norm in SUM_NORMS else 1.0


MIN_COARSE_SIDE = 64  # a coarse scale smaller than this is dropped from the default route


def default_route(size: int, coarse=(), coarse_iters=(), iters: int = 500):
    """The default route's ``(sizes, iters)`` for an output of longest side ``size``.

    >>> default_route(512, coarse=(4, 2), coarse_iters=(100, 50), iters=500)
    ([128, 256, 512], [100, 50, 500])
    >>> default_route(200, coarse=(4, 2), coarse_iters=(100, 50), iters=500)  # 50 px: too small
    ([100, 200], [50, 500])
    >>> default_route(100, coarse=(4, 2), coarse_iters=(100, 50))
    ([100], [500])
    """
    kept = [
        (round(size / d), n)
        for d, n in zip(coarse, coarse_iters)
        if MIN_COARSE_SIDE <= round(size / d) < size
    ]
    return [side for side, _ in kept] + [size], [n for _, n in kept] + [iters]
