"""``CheckResult``: the verdict of one gradient check and the paragraph that explains it."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .localize import describe

VERDICTS = ("pass", "fail", "kink", "inconclusive")
HEADS = {
    "pass": "pass",
    "fail": "FAIL",
    "kink": "KINK (not differentiable within the step)",
    "inconclusive": "INCONCLUSIVE (the finite differences could not decide)",
}


@dataclasses.dataclass
class CheckResult:
    """Outcome of one gradient check (what ``check_vjp`` and ``check_grad`` return).

    Parameters
    ----------
    name : str
        The check's label (the function's name unless ``name=`` was given).
    shape : tuple of int
        Shape of the checked input.
    verdict : {"pass", "fail", "kink", "inconclusive"}
        "pass": the gap fits a tolerance that excludes gross errors (a pass is a proof).
        "fail": the gap exceeds the largest budget, or a structural check failed (``problems``).
        "kink": the one-sided slopes disagree at every step that could decide: a kink (a ReLU
        input or a max-pool tie closer to x than the step), located in ``suspects``.
        "inconclusive": no step could decide (the tolerance stayed above ``cap``, or the measured
        rounding could not be trusted) and no kink was seen.
    error, tolerance : float
        The relative gap ``|⟨g, v⟩ − numeric| / max(|⟨g, v⟩|, |numeric|)`` of the worst probe
        and the relative tolerance it was held to (derived from the error budget unless
        rtol/atol were given).
    eps : float
        The step (along a unit direction) the verdict rests on.
    analytic, numeric : float
        ``⟨backward(u), v⟩`` and the finite difference.
    input, dtype : str
        Which input was checked (``"args[0]"``, ``"x"``) and the dtype the check ran in.
    derived : bool
        False when ``rtol``/``atol`` replaced the derived tolerance.
    budget : dict
        The error budget's terms (rounding, truncation, analytic, kink) and their ``multiple``.
    suspects : ndarray of bool or None
        Shaped like the input: the elements a failure or a kink is localised to.
    problems : list of str
        Structural faults (the forward changed its input, two backward calls disagree, ...).
    probes : int
        Number of (u, v) pairs.
    jacobian_error, jacobian_bound : float or None
        Estimate and 95 % bound of ``‖Ĵ − J‖_F / ‖J‖_F`` from the probes.
    forwards, localization_forwards : int
        Function evaluations in all, and those spent localising.
    retries : int
        Shorter steps tried (on a kink, or to confirm a failure).
    note : str
        A remark on the verdict (kinks at every step, ...).
    noise, noise_model, noise_measured : float
        One evaluation's rounding: as used, as the machine-epsilon model gives it, as first
        measured.
    noise_source : str
        "model", "measured", "verified" (steady across spacings 8x apart), "unverified" (it changed
        with the spacing, like a kink's share: no pass) or "implausible" (verified, but over 1000x
        the model: no pass).
    noise_why : str
        One sentence: why that noise.
    cap : float
        The largest relative tolerance a pass may carry (1e-3 in float64, 1e-1 in float32).
    slope_jump : float
        ``|right − left one-sided slope|`` at the verdict's step (large at a kink).
    steps : tuple of float
        Every step tried along the worst probe's direction, in order.
    directions : int
        Directions tried for the worst probe: more than one when the first could not decide or
        to confirm a failure.

    Raises
    ------
    ValueError
        For a verdict not in ``VERDICTS``.

    Examples
    --------
    >>> import numpy as np
    >>> from minivgg.gradcheck import check_grad
    >>> res = check_grad(lambda x: (float(np.sum(x ** 3)), 3 * x ** 2), np.arange(1.0, 4.0))
    >>> res.verdict, res.passed, res.error <= res.tolerance <= res.cap
    ('pass', True, True)
    >>> res.report().splitlines()[0]
    'gradient check function w.r.t. x (3,) in float64: pass'
    """

    name: str
    shape: tuple
    verdict: str
    error: float = 0.0
    tolerance: float = 0.0
    eps: float = 0.0
    analytic: float = 0.0
    numeric: float = 0.0
    input: str = "args[0]"
    dtype: str = "float64"
    derived: bool = True
    budget: dict = dataclasses.field(default_factory=dict)
    suspects: np.ndarray | None = None
    problems: list = dataclasses.field(default_factory=list)
    probes: int = 1
    jacobian_error: float | None = None
    jacobian_bound: float | None = None
    forwards: int = 0
    localization_forwards: int = 0
    retries: int = 0
    note: str = ""
    noise: float = 0.0
    noise_model: float = 0.0
    noise_measured: float = 0.0
    noise_source: str = ""
    noise_why: str = ""
    cap: float = 0.0
    slope_jump: float = 0.0
    steps: tuple = ()
    directions: int = 1

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    @property
    def passed(self) -> bool:
        """True only for the verdict "pass"."""
        return self.verdict == "pass"

    def report(self) -> str:
        """A readable paragraph: what was checked, the numbers and tolerance, the noise, suspects,
        problems, and what was spent."""
        lines = [
            f"gradient check {self.name} w.r.t. {self.input} {tuple(self.shape)} in {self.dtype}: "
            f"{HEADS[self.verdict]}"
        ]
        if self.eps:
            how = (
                "tolerance derived from the error budget"
                if self.derived
                else "tolerance given (rtol/atol)"
            )
            lines.append(
                f"  <backward(u), v> = {self.analytic:.10g}, "
                f"finite difference = {self.numeric:.10g} (extrapolated from steps "
                f"eps = {self.eps:.3g}, eps/2, eps/4 along a unit direction)"
            )
            budget = f": {_budget(self.budget)})" if self.budget else ")"
            cap = f"; a pass needs a tolerance <= {self.cap:g}" if self.derived and self.cap else ""
            lines.append(
                f"  relative error {self.error:.3e} "
                f"{'<=' if self.error <= self.tolerance else '>'} "
                f"tolerance {self.tolerance:.3e} ({how}{budget}{cap}"
            )
        if self.noise_source:
            lines.append(
                f"  noise {self.noise:.3g} per evaluation ({self.noise_source}): {self.noise_why}"
            )
        if self.verdict in ("kink", "inconclusive") or self.budget.get("kink"):
            lines.append(f"  one-sided slopes differ by {self.slope_jump:.3g} at that step")
        if self.suspects is not None:
            what = "kink at" if self.verdict == "kink" else "suspects"
            lines.append(
                f"  {what}: {describe(self.suspects)} of {self.input}"
                f" (localised with {self.localization_forwards} more forward evaluations)"
            )
        if self.jacobian_error is not None and self.jacobian_bound is not None:
            pairs = f"{self.probes} Gaussian probe pair{'s' if self.probes != 1 else ''}"
            lines.append(
                f"  ‖Ĵ − J‖_F / ‖J‖_F ≈ {self.jacobian_error:.2e}, below {self.jacobian_bound:.2e} "
                f"with 95% confidence ({pairs})"
            )
        for p in self.problems:
            lines.append(f"  problem: {p}")
        if self.note:
            lines.append(f"  note: {self.note}")
        if len(self.steps) > 1 or self.directions > 1:
            tried = ", ".join(f"{h:.3g}" for h in self.steps)
            more = f" ({self.directions} directions)" if self.directions > 1 else ""
            lines.append(f"  steps tried: {tried}{more}")
        lines.append(f"  {self.forwards} forward evaluations in all")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values (suspects as their count and index ranges)."""
        keys = (
            "name",
            "verdict",
            "error",
            "tolerance",
            "eps",
            "analytic",
            "numeric",
            "input",
            "dtype",
            "derived",
            "problems",
            "probes",
            "jacobian_error",
            "jacobian_bound",
            "forwards",
            "localization_forwards",
            "retries",
            "note",
            "noise",
            "noise_model",
            "noise_measured",
            "noise_source",
            "noise_why",
            "cap",
            "slope_jump",
            "directions",
        )
        d = {k: getattr(self, k) for k in keys}
        d["shape"] = list(self.shape)
        d["steps"] = list(self.steps)
        d["passed"] = self.passed
        d["budget"] = dict(self.budget)
        d["suspects"] = (
            None
            if self.suspects is None
            else {"count": int(self.suspects.sum()), "where": describe(self.suspects)}
        )
        return d


def _budget(b: dict) -> str:
    parts = [f"{k} {v:.2e}" for k, v in b.items() if k != "multiple"]
    return ", ".join(parts) + (f"; x{b['multiple']:g}" if "multiple" in b else "")
