"""Finite differences along one line ``t -> φ(t) = f(x + t·v)`` (‖v‖ = 1), and what they prove.

``fit_line`` evaluates φ at ±h, ±h/2 and ±h/4. The central differences ``D(h)``, ``D(h/2)``,
``D(h/4)`` give two Richardson values ``R₁ = (4·D(h/2) − D(h))/3`` and
``R₂ = (4·D(h/4) − D(h/2))/3`` whose errors are O(h⁴) and 16:1, so ``R₁ − R₂ ≈ 15·error(R₂)``:
the value returned is the second
extrapolation ``(16·R₂ − R₁)/15`` (error O(h⁶)) and its truncation budget ``|R₁ − R₂|/15``, the
size of the h⁴ term it removed. The seven points also give the one-sided slopes at two scales: the
fourth differences on spacings h/2 and h/4 are O(h⁴) for a smooth φ and O(jump·h) when a kink lies
inside the step; each alone is blind to one kink position (h/3 and h/6), together to none.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import numpy as np

SAFETY = 4.0  # a gap passes when within this multiple of the error budget
# (64·D(h/4) − 20·D(h/2) + D(h))/45 turns evaluation noise σ into 4.07σ/h, and the two fourth
# differences (weights 1, −4, 6, −4, 1 over 2·spacing) into these σ/h
EXTRAPOLATION_NOISE = 4.07
JUMP_NOISE = (math.sqrt(70.0), 2 * math.sqrt(70.0))
RETRY_FACTOR = 8.0  # shorter steps on a kink (h/8, h/64, …), longer ones when rounding-bound
RETRIES = 8  # at most this many shorter steps (fewer when rounding would exceed the cap)
LONGER_STEPS = 2  # an undecided, rounding-bound check tries at most 2 steps 8x longer
CAPS = {"float64": 1e-3, "float32": 1e-1}  # the largest relative tolerance a "pass" may carry
ABSOLUTE_FLOOR = 4.0  # ... or, at a stationary point, within this multiple of pure machine rounding

Line = Callable[[float], float]


def auto_step(x64: np.ndarray, eps_machine: float) -> float:
    """The automatic step along a unit direction: ``eps^(1/3) · ‖x‖`` (every element moves by about
    ``eps^(1/3) · rms(x)``, the balance of truncation and rounding), ``eps^(1/3) · √n`` when x
    is 0."""
    scale = float(np.sqrt(np.sum(np.square(x64))))
    return eps_machine ** (1 / 3) * (scale if scale > 0 else math.sqrt(max(x64.size, 1)))


def tolerance_cap(dtype) -> float:
    """The relative tolerance above which a check cannot pass: a pass at tolerance τ bounds the
    error by about 3τ (τ plus what a kink below the detection threshold can hide), so float64's
    1e-3 keeps a 1 % error from ever passing; float32's 1e-1 still excludes sign errors, factors
    and missing terms, while float32 differences through a deep network resolve no better."""
    name = np.dtype(dtype).name
    return CAPS.get(name, CAPS["float32"])


@dataclasses.dataclass
class LineFit:
    """The evaluations along one line at step ``h`` and what they say about ``φ'(0)``."""

    h: float
    f0: float
    values: dict  # t -> φ(t) at ±h, ±h/2, ±h/4

    def _d(self, t: float) -> float:
        return (self.values[t] - self.values[-t]) / (2 * t)

    @property
    def differences(self) -> tuple[float, float, float]:
        """``D(h), D(h/2), D(h/4)``."""
        return self._d(self.h), self._d(self.h / 2), self._d(self.h / 4)

    @property
    def richardson(self) -> tuple[float, float]:
        """``R₁`` (steps h, h/2) and ``R₂`` (h/2, h/4): each O(h⁴)-accurate."""
        d1, d2, d3 = self.differences
        return (4 * d2 - d1) / 3, (4 * d3 - d2) / 3

    @property
    def numeric(self) -> float:
        """The second extrapolation ``(16·R₂ − R₁)/15``: the h² and h⁴ terms cancel."""
        r1, r2 = self.richardson
        return (16 * r2 - r1) / 15

    @property
    def truncation(self) -> float:
        """``|R₁ − R₂| / 15``: the h⁴ error of R₂, an upper estimate of the value's h⁶ error."""
        r1, r2 = self.richardson
        return abs(r1 - r2) / 15

    def rounding(self, noise: float) -> float:
        """Rounding of the value (one standard deviation) for evaluation noise ``noise``."""
        return EXTRAPOLATION_NOISE * noise / self.h

    @property
    def slope_jumps(self) -> tuple[float, float]:
        """``|right − left one-sided slope|`` on spacings h/2 and h/4 (``|Δ⁴φ| / (2·spacing)``)."""
        v, h, f0 = self.values, self.h, self.f0
        j1 = abs(v[h] - 4 * v[h / 2] + 6 * f0 - 4 * v[-h / 2] + v[-h]) / h
        j2 = abs(v[h / 2] - 4 * v[h / 4] + 6 * f0 - 4 * v[-h / 4] + v[-h / 2]) / (h / 2)
        return j1, j2

    @property
    def slope_jump(self) -> float:
        return max(self.slope_jumps)

    def kinked(self, noise: float, multiple: float = SAFETY) -> bool:
        """Either scale's one-sided slopes disagree by more than ``multiple`` standard deviations
        of their rounding: a kink inside the step (or, at a long step, a large 4th derivative)."""
        return any(j > multiple * m * noise / self.h for j, m in zip(self.slope_jumps, JUMP_NOISE))

    def curvature(self, noise: float) -> float:
        """``|φ(h) − 2φ(0) + φ(−h)| / h``, the slope's change across the step, where it stands out
        of rounding (else 0): the scale of a gradient at a stationary point."""
        change = abs(self.values[self.h] - 2 * self.f0 + self.values[-self.h])
        return change / self.h if change > SAFETY * math.sqrt(6) * noise else 0.0

    def hidden_kink(self, noise: float) -> float:
        """The most a kink just below the detection threshold can move the value: half its jump."""
        return 0.5 * SAFETY * max(JUMP_NOISE) * noise / self.h

    @property
    def forwards(self) -> int:
        return len(self.values)


