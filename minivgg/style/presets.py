"""The six presets of ``../shared/spec/objective.md``: every setting of one reference formulation
(layers, per-layer weights, Gram variant, normalisations, TV kind, pooling, optimiser), and
``resolve_settings``, which applies and validates a user's overrides. ``minivgg presets`` prints them.

Examples
--------
>>> from minivgg.style.presets import PRESETS
>>> list(PRESETS)
['gatys', 'keras', 'cntk', 'harvard', 'd2l', 'ee8601']
>>> PRESETS["d2l"].arch, PRESETS["d2l"].optimizer
('vgg19', 'adam')
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from ..errors import UserError
from ..network.arch import canonical_tap, layer_names

IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
"""ImageNet's per-channel standard deviation (RGB, 0..1), the ``lr_unit="imagenet_std"``."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Preset:
    """Every setting of one reference formulation; field names are the ``Objective`` overrides.

    Parameters
    ----------
    name, source : str
        The preset's name and the reference it reproduces.
    arch, pooling : {"vgg16", "vgg19"}; {"avg", "max"}
    content_layers, style_layers : tuple of str
        Tap names (empty for ``cntk``: ``cntk_layers`` fills them from ``decay``).
    content_layer_weights, style_layer_weights : tuple of float >= 0
        One per layer (content None: equal weights summing to 1).
    content_norm, gram, style_norm, tv : str
        The content loss normalisation (``losses.CONTENT_NORMS``), the Gram variant
        (``losses.GRAMS``), the style factor (``style_norm``) and the TV kind (``losses.TV_KINDS``).
    content_weight, style_weight, tv_weight : float >= 0
    decay : float >= 0, optional
        ``cntk`` only: the all-layer weight decay (``cntk_layers``).
    optimizer, iters, round_evals, bounds, init, stop_tol, stop_window, history
        "lbfgs" or "adam"; iterations; L-BFGS rounds of at most this many evaluations (None: one
        run); box constraints 0..255; start (``run.transfer.INITS``); convergence tolerance and
        the iterations it looks back over; L-BFGS memory.
    coarse, coarse_iters : tuple of int
        The default route's coarse scales (divisors of the output's side, coarse to fine) and their
        iterations (``run.schedule.default_route``); empty: one scale.
    lr, lr_unit, betas, adam_eps, lr_decay_every, lr_decay_gamma, clip
        Adam's settings; ``lr_unit`` ("pixel", "unit01", "imagenet_std") is the unit of lr and eps.
    size, square_crop : int; bool
        The default longest side and whether the content is centre-cropped square first.

    Examples
    --------
    >>> p = PRESETS["gatys"]
    >>> p.arch, p.pooling, p.content_layers, p.style_weight
    ('vgg16', 'avg', ('block4_conv2',), 10000.0)
    >>> dataclasses.replace(p, style_weight=1e3).style_weight, p.style_weight  # frozen
    (1000.0, 10000.0)
    """

    name: str
    source: str
    arch: str
    pooling: str
    content_layers: tuple
    content_norm: str
    content_weight: float
    style_layers: tuple
    style_layer_weights: tuple
    gram: str
    style_norm: str
    style_weight: float
    tv: str
    tv_weight: float
    content_layer_weights: tuple | None = None  # None: equal weights summing to 1
    decay: float | None = None  # cntk only: all-layer decay d
    optimizer: str = "lbfgs"
    iters: int = 500
    round_evals: int | None = None  # L-BFGS rounds of at most N evaluations
    bounds: bool = True
    init: str = "content"
    lr: float | tuple = 1.0
    lr_unit: str = "pixel"  # units the lr/eps are written in: pixel, unit01, imagenet_std
    betas: tuple = (0.9, 0.999)
    adam_eps: float = 1e-8
    lr_decay_every: int | None = None
    lr_decay_gamma: float = 0.1
    clip: bool = False
    size: int = 512
    square_crop: bool = False
    stop_tol: float | None = (
        None  # convergence stop (controls.ConvergenceStop); None: all iterations
    )
    stop_window: int = 50  # the iterations the convergence stop looks back over
    history: int = 10  # L-BFGS memory: (s, y) pairs kept
    coarse: tuple = ()  # the default route's coarse scales, as divisors of the output's side
    coarse_iters: tuple = ()  # iterations at each coarse scale


