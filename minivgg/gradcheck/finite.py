"""Finite differences along one line ``t -> f(x + t·v)`` (‖v‖ = 1), and what they can prove.

``fit_line`` evaluates ``f`` at ``±h`` and ``±h/2`` and returns the Richardson value
``(4·D(h/2) − D(h)) / 3`` with its error budget: truncation (the two step sizes' disagreement) plus
rounding (the larger of a machine-epsilon model and the noise measured at four tiny steps ``±h/1024 … ±5h/1024``).
The five points ``−h, −h/2, 0, h/2, h`` also give the one-sided slopes: their disagreement is
``|Δ⁴f| / h``, which is O(h³) for a smooth ``f`` and O(jump) when a kink lies inside the step.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

SAFETY = 4.0          # a gap passes when within this multiple of the error budget
RICHARDSON_NOISE = 1.9   # Richardson's weights (±4/3h, ∓1/6h) turn evaluation noise σ into 1.9σ/h
JUMP_NOISE = math.sqrt(70.0)  # and Δ⁴'s weights (1, −4, 6, −4, 1) into √70·σ
TRUNCATION_NOISE = 1.58       # and D(h) − D(h/2)'s into 1.58σ/h
RETRY_FACTOR = 8.0    # on a kink with the automatic step, retry at h/8, h/64, h/512
RETRIES = 3
LONGER_STEPS = 2      # a rounding-bound check (the step sizes agree within rounding) tries 2 steps 8x longer
NOISE_STEP = 1.0 / 1024
NOISE_STEPS = (1, 2, 3, 5)  # the noise probe's steps, in units of h·NOISE_STEP


def auto_step(x64: np.ndarray, eps_machine: float) -> float:
    """The automatic step along a unit direction: ``eps^(1/3) · ‖x‖`` (every element moves by about
    ``eps^(1/3) · rms(x)``, the balance of truncation and rounding), ``eps^(1/3) · √n`` when x is 0."""
    scale = float(np.sqrt(np.sum(np.square(x64))))
    return eps_machine ** (1 / 3) * (scale if scale > 0 else math.sqrt(max(x64.size, 1)))


@dataclasses.dataclass
class LineFit:
    """The evaluations along one line and what they say about ``f'(0)``."""
    h: float
    f0: float
    values: dict          # t -> f(x + t·v)
    noise: float          # error (standard deviation) of one evaluation of f
    measured_noise: float

    @property
    def d_h(self) -> float:
        return (self.values[self.h] - self.values[-self.h]) / (2 * self.h)

    @property
    def d_h2(self) -> float:
        return (self.values[self.h / 2] - self.values[-self.h / 2]) / self.h

    @property
    def numeric(self) -> float:
        """Richardson's extrapolation: the h² error terms of the two central differences cancel."""
        return (4 * self.d_h2 - self.d_h) / 3

    @property
    def truncation(self) -> float:
        """The two step sizes' disagreement ``|D(h) − D(h/2)|``: Richardson's error is far below it for a
        smooth f (whose D(h/2) is off by a third of it), and about it when kinks make the error linear in h."""
        return abs(self.d_h - self.d_h2)

    @property
    def rounding(self) -> float:
        """Rounding of the Richardson value (one standard deviation)."""
        return RICHARDSON_NOISE * self.noise / self.h

    @property
    def slope_jump(self) -> float:
        """``|right one-sided slope − left one-sided slope|`` (second-order slopes) = ``|Δ⁴f| / h``."""
        v, h = self.values, self.h
        return abs(v[h] - 4 * v[h / 2] + 6 * self.f0 - 4 * v[-h / 2] + v[-h]) / h

    @property
    def rounding_bound(self) -> bool:
        """The two step sizes agree within their rounding: a longer step would only lower the noise."""
        return self.truncation <= 2 * TRUNCATION_NOISE * self.noise / self.h

    def kinked(self, multiple: float = SAFETY) -> bool:
        """The one-sided slopes disagree by more than ``multiple`` standard deviations of their rounding."""
        return self.slope_jump > multiple * JUMP_NOISE * self.noise / self.h

    @property
    def kink(self) -> bool:
        """A kink inside the step: the one-sided slopes disagree by ``SAFETY`` standard deviations."""
        return self.kinked(SAFETY)

    @property
    def forwards(self) -> int:
        return len(self.values)


def probe_noise(line, h: float) -> list:
    """``[(d, f(d), f(−d)), …]`` at ``NOISE_STEPS`` tiny steps ``d = h/1024 … 5h/1024``, where every
    difference is rounding."""
    return [(d, line(d), line(-d)) for d in (h * NOISE_STEP * k for k in NOISE_STEPS)]


def fit_line(line, h: float, f0: float, noise_model: float, tiny: list | None = None) -> LineFit:
    """Evaluate ``line`` at ±h and ±h/2. The noise is the larger of the model's and a measured one,
    from the tiny-step values ``tiny`` (``probe_noise``): the smaller of two RMS estimates over the tiny
    steps, of ``|f(d) − 2f(0) + f(−d)| / √6`` and of ``√2·d·|D(d) − Richardson|``, each pure rounding
    unless a kink sits inside ±d or ±h. One pair alone is a single draw of the noise, often 10x low: an
    op whose rounding is amplified (Winograd F(4x4), ~50 eps) then read as a kink."""
    values = {t: line(t) for t in (h, -h, h / 2, -h / 2)}
    measured = 0.0
    if tiny:
        richardson = (4 * (values[h / 2] - values[-h / 2]) / h - (values[h] - values[-h]) / (2 * h)) / 3
        second = [(fd - 2 * f0 + fmd) ** 2 / 6 for _, fd, fmd in tiny]
        slope = [2 * (((fd - fmd) / (2 * d) - richardson) * d) ** 2 for d, fd, fmd in tiny]
        measured = math.sqrt(min(sum(second), sum(slope)) / len(tiny))
    return LineFit(h, f0, values, max(noise_model, measured), measured)


def central(line, h: float) -> float:
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
    ``Σ numericᵢ²`` estimates ``k·‖J‖_F²``; the bound divides by the worst-case quantiles of both sums.
    """
    e2, j2 = float(np.sum(np.square(gaps))), float(np.sum(np.square(numerics)))
    if j2 == 0.0:
        return (0.0, 0.0) if e2 == 0.0 else (None, None)
    lo, hi = chaos_quantiles(len(gaps), confidence)
    return math.sqrt(e2 / j2), math.sqrt((e2 / lo) / (j2 / hi))
