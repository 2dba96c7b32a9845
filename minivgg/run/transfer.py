"""Style transfer end to end, from files to files: ``stylize`` = ``prepare`` → ``optimize`` → ``finish``.

``prepare`` validates every option before any work, loads and sizes the images (refusing, before
allocating them, a size the memory cannot hold), loads the network and builds the ``Objective``
and the starting image. ``optimize`` runs the chosen optimiser with a ``Progress`` (bar, log rows,
snapshots, best image); Ctrl-C/SIGTERM writes the best image so far and a checkpoint
(``checkpoint.py``) and prints the command that resumes it. ``finish`` writes the result, the JSON
log and the report. The command line over it is ``minivgg.cli.transfer``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

from ..engine.backend import to_host, xp_for
from ..engine.ops import CONV_ALGORITHMS
from ..errors import UserError
from ..network.vgg import load_vgg
from ..optim.drivers import NonFiniteError, adam, lbfgs
from ..style import memory
from ..style.memory import lbfgs_history
from ..style.objective import Objective
from ..style.presets import IMAGENET_STD_RGB, PRESETS, resolve_settings
from ..style.tiling import validate_tile_size
from . import checkpoint, controls, schedule
from .fsutil import atomic_write, check_output_path, same_file
from .image import (
    as_image,
    center_crop_square,
    load_image,
    longest_side_shape,
    resize_longest,
    resize_to,
    save_image,
    to_uint8,
)
from .report import make_report

OPTIMIZERS = ("lbfgs", "lbfgs-device", "adam")
INITS = ("content", "random", "style", "noise")
_LR_UNITS = {"pixel": 1.0, "unit01": 255.0, "imagenet_std": 255.0 * np.asarray(IMAGENET_STD_RGB)}


@dataclasses.dataclass
class RunOptions:
    """What to run besides the objective: sizes, optimiser, outputs. ``None`` means the preset's default."""

    output: str | None
    preset: str = "gatys"
    size: int | None = None
    style_scale: float | None = None
    iters: int | tuple | None = None  # one value, or one per scale
    scales: tuple | None = (
        None  # longest side of every scale, coarse to fine (schedule.scale_sizes)
    )
    min_scale: int | None = None  # or: √2 steps from this side up to ``size``
    optimizer: str | None = None
    lr: float | None = None
    init: str | None = None
    seed: int = 0
    weights: str | None = None
    flip_kernels: str | None = None
    device: str = "cpu"
    save_every: int = 0
    log: str | None = None
    report: str | None = None
    quiet: bool = False
    max_pixels: int | None = None
    resume: str | None = None
    conv: str = "auto"
    tile_size: int | None = None  # evaluate on tiles of this side, same numbers (tiling.py)
    original_colors: bool = False  # the content's chroma in the result (controls.present)
    luminance_only: bool = False  # optimise luminance images, then the content's chroma back
    match_color: str | None = None  # chol | pca | sym: each style's colours mapped to the content's
    content_masks: list | None = (
        None  # one mask per style image: where it applies (paths or arrays)
    )
    style_masks: list | None = None  # where in each style image its statistics are taken
    mask_mode: str = "simple"  # simple | inside | all (regions.tap_masks)
    all_iters: bool = False  # no convergence stop: run every iteration
    load_network: object = (
        None  # load_vgg's stand-in, same signature (sweep workers: a per-process cache)
    )


@dataclasses.dataclass
class Run:
    """A prepared run: the resolved choices, the images at working size, the objective, the start."""

    opts: RunOptions
    settings: dict
    output: Path
    size: int
    iters: int
    optimizer: str
    init: str
    content: np.ndarray  # the content at working size, as loaded (its colours)
    styles: list
    obj: Objective
    x0: np.ndarray
    start_iteration: int
    log: dict
    progress_stop: int | None = None  # the iteration the convergence stop ended the run at
    scale: int = 0  # this stage's scale (0-based) of ``scales``
    scales: int = 1

    def picture(self, x):
        """What is written out for optimised image ``x`` (``controls.present``)."""
        return controls.present(self.opts, x, self.content)


def stylize(content_path, style_paths, opts: RunOptions, overrides: dict, argv=None) -> dict:
    """Run one style transfer from files to ``opts.output``; returns the log dict.

    Raises UserError for bad input before any work starts; KeyboardInterrupt after writing the
    best image so far and ``OUT.ckpt.npz``.
    """
    return execute(content_path, style_paths, opts, overrides, argv)[1]