def fit_line(line: Line, h: float, f0: float) -> LineFit:
    """Evaluate ``line`` at ±h, ±h/2, ±h/4 (six evaluations)."""
    return LineFit(h, f0, {t: line(t) for t in (h, -h, h / 2, -h / 2, h / 4, -h / 4)})


def kinked_at(line: Line, h: float, f0: float, noise: float) -> bool:
    """Whether ``line`` shows a kink within ±h (the localisation's test, at half the threshold)."""
    return fit_line(line, h, f0).kinked(noise, SAFETY / 2)


def central(line: Line, h: float) -> float:
    """The plain central difference at h (two evaluations): what localisation spends per block."""
    return (line(h) - line(-h)) / (2 * h)


# ------------------------------------------------------------------ the Frobenius-norm guarantee


@functools.lru_cache(maxsize=64)
def chaos_quantiles(k: int, confidence: float = 0.95, samples: int = 40000) -> tuple[float, float]:
    """Quantiles of ``S = Σ_{i≤k} (aᵢ bᵢ)²`` (aᵢ, bᵢ standard normal): the distribution of
    ``Σ (uᵢᵀ E vᵢ)² / ‖E‖_F²`` for a rank-one E, the least concentrated case. Returns the lower
    and upper ``(1 − confidence)/2`` tails (fixed seed: the bound is reproducible)."""
    rng = np.random.default_rng(12345)
    s = np.zeros(samples)
    for _ in range(k):
        s += (rng.standard_normal(samples) * rng.standard_normal(samples)) ** 2
    tail = (1 - confidence) / 2
    return float(np.quantile(s, tail)), float(np.quantile(s, 1 - tail))


def jacobian_error(gaps, numerics, confidence: float = 0.95) -> tuple[float | None, float | None]:
    """Estimate and upper confidence bound of ``‖Ĵ − J‖_F / ‖J‖_F`` from k Gaussian probe pairs.

    ``E[(uᵀ E v)²] = ‖E‖_F²`` for Gaussian u, v, so ``Σ gapᵢ²`` estimates ``k·‖Ĵ − J‖_F²`` and
    ``Σ numericᵢ²`` estimates ``k·‖J‖_F²``; the bound divides by the worst-case quantiles of both
    sums.
    """
    e2, j2 = float(np.sum(np.square(gaps))), float(np.sum(np.square(numerics)))
    if j2 == 0.0:
        return (0.0, 0.0) if e2 == 0.0 else (None, None)
    lo, hi = chaos_quantiles(len(gaps), confidence)
    return math.sqrt(e2 / j2), math.sqrt((e2 / lo) / (j2 / hi))
