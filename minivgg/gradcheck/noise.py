"""The rounding noise of one evaluation of ``φ(t) = f(x + t·v)``, measured where a kink cannot
pose as it.

Five points on each side, ``d … 5d`` and ``−d … −5d`` (``d = h/1024``), and the six second
differences ``φ(t + d) − 2φ(t) + φ(t − d)`` within each side: pure rounding (standard deviation
√6·σ) for a smooth φ; curvature adds about the same ``φ''·d²`` to each, removed with their
median. No stencil reaches ``(−d, d)``, so a kink closer to x than d (a tie, or the inputs a check
is most likely to meet) cannot touch them: one that close would move the second differences
through 0 by ``jump × distance``, whatever d, and pass for rounding. A kink inside ``(d, 5d)``
moves at most two of them, so the estimate drops the largest. Several kinks there move them all,
and then the probe's own points show what rounding never does: their share changes with the
spacing, while rounding does not depend on it. So a measurement above ``VERIFY`` times the
machine-epsilon model is measured again on grids 8x shorter (8x longer, once, where x's ulps
leave no room): rounding holds steady (two spacings agree within ``AGREE``), a kink's share
shrinks with the spacing until the grid no longer reaches it. A grid whose points f no longer
tells apart (a staircase) ends the descent. ``Noise`` says which noise the budgets use and why.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

NOISE_STEP = 1.0 / 1024  # the grid's spacing, in units of the step h
GRID = (1, 2, 3, 4, 5)  # the grid's points: ±d … ±5d (ten evaluations)
DROP = 1  # the largest second difference (a kink's) is left out of the estimate
ROBUST_MEDIAN = 0.666  # median of the trimmed estimate for unit white noise (simulated, 4e5 draws)
# a reading is below the true noise in half the draws, 2x below in one of ten; the budgets and the
# kink thresholds take the reading up to its 10 % quantile (one reading: x1.93; the mean of two
# verified ones: x1.5), so that they err high, as they should (a noise read low takes a linear
# function's rounding for kinks and its tolerance for a failure)
SINGLE_MARGIN = 1.93
PAIR_MARGIN = 1.5
VERIFY = 4.0  # a measurement up to this multiple of the model is used without checking
AGREE = 3.0  # two spacings 8x apart agreeing within this factor: rounding
LEVEL_FACTOR = 8.0
LEVELS = 6  # at most this many more grids (shorter, or one longer)
GRAIN = 16.0  # a grid's points stay this many of x's ulps apart (d ≥ GRAIN·eps·‖x‖)
RATIO_MAX = 1e3  # rounding verified at more than this multiple of the model: undecided


@dataclasses.dataclass
class Noise:
    """The noise of one evaluation of φ: ``value`` (what the budgets and the kink test use),
    ``upper`` (the largest estimate: what a failure must exceed), ``trusted`` (whether a pass may
    rest on it), ``source`` ("model", "measured", "verified", "unverified" or "implausible"),
    ``why`` (one sentence) and the evaluations spent."""

    model: float
    measured: float
    value: float
    upper: float
    trusted: bool
    source: str
    why: str
    spacings: tuple
    forwards: int


def grid_noise(line: Callable[[float], float], d: float) -> tuple[float, bool]:
    """The trimmed RMS of the grid's centred second differences, as one evaluation's σ (median-
    unbiased), and whether
    two of its points gave the same value (the spacing is below what f resolves: a staircase)."""
    sides = [np.array([line(sign * k * d) for k in GRID]) for sign in (1.0, -1.0)]
    d2 = np.concatenate([y[2:] - 2 * y[1:-1] + y[:-2] for y in sides])
    r = np.sort(np.abs(d2 - np.median(d2)))[: len(d2) - DROP]
    values = np.concatenate(sides)
    return float(np.sqrt(np.mean(r**2) / 6) / ROBUST_MEDIAN), len(np.unique(values)) < len(values)


def probe_noise(
    line: Callable[[float], float], d: float, model: float, floor: float = 0.0
) -> Noise:
    """Measure the noise at spacing ``d``, checked against ``model`` and, when well above it,
    against the step-halving behaviour of rounding on grids 8x shorter (never below ``floor``)."""
    est, _ = grid_noise(line, d)
    levels = [(d, est)]

    def done(value, upper, trusted, source, why):
        return Noise(
            model,
            est,
            max(model, value),
            max(model, upper),
            trusted,
            source,
            why,
            tuple(s for s, _ in levels),
            2 * len(GRID) * len(levels),
        )

    if est <= VERIFY * model:
        src = "model" if est * SINGLE_MARGIN <= model else "measured"
        return done(
            est * SINGLE_MARGIN,
            est * SINGLE_MARGIN,
            True,
            src,
            f"the probe (spacing {d:.3g}) reads {_x(est, model)} the machine-epsilon model, "
            f"{_x(est * SINGLE_MARGIN, model)} with a single reading's margin: "
            f"{'the model' if src == 'model' else 'the measurement'} is used",
        )
    prev_d, prev, agreed = d, est, False
    while len(levels) <= LEVELS:
        if prev_d / LEVEL_FACTOR >= floor:
            nd = prev_d / LEVEL_FACTOR
        elif len(levels) == 1:
            nd = d * LEVEL_FACTOR
        else:
            break
        e, collapsed = grid_noise(line, nd)
        if collapsed:  # points that f no longer tells apart: no reading of rounding there
            break
        levels.append((nd, e))
        trail = _trail(levels, model)
        if nd < prev_d and e <= VERIFY * model:
            src = "model" if e * SINGLE_MARGIN <= model else "measured"
            return done(
                e * SINGLE_MARGIN,
                e * SINGLE_MARGIN,
                True,
                src,
                f"the probe shrank with its spacing ({trail}): a kink near x, not rounding; the "
                f"{'model' if src == 'model' else 'last reading (with its margin)'} is used",
            )
        agreed = prev / AGREE <= e <= prev * AGREE
        if agreed and (e + prev) / 2 <= RATIO_MAX * model:
            return done(
                (e + prev) / 2 * PAIR_MARGIN,
                max(e, prev) * PAIR_MARGIN,
                True,
                "verified",
                f"the probe read {trail}, steady across spacings 8x apart: rounding",
            )
        if nd > prev_d:
            break
        # far above the model: kinks at the scale of two spacings can agree by chance, so go on
        prev_d, prev = nd, e
    trail = _trail(levels, model)
    low, high = min(v for _, v in levels), max(v for _, v in levels)
    if agreed:
        return done(
            (levels[-1][1] + levels[-2][1]) / 2,
            high,
            False,
            "implausible",
            f"rounding verified ({trail}), beyond {RATIO_MAX:g}x the model: no pass can rest on "
            f"it (give rtol/atol)",
        )
    return done(
        low,
        high,
        False,
        "unverified",
        f"the probe read {trail}, changing with its spacing like a kink's share, not rounding: "
        f"the check may fail or find a kink but cannot pass",
    )


def grain(x64: np.ndarray, eps_machine: float) -> float:
    """The shortest grid spacing whose points stay ``GRAIN`` ulps of x apart."""
    return GRAIN * eps_machine * math.sqrt(float(np.sum(np.square(x64))))


def _x(value: float, model: float) -> str:
    return f"{value / model:.2g}x" if model > 0 else f"{value:.2g}"


def _trail(levels: list, model: float) -> str:
    values = ", ".join(_x(v, model) for _, v in levels)
    return f"{values} the model at spacings {', '.join(f'{s:.2g}' for s, _ in levels)}"
