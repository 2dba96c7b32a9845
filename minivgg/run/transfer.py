"""Style transfer end to end, from files to files: ``stylize`` = ``prepare`` → ``optimize`` → ``finish``.

``prepare`` validates every option before any work, loads and sizes the images (refusing, before
allocating them, a size the memory cannot hold), loads the network and builds the ``Objective``
and the starting image; ``optimize`` and ``finish`` (``optimize.py``) run the optimiser and write
the result, the log and the report; ``RunOptions`` and ``Run`` live in ``options.py``. The command
line over it is ``minivgg.cli.transfer``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import numpy as np

from ..engine.backend import xp_for
from ..engine.ops import CONV_ALGORITHMS
from ..errors import UserError
from ..network.vgg import load_vgg
from ..style import memory
from ..style.objective import Objective
from ..style.presets import PRESETS, resolve_settings
from ..style.tiling import validate_tile_size
from . import checkpoint, controls, samples, schedule
from .fsutil import check_output_path, same_file
from .image import (
    as_image,
    center_crop_square,
    load_image,
    longest_side_shape,
    resize_longest,
    resize_to,
)
from .optimize import finish, optimize
from .options import INITS, OPTIMIZERS, Run, RunOptions


def stylize(content_path, style_paths, opts: RunOptions, overrides: dict, argv=None) -> dict:
    """Run one style transfer from files to ``opts.output``; returns the log dict.

    Raises UserError for bad input before any work starts; KeyboardInterrupt after writing the
    best image so far and ``OUT.ckpt.npz``.
    """
    return execute(content_path, style_paths, opts, overrides, argv)[1]


def execute(content, styles, opts: RunOptions, overrides: dict, argv=None):
    """``prepare`` → ``optimize`` for every scale (``schedule.py``), then ``finish``: ``(picture uint8
    (H, W, 3), log)``. ``content`` and ``styles`` are paths, PIL images or arrays; ``opts.output`` None
    writes no image (the Python API). A resumed run continues at the scale its checkpoint was written in.
    Sample names (``samples.SAMPLES``) stand for the shipped paintings."""
    content, styles = samples.resolve(content), [samples.resolve(s) for s in styles]
    if opts.preset not in PRESETS:
        raise UserError(f"unknown preset {opts.preset!r}; valid presets: {', '.join(PRESETS)}")
    preset = PRESETS[opts.preset]
    _positive("size", opts.size)
    sizes, iters = _route(opts, preset, resolve_settings(opts.preset, overrides))
    first = checkpoint.scale_of(opts.resume) if opts.resume else 0
    if first >= len(sizes):
        raise UserError(
            f"checkpoint {opts.resume} was written at scale {first + 1}, but this run has {len(sizes)} scales"
        )
    content_weight = overrides.get("content_weight", preset.content_weight)
    rows, seconds, x = [], 0.0, None
    if len(sizes) - first > 1:  # every scale uses the same network: load it once
        opts = dataclasses.replace(opts, load_network=_load_once(opts.load_network or load_vgg))
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


def _route(opts: RunOptions, preset, settings: dict):
    """The run's ``(sizes, iters)``: the user's scales and iterations, else the preset's default route
    (``settings``: the resolved ones)."""
    size = int(opts.size or preset.size)
    chosen = opts.scales is not None or opts.min_scale is not None or opts.iters is not None
    if chosen or opts.single_scale:
        sizes = schedule.scale_sizes(size, opts.scales, opts.min_scale)
        return sizes, schedule.scale_iters(opts.iters, settings["iters"], len(sizes))
    return schedule.default_route(
        size, settings["coarse"], settings["coarse_iters"], settings["iters"]
    )


def _load_once(load):
    """``load`` (``load_vgg``'s signature) remembering its last network, for the scales of one run
    (``video.run._load_network_cache`` keeps every network of a video's workers)."""
    kept: dict = {}

    def loader(*args, **kwargs):
        key = (args, tuple(sorted(kwargs.items())))
        if key not in kept:
            kept.clear()
            kept[key] = load(*args, **kwargs)
        return kept[key]

    return loader


def check_options(content, styles, opts: RunOptions, overrides: dict) -> None:
    """Every check ``execute`` makes before reading a file (options, scales, objective settings,
    output paths): UserError with one sentence on the first bad one, nothing loaded."""
    if opts.preset not in PRESETS:
        raise UserError(f"unknown preset {opts.preset!r}; valid presets: {', '.join(PRESETS)}")
    preset = PRESETS[opts.preset]
    _positive("size", opts.size)
    settings = resolve_settings(opts.preset, dict(overrides))
    _route(opts, preset, settings)
    _validate(opts, content, styles)
    validate_tile_size(opts.tile_size, settings)


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
    assert not isinstance(opts.iters, tuple)  # ``execute`` gives each scale its own
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
    log: dict = {
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
