"""One probe's decision: the steps tried along a direction, what each step can prove, and the
localisation of a failure or a kink.

A step supports "pass" only when its stencil shows no kink, the noise behind its tolerance is
trusted (``noise.py``) and the tolerance could exclude a gross error: at most the dtype's cap
relative to ``max(|⟨g, v⟩|, |numeric|)`` (``finite.tolerance_cap``) or, at a stationary point, pure
machine rounding under the cap relative to the slope's change across the step. It supports "fail"
when the gap exceeds the budget built from the largest noise estimate, "kink" when the one-sided
slopes disagree, else nothing ("undecided"). The automatic step retries 8x shorter on a kink
(while rounding stays under the cap) and to confirm a failure, 8x longer when undecided; then a
fresh direction. A failure is confirmed along one more fresh direction (and cotangent), where
kinks whose jumps cancel along the first show. A check still undecided is "kink" where some step
showed one, else "inconclusive".
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from . import finite
from .arrays import to64
from .localize import bisect
from .noise import NOISE_STEP, Noise, grain, probe_noise

# the backward's own rounding: this many machine epsilons of |⟨g, v⟩| + ‖g ⊙ v‖
ANALYTIC_ROUNDING = 4.0
# a block holding this share of its parent's gap is followed even below the threshold
SPREAD_SHARE = 0.25
PARTITIONS = 2  # a failure's direction is cut into random quarters this many times
NEW_DIRECTIONS = 1  # an undecided probe tries this many fresh directions before "inconclusive"
RANK = {"pass": 0, "undecided": 1, "inconclusive": 1, "kink": 2, "fail": 3}


@dataclasses.dataclass
class Probe:
    """One cotangent's data: the analytic gradient, f along a line, and the directions to try."""

    g: Any
    f0: float
    evaluate: Callable[[Any], float]  # point -> f(point) (⟨u, forward(point)⟩ for a VJP)
    fscale: float  # ‖u ⊙ out‖ (the rounding of the outputs), 0 for a scalar f
    v_raw: np.ndarray  # the first direction (raw Gaussian)
    rng: np.random.Generator  # fresh directions, drawn in a fixed order: reproducible
    renew: Callable[[], Probe] | None = None  # a probe with a fresh cotangent (VJPs only)

    def fresh(self) -> np.ndarray:
        return self.rng.standard_normal(self.v_raw.shape)


@dataclasses.dataclass
class Step:
    """What one step h proves: the numbers, the budget, the verdict it supports."""

    h: float
    fit: finite.LineFit
    numeric: float
    gap: float
    scale: float
    tol: float
    tol_upper: float
    total: float
    budget: dict
    kinked: bool
    verdict: str
    finite_ok: bool


@dataclasses.dataclass
class Outcome:
    """A probe's verdict with the step it rests on and what it cost."""

    verdict: str
    step: Step
    a: float
    noise: Noise
    steps: list
    retries: int
    directions: int
    kink_step: Step | None
    line_along: Callable[[np.ndarray], Callable[[float], float]]
    v64: np.ndarray
    g64: np.ndarray
    eps_m: float
    norm: float
    cap: float
    probe: Probe
    v_raw: np.ndarray
    blocked: bool  # a kink that rounding kept from a shorter step: another direction may decide
    note: str = ""


def run_probe(
    p: Probe,
    x64: np.ndarray,
    xp: Any,
    dtype: Any,
    eps: float | None,
    user_tol: Callable[[float], float] | None,
) -> Outcome:
    """Decide along the probe's first direction; an undecided one, or a kink that rounding kept
    from a shorter step, tries ``NEW_DIRECTIONS`` fresh ones (where ⟨g, v⟩ may be larger); a
    failure is confirmed along yet another (``confirm``)."""
    kept = None
    for k in range(1 + NEW_DIRECTIONS):
        out = along(p, p.v_raw if k == 0 else p.fresh(), x64, xp, dtype, eps, user_tol)
        out.directions = k + 1
        if out.verdict == "fail":
            return confirm(out, x64, xp, dtype, eps, user_tol)
        if out.verdict == "pass" or (out.verdict == "kink" and not out.blocked):
            return out
        if kept is None or RANK[out.verdict] > RANK[kept.verdict]:
            kept = out
    assert kept is not None
    kept.directions = 1 + NEW_DIRECTIONS
    if kept.verdict == "undecided":
        kept.verdict = "inconclusive"
    return kept


