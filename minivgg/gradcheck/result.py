"""``CheckResult``: the verdict of one gradient check and the paragraph that explains it."""
from __future__ import annotations

import dataclasses

import numpy as np

from .localize import describe

VERDICTS = ("pass", "fail", "kink")


@dataclasses.dataclass
class CheckResult:
    """Outcome of one gradient check.

    ``verdict`` is "pass", "fail" or "kink"; ``error`` the measured relative error
    ``|⟨g, v⟩ − numeric| / max(|⟨g, v⟩|, |numeric|)`` (the worst probe); ``tolerance`` the relative
    tolerance the verdict used (derived from the error budget unless rtol/atol were given);
    ``suspects`` a boolean array shaped like the checked input (on "fail" and "kink", else None);
    ``problems`` the structural faults found (each one sentence).
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

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def report(self) -> str:
        """A readable paragraph: what was checked, the numbers and tolerance, suspects, problems, the guarantee."""
        head = {"pass": "pass", "fail": "FAIL", "kink": "KINK (not differentiable within the step)"}[self.verdict]
        lines = [f"gradient check {self.name} w.r.t. {self.input} {tuple(self.shape)} in {self.dtype}: {head}"]
        if self.eps:
            how = ("tolerance derived from the error budget" if self.derived else "tolerance given (rtol/atol)")
            lines.append(f"  <backward(u), v> = {self.analytic:.10g}, finite difference = {self.numeric:.10g} "
                         f"(Richardson on steps eps = {self.eps:.3g} and eps/2 along a unit direction)")
            budget = f": {_budget(self.budget)})" if self.budget else ")"
            lines.append(f"  relative error {self.error:.3e} {'<=' if self.error <= self.tolerance else '>'} "
                         f"tolerance {self.tolerance:.3e} ({how}{budget}")
        if self.suspects is not None:
            what = "kink at" if self.verdict == "kink" else "suspects"
            lines.append(f"  {what}: {describe(self.suspects)} of {self.input}"
                         f" (localised with {self.localization_forwards} more forward evaluations)")
        if self.jacobian_error is not None:
            pairs = f"{self.probes} Gaussian probe pair{'s' if self.probes != 1 else ''}"
            lines.append(f"  ‖Ĵ − J‖_F / ‖J‖_F ≈ {self.jacobian_error:.2e}, below {self.jacobian_bound:.2e} "
                         f"with 95% confidence ({pairs})")
        for p in self.problems:
            lines.append(f"  problem: {p}")
        if self.note:
            lines.append(f"  note: {self.note}")
        if self.retries:
            lines.append(f"  (a kink at the first step; retried {self.retries} time(s) at 1/8 of the step)")
        lines.append(f"  {self.forwards} forward evaluations in all")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        """The result as JSON-ready values (suspects as their count and index ranges)."""
        d = {k: getattr(self, k) for k in ("name", "verdict", "error", "tolerance", "eps", "analytic", "numeric",
                                           "input", "dtype", "derived", "problems", "probes", "jacobian_error",
                                           "jacobian_bound", "forwards", "localization_forwards", "retries", "note")}
        d["shape"] = list(self.shape)
        d["passed"] = self.passed
        d["budget"] = dict(self.budget)
        d["suspects"] = None if self.suspects is None else {"count": int(self.suspects.sum()),
                                                            "where": describe(self.suspects)}
        return d


def _budget(b: dict) -> str:
    parts = [f"{k} {v:.2e}" for k, v in b.items() if k != "multiple"]
    return ", ".join(parts) + (f"; x{b['multiple']:g}" if "multiple" in b else "")