_B1 = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")

PRESETS = {
    "gatys": Preset(
        name="gatys",
        source="Gatys, Ecker, Bethge 2016 on VGG16 (EE8601 report, theory)",
        arch="vgg16",
        pooling="avg",
        content_layers=("block4_conv2",),
        content_norm="half_sum",
        content_weight=1.0,
        style_layers=_B1,
        style_layer_weights=(0.2,) * 5,
        gram="plain",
        style_norm="gatys",
        style_weight=1e4,
        tv="squared",
        tv_weight=1e-3,
        iters=500,
        init="content",
        stop_tol=0.02,
        # The engine's L-BFGS with memory 30: the same picture as scipy's L-BFGS-B (memory 10) in
        # 0.84x the time (bench/results/time_to_picture.md, issue 25).
        optimizer="lbfgs-device",
        history=30,
    ),
    "keras": Preset(
        name="keras",
        source="Keras VGG16 neural-style notebook (seed 001)",
        arch="vgg16",
        pooling="max",
        content_layers=("block2_conv2",),
        content_norm="sum",
        content_weight=0.025,
        style_layers=(
            "block1_conv2",
            "block2_conv2",
            "block3_conv3",
            "block4_conv3",
            "block5_conv3",
        ),
        style_layer_weights=(0.2,) * 5,
        gram="plain",
        style_norm="keras",
        style_weight=5.0,
        tv="keras",
        tv_weight=1.0,
        iters=200,
        round_evals=20,
        bounds=False,
        init="noise",
    ),
    "cntk": Preset(
        name="cntk",
        source="CNTK 205 with the Novak-Nikulin improvements (seed 000)",
        arch="vgg16",
        pooling="avg",
        content_layers=(),
        content_norm="mean",
        content_weight=5.0,
        style_layers=(),
        style_layer_weights=(),
        gram="centered",
        style_norm="cntk",
        style_weight=1.0,
        tv="mean_squared",
        tv_weight=1.0,
        decay=0.5,
        iters=200,
        round_evals=20,
        init="content",
        size=300,
        square_crop=True,
    ),
    "harvard": Preset(
        name="harvard",
        source="AC 209B homework 6 (seed 002)",
        arch="vgg16",
        pooling="max",
        content_layers=("block4_conv2",),
        content_norm="sum",
        content_weight=3e-2,
        style_layers=_B1,
        style_layer_weights=tuple(w / 5 for w in (20000, 500, 12, 1, 1)),
        gram="plain",
        style_norm="harvard",
        style_weight=1.0,
        tv="harvard",
        tv_weight=5e-2,
        iters=1000,
        round_evals=20,
        init="noise",
    ),
    "d2l": Preset(
        name="d2l",
        source="Dive into Deep Learning, neural style (seed 003)",
        arch="vgg19",
        pooling="max",
        content_layers=("conv4_4",),
        content_norm="mean",
        content_weight=1.0,
        style_layers=("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"),
        style_layer_weights=(1.0,) * 5,
        gram="per_cm",
        style_norm="mean",
        style_weight=1e3,
        tv="mean_abs",
        tv_weight=10.0,
        optimizer="adam",
        iters=500,
        lr=0.01,
        lr_unit="imagenet_std",
        lr_decay_every=200,
        init="content",
    ),
    "ee8601": Preset(
        name="ee8601",
        source="EE8601 project report, TensorFlow 2 (seed 004)",
        arch="vgg19",
        pooling="max",
        content_layers=("block5_conv2",),
        content_norm="mean",
        content_weight=1e4,
        style_layers=_B1,
        style_layer_weights=(0.2,) * 5,
        gram="per_m",
        style_norm="mean",
        style_weight=10.0,
        tv="abs255",
        tv_weight=30.0,
        optimizer="adam",
        iters=10000,
        lr=0.02,
        lr_unit="unit01",
        betas=(0.99, 0.999),
        adam_eps=0.1,
        clip=True,
        init="content",
    ),
}
"""The six presets by name, as ``Preset`` records (``minivgg presets`` prints them)."""

