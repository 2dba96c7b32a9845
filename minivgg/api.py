"""``minivgg.stylize``: a style transfer from Python, on arrays, PIL images or paths, returning the picture.

The same validation and errors as ``minivgg transfer`` (raised as ``UserError``, never an exit);
``minivgg.run.transfer.execute`` does the work for both, so the CLI is a thin layer over the same run.
"""

from __future__ import annotations

import numpy as np

from .run.transfer import RunOptions, execute


def stylize(
    content,
    style,
    *,
    preset: str = "gatys",
    size=None,
    iters=None,
    scales=None,
    min_scale=None,
    original_colors=False,
    luminance_only=False,
    match_color=None,
    content_masks=None,
    style_masks=None,
    mask_mode="simple",
    weights=None,
    progress=False,
    all_iters=False,
    seed=0,
    init=None,
    optimizer=None,
    device="cpu",
    tile_size=None,
    **overrides,
) -> np.ndarray:
    """Stylize ``content`` with ``style`` (one image or a list): (H, W, 3) uint8 RGB at ``size``.

    Images are paths, PIL images or (H, W, 3) arrays (uint8, or float 0..255). ``scales`` (longest
    sides, coarse to fine) and ``iters`` (one or one per scale) as ``--scales``/``--iters``;
    ``content_masks`` (one per style: paths or (H, W) arrays in 0..1) give each style its region.
    ``tile_size`` evaluates the objective on tiles of that side: the same numbers in bounded memory.
    ``**overrides`` are the objective's settings (``content_weight``, ``style_layers``, …).
    """
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    opts = RunOptions(
        output=None,
        preset=preset,
        size=size,
        iters=iters,
        scales=scales,
        min_scale=min_scale,
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
