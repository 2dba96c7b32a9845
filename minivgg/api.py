"""``minivgg.stylize``: a style transfer from Python, on arrays, PIL images or paths, returning the picture.

The same validation and errors as ``minivgg transfer`` (raised as ``UserError``, never an exit);
``minivgg.run.transfer.execute`` does the work for both, so the CLI is a thin layer over the same run.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import numpy.typing as npt

from .run.transfer import RunOptions, execute

if TYPE_CHECKING:
    from PIL import Image

# What ``stylize`` takes as an image: a path, a PIL image or an (H, W, 3) array of 0..255 values.
ImageSource: TypeAlias = "str | os.PathLike[str] | Image.Image | npt.ArrayLike"
# A mask: a path or an (H, W) array of 0..1 values.
MaskSource: TypeAlias = "str | os.PathLike[str] | npt.ArrayLike"


def stylize(
    content: ImageSource,
    style: ImageSource | list[ImageSource] | tuple[ImageSource, ...],
    *,
    preset: str = "gatys",
    size: int | None = None,
    iters: int | tuple[int, ...] | None = None,
    scales: tuple[int, ...] | None = None,
    min_scale: int | None = None,
    single_scale: bool = False,
    original_colors: bool = False,
    luminance_only: bool = False,
    match_color: str | None = None,
    content_masks: list[MaskSource] | None = None,
    style_masks: list[MaskSource | None] | None = None,
    mask_mode: str = "simple",
    weights: str | None = None,
    progress: bool = False,
    all_iters: bool = False,
    seed: int = 0,
    init: str | None = None,
    optimizer: str | None = None,
    device: str = "cpu",
    tile_size: int | None = None,
    **overrides: Any,
) -> np.ndarray:
    """Stylize ``content`` with ``style``: a whole ``minivgg transfer`` run, returning the picture.

    The same validation and errors as the CLI; the flags' defaults come from ``preset``.

    Parameters
    ----------
    content : str, os.PathLike, PIL.Image.Image or array_like (H, W, 3)
        Arrays are uint8, or float 0..255 (rounded and clipped).
    style : image as ``content``, or a list of them
        Several styles are blended (``style_blend_weights=`` in ``overrides``).
    preset : str
        A name in ``minivgg.PRESETS``.
    size : int >= 1, optional
        The output's longest side (default: the preset's).
    iters : int or tuple of int, optional
        L-BFGS/Adam iterations: one value, or one per scale.
    scales, min_scale : tuple of int, int, optional
        Coarse-to-fine longest sides (as ``--scales``), or √2 steps from ``min_scale`` up to size.
    single_scale : bool
        One scale at ``size`` instead of the preset's default route (as ``--single-scale``).
    original_colors, luminance_only : bool
        Keep the content's colours: chroma put back after, or optimise luminance only (not both).
    match_color : {"chol", "pca", "sym"}, optional
        Map each style's colours to the content's first.
    content_masks, style_masks : list, optional
        One per style: paths or (H, W) arrays in 0..1; where each style applies in the content,
        and where its statistics are taken in the style image (None: everywhere).
    mask_mode : {"simple", "inside", "all"}
    weights : str, optional
        A VGG weights file; None: the verified cache (``minivgg weights fetch``).
    progress, all_iters : bool
        Show a progress bar; run every iteration (no convergence stop).
    seed : int >= 0
    init, optimizer : str, optional
        "content", "noise", "random" or an image path; "lbfgs" or "adam" (default: the preset's).
    device : {"cpu", "gpu"}
    tile_size : int, optional
        Evaluate the objective on tiles of that side: the same numbers in bounded memory.
    **overrides
        The objective's settings (``content_weight``, ``style_layers``, ...; see ``Preset``).

    Returns
    -------
    ndarray, shape (H, W, 3), uint8 RGB
        The content's aspect ratio, longest side ``size``.

    Raises
    ------
    UserError
        Any invalid input or setting, missing weights, or a run that fails (the CLI's sentences).

    Examples
    --------
    Random weights written to a file stand in for the real ones; two shallow layers keep it fast.

    >>> import os, tempfile
    >>> from minivgg.network.vgg import random_vgg
    >>> from minivgg.network.weights import base, cache
    >>> rng = np.random.default_rng(0)
    >>> content, style = rng.integers(0, 256, (40, 30, 3), np.uint8), rng.random((32, 32, 3)) * 255
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     weights = os.path.join(tmp, "random_vgg16.h5")
    ...     cache.write_cache(weights, base.WeightSet("vgg16", random_vgg().params, "keras-h5"), {})
    ...     out = stylize(content, style, size=32, iters=2, weights=weights,
    ...                   content_layers="relu2_2", style_layers="relu1_1,relu2_1")
    >>> out.shape, out.dtype
    ((32, 24, 3), dtype('uint8'))
    >>> stylize(content, style, preset="nope")
    Traceback (most recent call last):
    minivgg.errors.UserError: unknown preset 'nope'; valid presets: gatys, keras, cntk, harvard, ...
    """
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    opts = RunOptions(
        output=None,
        preset=preset,
        size=size,
        iters=iters,
        scales=scales,
        min_scale=min_scale,
        single_scale=single_scale,
        optimizer=optimizer,
        init=init,
        seed=seed,
        weights=weights,
        device=device,
        quiet=not progress,
        original_colors=original_colors,
        luminance_only=luminance_only,
        match_color=match_color,
        content_masks=content_masks,
        style_masks=style_masks,
        mask_mode=mask_mode,
        all_iters=all_iters,
        tile_size=tile_size,
    )
    return execute(content, styles, opts, overrides)[0]