def execute(content, styles, opts: RunOptions, overrides: dict, argv=None):
    """``prepare`` → ``optimize`` for every scale (``schedule.py``), then ``finish``: ``(picture uint8
    (H, W, 3), log)``. ``content`` and ``styles`` are paths, PIL images or arrays; ``opts.output`` None
    writes no image (the Python API). A resumed run continues at the scale its checkpoint was written in."""
    if opts.preset not in PRESETS:
        raise UserError(f"unknown preset {opts.preset!r}; valid presets: {', '.join(PRESETS)}")
    preset = PRESETS[opts.preset]
    _positive("size", opts.size)
    sizes = schedule.scale_sizes(int(opts.size or preset.size), opts.scales, opts.min_scale)
    iters = schedule.scale_iters(opts.iters, preset.iters, len(sizes))
    first = checkpoint.scale_of(opts.resume) if opts.resume else 0
    if first >= len(sizes):
        raise UserError(
            f"checkpoint {opts.resume} was written at scale {first + 1}, but this run has {len(sizes)} scales"
        )
    content_weight = overrides.get("content_weight", preset.content_weight)
    rows, seconds, x = [], 0.0, None
    for k in range(first, len(sizes)):
        stage_overrides = dict(overrides)
        if len(sizes) > 1:
            stage_overrides["content_weight"] = content_weight * schedule.content_scale(
                overrides.get("content_norm", preset.content_norm), sizes[k], sizes[-1]
            )
        stage = dataclasses.replace(
            opts,
            size=sizes[k],
            iters=iters[k],
            resume=opts.resume if k == first else None,
            scales=None,
            min_scale=None,
        )
        run = prepare(content, styles, stage, stage_overrides, start=x, scale=(k, len(sizes)))
        x, spent = optimize(run, argv)
        rows += run.log["iterations"]
        seconds += spent
    run.log["iterations"] = rows
    run.log["settings"].update(scales=sizes, iters=iters, content_weight=content_weight)
    return finish(run, x, seconds)


# ------------------------------------------------------------------------------------ prepare


def _positive(flag, v):
    if v is not None and (isinstance(v, bool) or not math.isfinite(v) or v <= 0):
        raise UserError(f"--{flag} must be a positive number, got {v}")


def _validate(opts: RunOptions, content_path, style_paths) -> None:
    """Every option that can be judged without reading a file; UserError on the first bad one."""
    iters = (
        None if isinstance(opts.iters, (list, tuple)) else opts.iters
    )  # per-scale lists: schedule.scale_iters
    for flag, v in (
        ("size", opts.size),
        ("iters", iters),
        ("lr", opts.lr),
        ("style-scale", opts.style_scale),
    ):
        _positive(flag, v)
    if opts.save_every < 0:
        raise UserError(f"--save-every must be >= 0, got {opts.save_every}")
    if isinstance(opts.seed, bool) or not isinstance(opts.seed, (int, np.integer)) or opts.seed < 0:
        raise UserError(f"--seed must be a whole number >= 0, got {opts.seed!r}")
    if opts.optimizer is not None and opts.optimizer not in OPTIMIZERS:
        raise UserError(f"unknown optimizer {opts.optimizer!r}: expected {', '.join(OPTIMIZERS)}")
    if opts.init is not None and opts.init not in INITS and not os.path.exists(opts.init):
        raise UserError(
            f"--init must be {', '.join(INITS)} or an image path; {opts.init!r} is none of these"
        )
    if opts.conv not in CONV_ALGORITHMS:
        raise UserError(
            f"unknown conv algorithm {opts.conv!r}: expected {', '.join(CONV_ALGORITHMS)}"
        )
    controls.validate(opts)
    xp_for(opts.device)  # DeviceError (one sentence) for a device this machine does not have
    if not style_paths:
        raise UserError("at least one style image is needed")
    inputs = [
        p
        for p in (content_path, *style_paths, opts.init if opts.init not in INITS else None)
        if isinstance(p, (str, os.PathLike))
    ]
    outputs = [("-o", opts.output), ("--log", opts.log), ("--report", opts.report)]
    for k, (flag, path) in enumerate(outputs):
        if not path:
            continue
        check_output_path(Path(path), inputs)
        for other_flag, other in outputs[:k]:
            if other and same_file(path, other):
                raise UserError(
                    f"{flag} {path} is the same file as {other_flag} {other}; give each output its own name"
                )


def _check_memory(
    settings, hw, optimizer, suggest, what: str = "run", tile_size=None, image_itemsize=1
) -> None:
    """Refuse, before allocating, a size whose estimated peak exceeds the memory available now
    (``memory.check_fits``); ``suggest(longest side that fits)`` says which flag to change."""
    memory.check_fits(settings, hw, optimizer, suggest, what, tile_size, image_itemsize)


def _load_images(content_path, style_paths, opts, settings, size, optimizer):
    """Content at working size and the styles (same size, or ``--style-scale`` × size); memory checked first."""
    content = as_image(content_path, max_pixels=opts.max_pixels, what="content")
    if PRESETS[opts.preset].square_crop:
        content = center_crop_square(content)
    hw = longest_side_shape(content.shape, size)
    if opts.device == "cpu":
        _check_memory(
            settings,
            hw,
            optimizer,
            lambda fits: f"--size {fits} or smaller",
            tile_size=opts.tile_size,
            image_itemsize=controls.input_itemsize(opts),
        )
    content = resize_to(content, hw)
    styles = []
    for path in style_paths:
        style = as_image(path, max_pixels=opts.max_pixels, what="style")
        if opts.style_scale:
            side = max(1, round(size * opts.style_scale))
            if opts.device == "cpu":  # the style's features are computed once, at its own size
                _check_memory(
                    settings,
                    longest_side_shape(style.shape, side),
                    "none",
                    lambda fits: f"--style-scale {fits / size:.3g} or smaller",
                    "style image",
                    opts.tile_size,
                )
            style = resize_longest(style, side)
        else:
            style = resize_to(style, hw)
        styles.append(style)
    return content, styles