# Overrides the objective itself understands (the optimiser ones are read by optim/transfer).
OVERRIDES = tuple(f.name for f in dataclasses.fields(Preset) if f.name not in ("name", "source"))


def cntk_layers(
    arch: str, decay: float
) -> tuple[tuple[str, ...], tuple[float, ...], tuple[str, ...], tuple[float, ...]]:
    """The CNTK all-layer schedule: every ReLU plus ``input`` (content) or ``block5_pool`` (style).

    Content weights ``1/T, d^(i+1)/T``, style weights ``1/T, d^(n−i)/T`` over the n ReLUs, with
    ``T = (1 − d^(n+1)) / (1 − d)``: each list sums to 1.

    Parameters
    ----------
    arch : {"vgg16", "vgg19"}
    decay : float >= 0
        d; 1 gives equal weights.

    Returns
    -------
    content_layers, content_weights, style_layers, style_weights : tuple
        Tap names and their float weights, n + 1 of each.

    Examples
    --------
    >>> content, content_w, style, style_w = cntk_layers("vgg16", 0.5)
    >>> content[:2], style[:2], len(style)
    (('input', 'block1_conv1'), ('block5_pool', 'block1_conv1'), 14)
    >>> round(sum(content_w), 12), round(sum(style_w), 12), content_w[1] / content_w[2]
    (1.0, 1.0, 2.0)
    """
    relus = [n for n in layer_names(arch) if n.startswith("block") and "_conv" in n]
    n = len(relus)
    T = (1 - decay ** (n + 1)) / (1 - decay) if decay != 1 else n + 1
    content = ("input",) + tuple(relus)
    content_w = (1 / T,) + tuple(decay ** (i + 1) / T for i in range(n))
    style = ("block5_pool",) + tuple(relus)
    style_w = (1 / T,) + tuple(decay ** (n - i) / T for i in range(n))
    return content, content_w, style, style_w


