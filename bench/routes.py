"""The routes of ``bench.time_to_picture``: ways to reach a finished picture, each run from the loaded
images with a ``Recorder`` that logs every iterate (time, evaluations, loss terms) and can end the run
at the first finished one.

- minivgg routes run ``minivgg.run.transfer.execute`` itself (the code path of ``minivgg transfer``),
  with the route's scales, iterations per scale, L-BFGS memory and stop;
- parameterised routes (``param``) run the engine's L-BFGS on a reparameterised image
  (``bench.parameterize``) from the same prepared objective;
- torch routes run ``torch.optim.LBFGS`` (history 100, no line search: neural-style-pt's settings) on
  ``bench.torch_objective.TorchObjective``, eager or ``torch.compile``d.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from minivgg.run.options import RunOptions
from minivgg.run.transfer import execute, prepare


class Finished(Exception):
    """Raised by a ``Recorder`` to end a route at its first finished iterate (or at its cap)."""


@dataclasses.dataclass(frozen=True)
class Route:
    """One way to a picture. ``scales``: divisors of the output size, coarse to fine (``(1,)``: single
    scale); ``iters``: iterations per scale (the last is the final scale's cap); ``history``: L-BFGS
    memory; ``param``: None, "color" or "pyramid"; ``engine``: "minivgg", "torch-eager" or
    "torch-compile"; ``own_stop``: run to the route's own stop instead of ending at "finished";
    ``default``: run ``execute`` with no route settings at all (what ``minivgg transfer`` does)."""

    name: str
    lever: str
    scales: tuple = (1,)
    iters: tuple = (350,)
    history: int = 10
    param: str | None = None
    engine: str = "minivgg"
    own_stop: bool = False
    default: bool = False
    stop_tol: float | None = None
    stop_window: int = 50
    optimizer: str | None = (
        None  # None: the preset's (scipy's L-BFGS-B); "lbfgs-device": the engine's
    )


def is_finished(terms: dict, ref: dict, slack: float = 1.05, balance: float = 0.15) -> bool:
    """The issue's criterion: total ≤ 1.05·L_ref, content and style each within 15 % of the reference's."""
    total = terms.get("total", terms.get("loss"))
    if total is None or not math.isfinite(total):
        return False
    return (
        total <= slack * ref["total"]
        and abs(terms["content"] - ref["content"]) <= balance * ref["content"]
        and abs(terms["style"] - ref["style"]) <= balance * ref["style"]
    )


class Recorder:
    """Every iterate of a route: seconds since ``start()``, evaluations so far, the loss terms at the
    final scale. Raises ``Finished`` at the first finished iterate unless ``keep_going``."""

    def __init__(self, ref: dict, keep_going: bool = False):
        self.ref, self.keep_going = ref, keep_going
        self.rows: list[dict] = []
        self.first_finished: dict | None = None
        self._objs: dict[int, object] = {}

    def start(self) -> None:
        self.t0 = time.perf_counter()

    def evaluations(self) -> int:
        return sum(getattr(o, "evaluations", 0) for o in self._objs.values())

    def record(self, obj, terms: dict, final: bool, scale: int) -> None:
        self._objs.setdefault(id(obj), obj)
        row = {
            "seconds": time.perf_counter() - self.t0,
            "evaluations": self.evaluations(),
            "scale": scale,
            "final_scale": final,
            **{k: float(terms[k]) for k in ("total", "content", "style", "tv") if k in terms},
        }
        self.rows.append(row)
        if final and self.first_finished is None and is_finished(row, self.ref):
            self.first_finished = row
            if not self.keep_going:
                raise Finished

    def on_iteration(self, run, row, image) -> None:
        """``RunOptions.on_iteration`` for minivgg routes."""
        terms = {"total": row["loss"], "content": row["content"], "style": row["style"]}
        terms["tv"] = row["tv"]
        self.record(run.obj, terms, run.scale == run.scales - 1, run.scale)


class Counted:
    """An objective that counts its evaluations (for routes whose objective does not)."""

    def __init__(self, obj):
        self.obj, self.evaluations, self.last_terms = obj, 0, None

    def value_and_grad(self, x):
        self.evaluations += 1
        out = self.obj.value_and_grad(x)
        self.last_terms = self.obj.last_terms
        return out


def run_minivgg(route: Route, content, style, size: int, rec: Recorder, device="cpu") -> None:
    """A minivgg route through ``execute`` (the CLI's code path)."""
    if route.default:
        opts = RunOptions(
            output=None, size=size, quiet=True, on_iteration=rec.on_iteration, device=device
        )
        overrides: dict = {}
    else:
        sides = [max(16, round(size / d)) for d in route.scales]
        opts = RunOptions(
            output=None,
            preset="gatys",
            size=size,
            scales=tuple(sides) if len(sides) > 1 else None,
            iters=tuple(route.iters) if len(sides) > 1 else route.iters[-1],
            init="content",
            optimizer=route.optimizer,
            device=device,
            all_iters=route.stop_tol is None,
            quiet=True,
            on_iteration=rec.on_iteration,
        )
        overrides: dict = {"history": route.history}
        if route.stop_tol is not None:
            overrides.update(stop_tol=route.stop_tol, stop_window=route.stop_window)
    rec.start()
    try:
        execute(content, [style], opts, overrides)
    except Finished:
        pass


def run_param(route: Route, content, style, size: int, rec: Recorder) -> None:
    """A reparameterised single-scale route: the engine's L-BFGS over z, unbounded."""
    from minivgg.optim.drivers import lbfgs

    from . import parameterize

    rec.start()
    run = prepare(content, [style], RunOptions(output=None, size=size, quiet=True), {})
    obj = Counted(run.obj)
    if route.param == "color":
        wrapped = parameterize.ColorDecorrelated(obj)
    else:
        wrapped = parameterize.LaplacianPyramid(obj, run.x0.shape)
    z0 = wrapped.from_image(run.x0)

    def callback(it, z, terms):
        rec.record(obj, dict(terms), True, 0)
        return False

    try:
        lbfgs(wrapped, z0, route.iters[-1], bounds=None, history=route.history, callback=callback)
    except Finished:
        pass


def torch_images(content, style, size: int):
    """The content and style at working size exactly as a minivgg run sees them."""
    run = prepare(content, [style], RunOptions(output=None, size=size, quiet=True, iters=1), {})
    return np.asarray(run.content), np.asarray(run.styles[0]), run.obj.net


def run_torch(route: Route, content, style, size: int, rec: Recorder, net=None) -> None:
    """``torch.optim.LBFGS`` (history ``route.history``, no line search, lr 1) on the same objective."""
    from .environment import import_torch
    from .torch_objective import TorchObjective

    torch = import_torch()
    c, s, minivgg_net = torch_images(content, style, size)
    rec.start()
    tobj = TorchObjective(net or minivgg_net, c, s, config=route.engine.split("-", 1)[1])
    x = torch.tensor(np.asarray(c, dtype=np.float32), requires_grad=True)
    opt = torch.optim.LBFGS(
        [x],
        lr=1,
        max_iter=route.iters[-1],
        max_eval=route.iters[-1],
        history_size=route.history,
        tolerance_grad=-1,
        tolerance_change=-1,
        line_search_fn=None,
    )
    counter = Counted(None)

    def closure():
        opt.zero_grad()
        total, terms = tobj.loss(x)
        total.backward()
        counter.evaluations += 1
        rec.record(counter, terms, True, 0)
        return total

    try:
        opt.step(closure)
    except Finished:
        pass


def run_route(route: Route, content, style, size: int, rec: Recorder, device="cpu") -> None:
    """Run ``route`` from the loaded images, recording into ``rec``."""
    if route.engine.startswith("torch"):
        run_torch(route, content, style, size, rec)
    elif route.param:
        run_param(route, content, style, size, rec)
    else:
        run_minivgg(route, content, style, size, rec, device)