def _init_image(init, content, styles, seed, mean_rgb, max_pixels):
    """The starting image (H, W, 3) float64 for an ``--init`` choice."""
    h, w = content.shape[:2]
    rng = np.random.default_rng(seed)
    if init == "content":
        return content.astype(np.float64)
    if init == "style":
        return resize_to(styles[0], (h, w)).astype(np.float64)
    if init == "random":
        return rng.uniform(0, 255, content.shape)
    if init == "noise":  # the Keras/Harvard scripts: U[0, 255) − 128 in network-input units
        return rng.uniform(0, 255, content.shape) - 128 + np.asarray(mean_rgb)
    return resize_to(load_image(init, max_pixels=max_pixels, what="init"), (h, w)).astype(
        np.float64
    )


def prepare(
    content_path, style_paths, opts: RunOptions, overrides: dict, start=None, scale=(0, 1)
) -> Run:
    """Validate, load and size the images, load the network, build the objective and the start image
    (``start``: the previous scale's result, resized bicubic; ``scale``: (this scale, how many))."""
    if opts.preset not in PRESETS:
        raise UserError(f"unknown preset {opts.preset!r}; valid presets: {', '.join(PRESETS)}")
    preset = PRESETS[opts.preset]
    settings = resolve_settings(
        opts.preset, dict(overrides)
    )  # validate flags before loading anything
    _validate(opts, content_path, style_paths)
    validate_tile_size(opts.tile_size, settings)
    size = int(opts.size or preset.size)
    iters = int(opts.iters or preset.iters)
    optimizer = opts.optimizer or preset.optimizer
    init = opts.init or preset.init
    content, styles = _load_images(content_path, style_paths, opts, settings, size, optimizer)
    content_masks, style_masks = controls.load_masks(opts, content.shape[:2], styles)
    seen, seen_styles = controls.prepare_inputs(opts, content, styles)
    net = (opts.load_network or load_vgg)(
        settings["arch"],
        weights=opts.weights,
        device=opts.device,
        flip_kernels=opts.flip_kernels,
        conv=opts.conv,
    )
    obj = Objective(
        net,
        seen,
        seen_styles,
        preset=opts.preset,
        content_masks=content_masks,
        style_masks=style_masks,
        mask_mode=opts.mask_mode,
        tile_size=opts.tile_size,
        **overrides,
    )
    if opts.resume:
        x0, first = checkpoint.load(opts.resume, content.shape)
    elif start is not None:
        x0 = resize_to(np.asarray(start, dtype=np.float32), content.shape[:2], bicubic=True).astype(
            np.float64
        )
        x0, first = np.clip(x0, 0, 255), 0  # bicubic overshoots a little
    else:
        x0, first = (
            _init_image(init, seen, seen_styles, opts.seed, net.mean_bgr[::-1], opts.max_pixels),
            0,
        )
    log = {
        "settings": {
            **{k: (list(v) if isinstance(v, tuple) else v) for k, v in obj.settings.items()},
            "size": size,
            "height": content.shape[0],
            "width": content.shape[1],
            "iters": iters,
            "optimizer": optimizer,
            "init": init,
            "seed": opts.seed,
            "device": opts.device,
            "conv": opts.conv,
            "weights": opts.weights or "cache",
            "content": _label(content_path),
            "tile_size": opts.tile_size,
            "styles": [_label(p) for p in style_paths],
            "original_colors": opts.original_colors,
            "luminance_only": opts.luminance_only,
            "match_color": opts.match_color,
            "content_masks": None
            if opts.content_masks is None
            else [_label(m) for m in opts.content_masks],
            "mask_mode": opts.mask_mode,
            "stop_tol": None if opts.all_iters else settings["stop_tol"],
        },
        "iterations": [],
        "final_loss": None,
    }
    return Run(
        opts,
        settings,
        Path(opts.output) if opts.output else None,
        size,
        iters,
        optimizer,
        init,
        content,
        styles,
        obj,
        x0,
        first,
        log,
        scale=scale[0],
        scales=scale[1],
    )


def _label(source) -> str:
    """How an input appears in the log: its path, or what kind of object it was."""
    return str(source) if isinstance(source, (str, os.PathLike)) else f"<{type(source).__name__}>"


# ----------------------------------------------------------------------------------- optimize


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
            None if run.opts.all_iters or run.settings["round_evals"] else run.settings["stop_tol"]
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
                **({"scale": self.run.scale + 1} if self.run.scales > 1 else {}),
            }
        )
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
            unit=_LR_UNITS[s["lr_unit"]],
            decay_every=s["lr_decay_every"],
            decay_gamma=s["lr_decay_gamma"],
            clip=(0.0, 255.0) if s["clip"] or s["bounds"] else None,
            callback=progress.on_iteration,
            start_iteration=start,
        )
    history = lbfgs_history(x.shape[0] * x.shape[1])
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