def resolve_settings(preset: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The preset's settings with ``overrides`` applied and validated.

    Overrides of None are ignored; layer lists may be comma-separated strings; changed layers
    without weights get equal weights summing to 1.

    Parameters
    ----------
    preset : str
        A name in ``PRESETS``.
    overrides : mapping
        ``Preset`` fields (``OVERRIDES``) and ``style_blend_weights``.

    Returns
    -------
    dict
        Every ``Preset`` field plus ``preset`` (and ``style_blend_weights`` if given); layer names
        and weights as tuples.

    Raises
    ------
    UserError
        An unknown preset, setting or layer, a negative or non-finite weight, a bad pooling, or
        layer weights that do not match the layers.

    Examples
    --------
    >>> s = resolve_settings("gatys", {"style_layers": "relu1_1,relu2_1", "tv_weight": None})
    >>> s["style_layers"], s["style_layer_weights"], s["tv_weight"], s["preset"]
    (('relu1_1', 'relu2_1'), (0.5, 0.5), 0.001, 'gatys')
    >>> resolve_settings("gatys", {"style_weight": -1})
    Traceback (most recent call last):
    minivgg.errors.UserError: style_weight must be a finite number >= 0, got -1
    """
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    unknown = sorted(set(overrides) - set(OVERRIDES) - {"style_blend_weights"})
    if unknown:
        raise UserError(
            f"unknown setting(s) {', '.join(unknown)}; valid settings: {', '.join(OVERRIDES)}, style_blend_weights"
        )
    s = dataclasses.asdict(PRESETS[preset])
    s.update({k: v for k, v in overrides.items() if v is not None})
    for key in ("content_weight", "style_weight", "tv_weight"):
        v = s[key]
        if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise UserError(f"{key} must be a finite number >= 0, got {v!r}")
    if s["stop_tol"] is not None and (
        not isinstance(s["stop_tol"], (int, float))
        or not math.isfinite(s["stop_tol"])
        or s["stop_tol"] < 0
    ):
        raise UserError(f"stop_tol must be a finite number >= 0, got {s['stop_tol']!r}")
    for key in ("stop_window", "history"):
        v = s[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise UserError(f"{key} must be a whole number >= 1, got {v!r}")
    if s["pooling"] not in ("avg", "max"):
        raise UserError(f"pooling must be 'avg' or 'max', got {s['pooling']!r}")
    if preset == "cntk" and not s["content_layers"] and not s["style_layers"]:
        c, cw, st, sw = cntk_layers(s["arch"], s["decay"])
        s.update(
            content_layers=c, content_layer_weights=cw, style_layers=st, style_layer_weights=sw
        )
    for key in ("content_layers", "style_layers"):
        if isinstance(s[key], str):
            s[key] = tuple(t for t in s[key].split(",") if t)
        s[key] = tuple(s[key])
        for tap in s[key]:
            try:
                canonical_tap(s["arch"], tap)
            except ValueError as exc:
                raise UserError(f"{key}: {exc}") from None
    if (
        "style_layers" in overrides
        and "style_layer_weights" not in overrides
        and preset != "cntk"
        or len(s["style_layer_weights"] or ()) != len(s["style_layers"])
    ):
        if "style_layer_weights" in overrides and overrides["style_layer_weights"] is not None:
            raise UserError(
                f"style_layer_weights has {len(s['style_layer_weights'])} values for "
                f"{len(s['style_layers'])} style layers"
            )
        s["style_layer_weights"] = (1.0 / max(1, len(s["style_layers"])),) * len(s["style_layers"])
    if s["content_layer_weights"] is None or len(s["content_layer_weights"]) != len(
        s["content_layers"]
    ):
        s["content_layer_weights"] = (1.0 / max(1, len(s["content_layers"])),) * len(
            s["content_layers"]
        )
    for key in ("style_layer_weights", "content_layer_weights"):
        s[key] = tuple(float(w) for w in s[key])
        if any(not math.isfinite(w) or w < 0 for w in s[key]):
            raise UserError(f"{key} must be finite numbers >= 0, got {list(s[key])}")
    s["preset"] = preset
    return s


def style_norm(kind: str, C: int, M: int, image_hw: tuple[int, int]) -> float:
    """The per-layer factor multiplying ``Σ (G − A)²`` in each preset's style term.

    Parameters
    ----------
    kind : {"gatys", "keras", "harvard", "cntk", "mean"}
        ``Preset.style_norm``.
    C, M : int >= 1
        The layer's channels and positions (H_l · W_l).
    image_hw : (int, int)
        The image's (H, W); only "keras" uses it (the notebook's quirk).

    Returns
    -------
    float > 0

    Raises
    ------
    ValueError
        On an unknown ``kind``.

    Examples
    --------
    >>> style_norm("gatys", 64, 256, (16, 16)) == 1 / (4 * 64**2 * 256**2)
    True
    >>> style_norm("mean", 64, 256, (16, 16))
    0.000244140625
    """
    if kind == "gatys":
        return 1.0 / (4.0 * C * C * M * M)
    if kind == "keras":  # the notebook's quirks: channels = 3 and the image's own H·W
        return 1.0 / (4.0 * 9.0 * float(image_hw[0] * image_hw[1]) ** 2)
    if kind == "harvard":
        return 1.0 / (4.0 * M * M)
    if kind == "cntk":
        return 1.0 / (C * C * float(M) ** 2)
    if kind == "mean":
        return 1.0 / (C * C)
    raise ValueError(f"unknown style norm {kind!r}")
