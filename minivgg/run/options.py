"""What a run is: ``RunOptions`` (every setting of ``minivgg transfer``, also the Python API's and the
studio's) and ``Run`` (the prepared objective, start image and log that ``optimize`` works on)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..network.vgg import VGG
from ..style.objective import Objective
from ..style.presets import IMAGENET_STD_RGB
from . import controls

OPTIMIZERS = ("lbfgs", "lbfgs-device", "adam")
INITS = ("content", "random", "style", "noise")
LR_UNITS = {"pixel": 1.0, "unit01": 255.0, "imagenet_std": 255.0 * np.asarray(IMAGENET_STD_RGB)}


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
    single_scale: bool = False  # no default coarse scales (the preset's ``coarse``): one scale
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
    load_network: Callable[..., VGG] | None = (
        None  # load_vgg's stand-in, same signature (sweep workers: a per-process cache)
    )
    on_iteration: Callable[..., None] | None = None  # (run, log row, image) after every iteration


@dataclasses.dataclass
class Run:
    """A prepared run: the resolved choices, the images at working size, the objective, the start."""

    opts: RunOptions
    settings: dict
    output: Path | None  # None: no image is written (the Python API)
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
