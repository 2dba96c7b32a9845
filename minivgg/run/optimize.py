"""A run's optimisation stage: ``optimize`` runs the chosen optimiser with a ``Progress`` (bar, log
rows, snapshots, best image, the ``on_iteration`` callback); Ctrl-C/SIGTERM writes the best image so
far and a checkpoint (``checkpoint.py``) and prints the command that resumes it. ``finish`` writes the
result, the JSON log and the report.
"""

from __future__ import annotations

import json
import math
import shlex
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

from ..engine.backend import to_host
from ..errors import UserError
from ..optim.drivers import NonFiniteError, adam, lbfgs
from ..style.memory import lbfgs_history
from . import checkpoint, controls
from .fsutil import atomic_write
from .image import (
    save_image,
    to_uint8,
)
from .options import LR_UNITS, Run
from .report import make_report


class Progress:
    """What happens after every iteration: the log row, the bar, snapshots, the best image so far."""

    def __init__(self, run: Run):
        from tqdm import tqdm

        self.run, self.t0 = run, time.perf_counter()
        self.x, self.best, self.best_loss, self.iteration = (
            run.x0,
            run.x0,
            math.inf,
            run.start_iteration,
        )  # read only
        self.stop = controls.ConvergenceStop(
            None if run.opts.all_iters or run.settings["round_evals"] else run.settings["stop_tol"],
            run.settings["stop_window"],
        )
        self.bar = tqdm(
            total=run.iters,
            initial=run.start_iteration,
            disable=run.opts.quiet,
            unit="it",
            dynamic_ncols=True,
            file=sys.stderr,
            desc=f"{run.opts.preset} {run.content.shape[1]}x{run.content.shape[0]}"
            + (f" scale {run.scale + 1}/{run.scales}" if run.scales > 1 else ""),
        )

    def seconds(self) -> float:
        return time.perf_counter() - self.t0

    def on_iteration(self, it, x, terms) -> bool:
        """Record iteration ``it`` at host image ``x``; True (stop) once the convergence stop says so."""
        terms = terms or {}
        self.x, self.iteration = np.array(x, copy=True), it
        loss = float(terms.get("total", math.nan))
        if loss < self.best_loss:
            self.best_loss, self.best = loss, self.x
        self.run.log["iterations"].append(
            {
                "iteration": it,
                "loss": loss,
                "content": terms.get("content"),
                "style": terms.get("style"),
                "tv": terms.get("tv"),
                "seconds": round(self.seconds(), 4),
                "evaluations": self.run.obj.evaluations,
                **({"scale": self.run.scale + 1} if self.run.scales > 1 else {}),
            }
        )
        if self.run.opts.on_iteration is not None:
            self.run.opts.on_iteration(self.run, self.run.log["iterations"][-1], self.x)
        self.bar.update(1)
        self.bar.set_postfix(
            loss=f"{loss:.4g}",
            content=f"{terms.get('content', 0):.3g}",
            style=f"{terms.get('style', 0):.3g}",
            tv=f"{terms.get('tv', 0):.3g}",
            refresh=False,
        )
        every = self.run.opts.save_every
        if every and it % every == 0 and self.run.output:
            save_image(
                snapshot_path(self.run.output, it, self.run.scale, self.run.scales),
                self.run.picture(x),
            )
        return self.stop.update(it, loss)

    def on_round(self, rnd, x) -> None:
        """After an L-BFGS round: a snapshot, unless ``--save-every`` already writes them."""
        if not self.run.opts.save_every and self.run.output:
            save_image(
                snapshot_path(self.run.output, self.iteration, self.run.scale, self.run.scales),
                self.run.picture(x),
            )

    def close(self) -> None:
        self.bar.close()


def snapshot_path(output: Path, iteration: int, scale: int = 0, scales: int = 1) -> Path:
    """``OUT_0100.png`` for iteration 100 of ``OUT.png``; ``OUT_s2_0100.png`` at the second of several scales."""
    tag = f"s{scale + 1}_" if scales > 1 else ""
    return output.with_name(f"{output.stem}_{tag}{iteration:04d}{output.suffix}")