def confirm(
    o: Outcome,
    x64: np.ndarray,
    xp: Any,
    dtype: Any,
    eps: float | None,
    user_tol: Callable[[float], float] | None,
    mask: np.ndarray | None = None,
) -> Outcome:
    """A failure along one direction may be kinks at x whose jumps cancel along it (near-ties
    straddled by every step that rounding allows): the direction's parts, a fresh direction (cut
    to ``mask``) and, for a VJP, a fresh cotangent, along which they do not cancel, tell. The
    failure stands unless one shows a kink (then "kink") or the fresh direction passes (the two
    contradict: "inconclusive")."""
    if not o.step.finite_ok:
        return o
    if _kinks_in_parts(o, x64.shape):
        o.verdict, o.kink_step = "kink", o.step
        o.note = "kinks at x whose jumps cancel along this direction show along its parts"
        return o
    p = o.probe.renew() if o.probe.renew is not None else o.probe  # a fresh u, too: jumps u·Δv
    v_raw = p.fresh() if mask is None else p.fresh() * mask
    other = along(p, v_raw, x64, xp, dtype, eps, user_tol)
    if other.verdict == "kink":
        other.directions = o.directions + 1
        other.note = (
            "a first direction failed, but another shows a kink: kinks at x whose jumps "
            "cancel along the first; " + other.note
        )
        return other
    o.directions += 1
    if other.verdict == "pass":
        o.verdict = "inconclusive"
        o.note = (
            "one direction fails, another passes: kinks at x whose jumps cancel along the "
            "first, or a fault the second cannot see"
        )
    return o


def _kinks_in_parts(o: Outcome, shape: tuple) -> bool:
    """Whether the direction cut into random quarters (twice: 48 evaluations) shows a kink that
    the whole direction hides: two kinks whose jumps cancel fall in one quarter once in 16. Eight
    tests at twice the usual threshold: a smooth function's rounding does not pass for one."""
    h, f0, noise = o.step.h, o.step.fit.f0, o.noise.value
    for _ in range(PARTITIONS):
        quarter = o.probe.rng.integers(0, 4, size=shape)
        for q in range(4):
            fit = finite.fit_line(o.line_along(o.v64 * (quarter == q)), h, f0)
            if fit.kinked(noise, 2 * finite.SAFETY):
                return True
    return False


def along(
    p: Probe,
    v_raw: np.ndarray,
    x64: np.ndarray,
    xp: Any,
    dtype: Any,
    eps: float | None,
    user_tol: Callable[[float], float] | None,
) -> Outcome:
    """The noise probe, the steps and the verdict along one raw direction (normalised here)."""
    eps_m = float(np.finfo(dtype).eps)
    norm = float(np.sqrt(np.sum(v_raw**2)))
    v64 = v_raw / norm
    g64 = to64(p.g)
    a = float(np.sum(g64 * v64))
    an_err = eps_m * ANALYTIC_ROUNDING * (abs(a) + float(np.sqrt(np.sum((g64 * v64) ** 2))))
    norm_gx = float(np.sqrt(np.sum((g64 * x64) ** 2)))
    cap = finite.tolerance_cap(dtype)
    tight = math.sqrt(eps_m)  # a pass looser than this (relative) tries a longer step

    def line_along(direction):
        return lambda t: p.evaluate(xp.asarray((x64 + t * direction).astype(dtype)))

    line = line_along(v64)
    h0 = float(eps) if eps is not None else finite.auto_step(x64, eps_m)
    model = eps_m / 2 * (abs(p.f0) + h0 * abs(a) + p.fscale + norm_gx)
    noise = probe_noise(line, h0 * NOISE_STEP, model, grain(x64, eps_m))

    def assess(h: float) -> Step:
        fit = finite.fit_line(line, h, p.f0)
        numeric = fit.numeric
        gap, scale = abs(a - numeric), max(abs(a), abs(numeric))
        trunc = fit.truncation
        total = fit.rounding(noise.value) + trunc + an_err
        budget = {
            "rounding": fit.rounding(noise.value),
            "truncation": trunc,
            "analytic": an_err,
            "multiple": finite.SAFETY,
        }
        if user_tol is None:
            tol = finite.SAFETY * total
            tol_upper = finite.SAFETY * (fit.rounding(noise.upper) + trunc + an_err)
            floor = finite.SAFETY * (fit.rounding(noise.model) + an_err)
            # at a stationary point (both values within the tolerance of 0) the scale is how much
            # the slope changes across the step, and the tolerance must be pure machine rounding
            stationary = (
                scale <= tol <= finite.ABSOLUTE_FLOOR * floor
                and tol <= cap * fit.curvature(noise.value)
            )
            decisive = noise.trusted and (tol <= cap * scale or stationary)
        else:
            tol = tol_upper = user_tol(scale)
            decisive = True
        finite_ok = math.isfinite(numeric) and math.isfinite(a)
        kinked = finite_ok and fit.kinked(noise.value)
        if not finite_ok:
            verdict = "fail"
        elif kinked:
            verdict = "kink"
        elif gap <= tol:
            verdict = "pass" if decisive else "undecided"
        else:
            verdict = "fail" if gap > tol_upper else "undecided"
        return Step(
            h, fit, numeric, gap, scale, tol, tol_upper, total, budget, kinked, verdict, finite_ok
        )

    def rounding_allows(h: float, scale: float) -> bool:
        # a shorter step is worth its evaluations only while rounding alone stays under the cap
        if user_tol is not None or scale == 0:
            return True
        return (
            finite.SAFETY * (finite.EXTRAPOLATION_NOISE * noise.value / h + an_err) <= cap * scale
        )

    r = assess(h0)
    steps, retries, note, blocked = [r], 0, "", False
    if eps is None:
        confirmed = False
        while r.verdict in ("kink", "fail") and retries < finite.RETRIES:
            h = r.h / finite.RETRY_FACTOR
            if not rounding_allows(h, r.scale):
                blocked = True
                break
            s = assess(h)
            steps.append(s)
            retries += 1
            # a failure stands when a shorter step finds the same finite difference; when it moves
            # beyond both budgets, f was not smooth at the longer step and the shorter one decides
            if r.verdict == "fail" and abs(s.numeric - r.numeric) <= finite.SAFETY * (
                r.total + s.total
            ):
                confirmed = True
                break
            r = s
        if r.verdict == "fail" and not confirmed and r.finite_ok:
            # unconfirmed: a kink below the detection threshold may hide in the step; only a gap
            # beyond what it could explain stands
            hidden = r.fit.hidden_kink(noise.upper)
            if r.gap <= r.tol_upper + finite.SAFETY * hidden:
                r = dataclasses.replace(r, verdict="undecided")
        for _ in range(finite.LONGER_STEPS if r.verdict == "undecided" and not r.kinked else 0):
            s = assess(r.h * finite.RETRY_FACTOR)  # rounding-bound: a longer step proves more
            steps.append(s)
            if s.kinked or s.tol >= r.tol:
                break
            r = s
            if r.verdict != "undecided":
                break
        if (
            r.verdict == "pass"
            and retries == 0
            and user_tol is None
            and r.tol > tight * r.scale
            and r.fit.rounding(noise.value) > finite.SAFETY * r.fit.truncation
        ):
            # a loose, rounding-bound pass: one step 8x longer proves more (a failure there stands
            # when this step's finite difference agrees with it)
            s = assess(r.h * finite.RETRY_FACTOR)
            steps.append(s)
            agree = abs(s.numeric - r.numeric) <= finite.SAFETY * (r.total + s.total)
            if (s.verdict == "pass" and s.tol < r.tol) or (s.verdict == "fail" and agree):
                r = s
    kinks = [s for s in steps if s.kinked]
    verdict = r.verdict
    if verdict == "undecided" and kinks:
        verdict = "kink"
    if verdict == "kink" and eps is None:
        blocked = blocked or not r.kinked
        note = (
            f"kinks inside every step that could decide, down to {kinks[-1].h:.3g}; a shorter step "
            f"would leave rounding above the cap"
            if r.kinked
            else f"a kink inside the steps down to {kinks[-1].h:.3g}, and no shorter one can decide"
        )
    elif verdict == "undecided":
        note = (
            f"the tolerance stays above the cap {cap:g} at every step tried (rounding- or "
            f"truncation-bound, or <backward(u), v> near 0 by chance)"
            if noise.trusted
            else f"the noise could not be trusted ({noise.source})"
        )
    kink_step = kinks[-1] if verdict == "kink" and kinks else None
    return Outcome(
        verdict,
        r,
        a,
        noise,
        [s.h for s in steps],
        retries,
        1,
        kink_step,
        line_along,
        v64,
        g64,
        eps_m,
        norm,
        cap,
        p,
        v_raw,
        blocked,
        note,
    )


