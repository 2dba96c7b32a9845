"""The creative controls of a transfer, between the images and the objective: colour (``color.py``),
regions (``regions.py``) and the convergence stop.

``prepare_inputs`` turns the content and styles at working size into what the objective sees
(``--match-color-histogram``: each style's colours mapped to the content's; ``--luminance-only``:
Rec.601 luminance images, the style's matched to the content's mean and std); ``present`` turns an
optimised image into the picture written out (the content's chroma back for ``--original-colors``
and ``--luminance-only``); ``load_masks`` reads the region masks; ``ConvergenceStop`` ends a run
whose loss has stopped falling.
"""

from __future__ import annotations

import math
import os

import numpy as np
from PIL import Image

from ..errors import UserError
from ..style.regions import MASK_MODES
from .color import MATCH_MODES, luminance_image, match_color, match_luminance, original_colors
from .image import load_image, resize_to

# The convergence stop: end when the loss fell by less than STOP_TOL (relative) over the last
# STOP_WINDOW iterations. From the 512² gatys log in docs/: the picture barely changes after that.
STOP_WINDOW = 50


def validate(opts) -> None:
    """The controls of ``RunOptions`` that can be judged before reading a file."""
    if opts.match_color is not None and opts.match_color not in MATCH_MODES:
        raise UserError(
            f"unknown colour matching {opts.match_color!r}: expected {', '.join(MATCH_MODES)}"
        )
    if opts.mask_mode not in MASK_MODES:
        raise UserError(
            f"unknown mask propagation {opts.mask_mode!r}: expected {', '.join(MASK_MODES)}"
        )
    if opts.original_colors and opts.luminance_only:
        raise UserError(
            "--original-colors and --luminance-only are two ways to keep the content's colours; choose one"
        )
    if opts.style_masks is not None and opts.content_masks is None:
        raise UserError(
            "--style-masks needs --content-masks (where each style applies in the content)"
        )
    for flag, masks in (
        ("--content-masks", opts.content_masks),
        ("--style-masks", opts.style_masks),
    ):
        for m in masks or ():
            if isinstance(m, (str, os.PathLike)) and not os.path.exists(m):
                raise UserError(f"{flag}: mask '{m}' does not exist")


def load_mask(path, shape, what: str) -> np.ndarray:
    """A greyscale mask file as (h, w) float64 in [0, 1] at ``shape``; UserError if unreadable or all black."""
    rgb = load_image(path, what=what)
    grey = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float32)
    mask = np.clip(resize_to(grey, shape).astype(np.float64) / 255.0, 0.0, 1.0)
    if not mask.max() > 0:
        raise UserError(
            f"{what} '{path}' is all black, so its style would apply nowhere; "
            "white marks where a style applies"
        )
    return mask


def _mask(source, shape, what):
    if isinstance(source, (str, os.PathLike)):
        return load_mask(source, shape, what)
    m = np.asarray(source, dtype=np.float64)
    if m.ndim != 2 or not np.isfinite(m).all() or m.min() < 0 or m.max() > 1:
        raise UserError(f"{what} must be a mask file or an (H, W) array of values in 0..1")
    if not m.max() > 0:
        raise UserError(f"{what} is all black, so its style would apply nowhere")
    return np.clip(resize_to(m.astype(np.float32), shape).astype(np.float64), 0, 1)


def load_masks(opts, content_hw, styles):
    """``(content masks at content_hw, style masks at each style's size or None)``, or ``(None, None)``."""
    if opts.content_masks is None:
        return None, None
    n = len(styles)
    for flag, masks in (
        ("--content-masks", opts.content_masks),
        ("--style-masks", opts.style_masks),
    ):
        if masks is not None and len(masks) != n:
            raise UserError(
                f"{flag} has {len(masks)} masks for {n} style images; give one per style image"
            )
    content = [
        _mask(m, content_hw, f"content mask {k + 1}") for k, m in enumerate(opts.content_masks)
    ]
    style = (
        None
        if opts.style_masks is None
        else [
            _mask(m, st.shape[:2], f"style mask {k + 1}")
            for k, (m, st) in enumerate(zip(opts.style_masks, styles))
        ]
    )
    return content, style


def prepare_inputs(opts, content, styles):
    """What the objective sees: ``(content, styles)`` 0..255, float64 after colour matching or luminance,
    else the images as they are (uint8: the network casts them; an 8192² float64 copy is 1.6 GB)."""
    if opts.luminance_only:
        y = luminance_image(content)
        return y, [match_luminance(luminance_image(st), y) for st in styles]
    if opts.match_color:
        return content, [match_color(st, content, opts.match_color) for st in styles]
    return content, list(styles)


def input_itemsize(opts) -> int:
    """Bytes per pixel value of the images a run holds, for the memory estimate
    (``memory.estimate_bytes(image_itemsize=)``): the loaded uint8 ones, plus the float64 ones
    ``prepare_inputs`` makes when a colour control is on."""
    return 1 + 8 if opts.luminance_only or opts.match_color else 1


def present(opts, x, content):
    """The picture written out for optimised image ``x``: the content's chroma back when asked for."""
    if opts.original_colors or opts.luminance_only:
        return original_colors(np.clip(x, 0, 255), content)
    return x


class ConvergenceStop:
    """``update(loss) -> True`` once the loss fell by less than ``tol`` (relative) over ``window`` iterations."""

    def __init__(self, tol: float | None, window: int = STOP_WINDOW):
        self.tol, self.window = tol, window
        self.losses: list[float] = []
        self.stopped_at: int | None = None  # the iteration that stopped the run

    def update(self, iteration: int, loss: float) -> bool:
        self.losses.append(loss)
        if self.tol is None or len(self.losses) <= self.window or not math.isfinite(loss):
            return False
        before = self.losses[-1 - self.window]
        if (before - loss) <= self.tol * abs(loss):
            self.stopped_at = iteration
            return True
        return False