def _run_optimizer(run: Run, progress: Progress):
    """The chosen optimiser from the current image to the end of the iteration budget."""
    s, obj = run.settings, run.obj
    x, start = progress.x, progress.iteration
    remaining = max(0, run.iters - start)
    bounds = (0.0, 255.0) if s["bounds"] else None
    if run.optimizer == "adam":
        lr = run.opts.lr if run.opts.lr is not None else s["lr"]
        return adam(
            obj,
            x,
            remaining,
            lr=lr,
            betas=tuple(s["betas"]),
            eps=s["adam_eps"],
            unit=LR_UNITS[s["lr_unit"]],
            decay_every=s["lr_decay_every"],
            decay_gamma=s["lr_decay_gamma"],
            clip=(0.0, 255.0) if s["clip"] or s["bounds"] else None,
            callback=progress.on_iteration,
            start_iteration=start,
        )
    history = lbfgs_history(x.shape[0] * x.shape[1], default=s["history"])
    if run.optimizer == "lbfgs":
        return lbfgs(
            obj,
            x,
            remaining,
            round_evals=s["round_evals"],
            bounds=bounds,
            callback=progress.on_iteration,
            round_callback=progress.on_round,
            start_iteration=start,
            history=history,
        )
    # lbfgs-device: the image goes to the device once; the progress gets one host copy per
    # iteration (for the Ctrl-C checkpoint), never one per evaluation.
    final = lbfgs(
        obj,
        obj.net.xp.asarray(x),
        remaining,
        round_evals=s["round_evals"],
        bounds=bounds,
        callback=lambda it, xd, terms: progress.on_iteration(it, to_host(xd), terms),
        round_callback=lambda rnd, xd: progress.on_round(rnd, to_host(xd)),
        start_iteration=start,
        history=history,
        in_house=True,
    )
    return to_host(final)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def optimize(run: Run, argv=None):
    """Run the optimiser; returns ``(final image, seconds)``. On Ctrl-C/SIGTERM the best image so far
    and a checkpoint are written and KeyboardInterrupt propagates; a non-finite loss is a UserError."""
    progress = Progress(run)
    main_thread = threading.current_thread() is threading.main_thread()
    old_term = signal.signal(signal.SIGTERM, _raise_interrupt) if main_thread else None
    try:
        with np.errstate(
            over="ignore", invalid="ignore"
        ):  # overflow is reported as one sentence below
            final = _run_optimizer(run, progress)
    except KeyboardInterrupt:
        progress.close()
        if run.output is None:
            raise
        save_image(run.output, run.picture(progress.best))
        ck = checkpoint.save(
            checkpoint.checkpoint_path(run.output),
            progress.best,
            progress.iteration,
            run.log["settings"],
            run.opts.seed,
            scale=run.scale,
        )
        cmd = checkpoint.resume_command(argv, ck)
        print(
            f"\ninterrupted at iteration {progress.iteration}: best image so far written to {run.output}, "
            f"checkpoint {ck}\nresume with: minivgg {' '.join(shlex.quote(a) for a in cmd)}\n"
            f"(L-BFGS history restarts on resume)",
            file=sys.stderr,
        )
        raise
    except NonFiniteError as exc:
        progress.close()
        if run.output is not None:
            save_image(run.output, run.picture(progress.best))
        raise UserError(
            f"{exc} at iteration {progress.iteration + 1}; the last finite image is in {run.output}; "
            f"lower --{exc.term}-weight or --lr"
        ) from None
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    progress.close()
    run.progress_stop = progress.stop.stopped_at
    return final, progress.seconds()


# ------------------------------------------------------------------------------------- finish


def finish(run: Run, final, seconds: float):
    """Write the result (when ``-o``), the log (``--log``) and the report (``--report``);
    returns ``(the picture, uint8 (H, W, 3), the log)``."""
    run.log["final_loss"] = run.obj.terms(final)["total"]
    run.log["seconds"] = round(seconds, 3)
    run.log["stopped_early_at"] = run.progress_stop
    picture = to_uint8(run.picture(final))
    if run.output is not None:
        save_image(run.output, picture)
    if run.opts.log:
        with atomic_write(run.opts.log, "w") as fh:
            json.dump(run.log, fh, indent=1, default=float)
    if run.opts.report:
        make_report(run.opts.report, run.content, run.styles, picture, run.log)
    return picture, run.log