def localize(o: Outcome, shape: tuple) -> tuple[np.ndarray, int]:
    """Suspects of a failing or kinked outcome (see ``localize.bisect``) and the evaluations spent.
    A block is re-tested along ``v ⊙ mask``: the same t moves each of its elements as far as
    before."""
    g64, v64, noise = o.g64, o.v64, o.noise.value
    r = o.kink_step or o.step
    h, f0 = r.h, r.fit.f0
    if o.verdict == "kink":

        def split_kink(_, ml, mr):
            return (
                finite.kinked_at(o.line_along(v64 * ml), h, f0, noise),
                finite.kinked_at(o.line_along(v64 * mr), h, f0, noise),
                12,
            )

        return bisect(shape, True, split_kink, bool)
    central_error = abs(r.fit.differences[0] - r.numeric)

    def threshold(vb, ab):
        an = o.eps_m * ANALYTIC_ROUNDING * (abs(ab) + float(np.sqrt(np.sum((g64 * vb) ** 2))))
        return finite.SAFETY * (noise / h + 2 * central_error + an)

    def split(parent, ml, mr):
        a_p, n_p, t_p, _ = parent
        vl = v64 * ml
        a_l = float(np.sum(g64 * vl))
        n_l = finite.central(o.line_along(vl), h)
        t_l = threshold(vl, a_l)
        gap_p = abs(
            a_p - n_p
        )  # the right half is the parent minus the left: no evaluations of its own
        return (a_l, n_l, t_l, gap_p), (a_p - a_l, n_p - n_l, t_p + t_l, gap_p), 2

    def bad(state):
        # fails alone, or carries a good share of its parent's gap (a fault spread over both halves)
        a, n, t, gap_parent = state
        gap = abs(a - n)
        return gap > t or (gap > SPREAD_SHARE * gap_parent and gap > t / 4)

    root = (o.a, r.numeric, min(r.tol, threshold(v64, o.a)) if r.finite_ok else 0.0, 0.0)
    return bisect(shape, root, split, bad)
