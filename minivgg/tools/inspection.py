"""One evaluation of the objective, taken apart into pictures: what each loss term (and each style
layer) pushes on the pixels, how large each push is, the target and current Gram matrices of every
style layer, and a few feature maps per tap.

``inspect_objective`` works on arrays (notebooks call it): each term's gradient is the objective's
own ``value_and_grad`` on a copy whose settings keep that term alone, so every picture shows exactly
what the optimiser receives, and the parts add up to the total. ``inspect_files`` is ``minivgg
inspect``: ``transfer.prepare`` loads everything with the transfer's rules (``--at`` is the image to
evaluate, by default the content), then ``draw`` writes the PNGs and ``DIR/summary.png`` with
matplotlib (the ``report`` extra).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..engine.backend import to_host
from ..errors import UserError
from ..run.fsutil import atomic_write, output_folder
from ..run.report import contact_sheet, pyplot, save_figure
from ..run.transfer import INITS, RunOptions, prepare
from ..style.losses import gram_variant
from ..style.objective import Objective

TERMS = ("content", "style", "tv")


@dataclasses.dataclass
class Inspection:
    """The parts of one evaluation of an objective at ``x``, as ``inspect_objective`` returns them.

    Parameters
    ----------
    x : ndarray, shape (H, W, 3), float64
        The pixels evaluated.
    terms : dict
        The weighted values ``{"content", "style", "tv", "total"}`` (``Objective.terms``).
    grads : dict
        (H, W, 3) float64 pixel gradients of ``"total"``, of each term and of each weighted style
        layer (``"style <layer>"``); the terms' add up to the total, the layers' to ``"style"``.
    grad_norms : dict
        Their L2 norms.
    grams : dict
        ``grams[layer] = (target, current)``, (C, C) each, per style layer (not with regions).
    features, channels : dict
        Per tap: its most active channels' maps (k, H_l, W_l) and their indices (k,).

    Examples
    --------
    >>> i = Inspection(np.zeros((1, 1, 3)), {"total": 0.0}, {}, {}, {}, {}, {})
    >>> i.x.shape, i.terms["total"]
    ((1, 1, 3), 0.0)
    """

    x: np.ndarray
    terms: dict[str, float]
    grads: dict[str, np.ndarray]
    grad_norms: dict[str, float]
    grams: dict[str, tuple[np.ndarray, np.ndarray]]
    features: dict[str, np.ndarray]
    channels: dict[str, np.ndarray]


def term_objective(
    obj: Objective, content: bool = True, style: bool | str = True, tv: bool = True
) -> Objective:
    """A copy of ``obj`` (sharing its targets) whose settings keep only the chosen terms.

    Parameters
    ----------
    obj : Objective
    content, tv : bool
        Keep the content / TV term.
    style : bool or str
        Keep the style term; a style layer name keeps that layer's term alone, with its weight.

    Returns
    -------
    Objective
        Its value and gradient are exactly those of the kept terms of ``obj``.

    Examples
    --------
    >>> from minivgg.network.vgg import random_vgg
    >>> content, style = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), np.uint8)
    >>> obj = Objective(random_vgg(), content, style, style_layers="relu1_1,relu2_1")
    >>> x = content + 10.0
    >>> full, tv_only = obj.terms(x), term_objective(obj, content=False, style=False).terms(x)
    >>> tv_only["total"] == full["tv"], tv_only["style"]
    (True, 0.0)
    >>> one = term_objective(obj, False, "relu1_1", False).terms(x)["style"]
    >>> bool(0 < one < full["style"])
    True
    """
    s = dict(obj.settings)
    if not content:
        s["content_weight"] = 0.0
    if not tv:
        s["tv_weight"] = 0.0
    if style is False:
        s["style_weight"] = 0.0
    elif style is not True:
        s["style_layer_weights"] = tuple(
            w if t == style else 0.0 for t, w in zip(obj.style_taps, s["style_layer_weights"])
        )
    part = copy.copy(obj)
    part.settings = s
    return part


def inspect_objective(obj: Objective, x: npt.ArrayLike, feature_maps: int = 4) -> Inspection:
    """Take apart one evaluation of ``obj`` at ``x``: every term's value, gradient, Grams, features.

    Each part's gradient is ``obj``'s own ``value_and_grad`` with the other terms off
    (``term_objective``): what the optimiser receives.

    Parameters
    ----------
    obj : Objective
    x : array_like, shape (H, W, 3), RGB pixels, 0..255
    feature_maps : int >= 0
        How many channels per tap to keep (the most active first).

    Returns
    -------
    Inspection

    Examples
    --------
    >>> from minivgg.network.vgg import random_vgg
    >>> content, style = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), np.uint8)
    >>> obj = Objective(random_vgg(), content, style, content_layers="relu2_2",
    ...                 style_layers="relu1_1,relu2_1")
    >>> res = inspect_objective(obj, content + 10.0, feature_maps=2)
    >>> list(res.grads)
    ['total', 'content', 'style', 'tv', 'style relu1_1', 'style relu2_1']
    >>> g = res.grads
    >>> parts = g["content"] + g["style"] + g["tv"]  # float32 net: equal to rounding
    >>> bool(np.allclose(parts, g["total"], atol=1e-5 * np.abs(g["total"]).max()))
    True
    >>> res.grams["relu2_1"][0].shape, res.features["relu2_2"].shape, res.channels["relu2_2"].shape
    ((128, 128), (2, 8, 8), (2,))
    """
    x = np.asarray(x, dtype=np.float64)
    grads = {"total": obj.value_and_grad(x)[1]}
    terms = dict(obj.last_terms or {})
    for term in TERMS:
        grads[term] = term_objective(
            obj, term == "content", term == "style", term == "tv"
        ).value_and_grad(x)[1]
    weights = dict(zip(obj.style_taps, obj.settings["style_layer_weights"]))
    for tap in obj.style_taps:
        if obj.settings["style_weight"] and weights[tap]:
            grads[f"style {tap}"] = term_objective(obj, False, tap, False).value_and_grad(x)[1]
    grads = {k: np.asarray(to_host(g), dtype=np.float64) for k, g in grads.items()}
    net, s = obj.net, obj.settings
    feats, _ = net.features(net.preprocess(x), obj.taps, s["pooling"], keep_tape=False)
    grams = {
        t: (to_host(obj.style_targets[t]), to_host(gram_variant(feats[t], s["gram"])))
        for t in obj.style_taps
        if np.ndim(obj.style_targets[t]) == 2
    }  # guided (masked) styles keep per-region targets instead
    features, channels = {}, {}
    for tap, F in feats.items():
        F = to_host(F)[0]
        top = np.argsort(-F.reshape(F.shape[0], -1).mean(axis=1), kind="stable")[:feature_maps]
        features[tap], channels[tap] = F[top], top
    norms = {k: float(np.linalg.norm(g)) for k, g in grads.items()}
    return Inspection(x, terms, grads, norms, grams, features, channels)


# ------------------------------------------------------------------------------------ pictures


def _file_name(name: str) -> str:
    """``style block1_conv1`` -> ``style_block1_conv1``."""
    return name.replace(" ", "_")


def _signed(ax, fig, g, title):
    """The gradient summed over R, G, B as a signed map (red: the step darkens, blue: it brightens) with a colour bar."""
    m = g.sum(axis=2)
    vmax = float(np.abs(m).max())
    im = ax.imshow(m, cmap="RdBu_r", vmin=-(vmax or 1.0), vmax=vmax or 1.0)
    ax.set_title(title if vmax else f"{title} (zero everywhere)", fontsize=9)
    ax.axis("off")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04).ax.tick_params(labelsize=7)


def _norm_bars(ax, norms):
    """A horizontal bar per gradient, its L2 norm on a log axis."""
    names = list(norms)
    values = [norms[n] for n in names]
    ax.barh(
        range(len(names)),
        [v if v > 0 else np.nan for v in values],
        color=[
            "black" if n == "total" else "tab:blue" if " " not in n else "tab:cyan" for n in names
        ],
    )
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.invert_yaxis()
    if any(v > 0 for v in values):
        ax.set_xscale("log")
    ax.set_xlabel("‖∂L/∂x‖₂ (weighted)", fontsize=8)
    ax.set_title("gradient norm per term", fontsize=9)
    ax.tick_params(axis="x", labelsize=7)


def _grams(fig, axes, target, current, layer):
    """Target and current Gram side by side, on one colour scale (``_gram_scale``)."""
    from matplotlib.colors import Normalize, PowerNorm

    lo, hi, gamma = _gram_scale(target, current)
    norm = Normalize(lo, hi) if gamma == 1.0 else PowerNorm(gamma, lo, hi)
    for ax, G, what in zip(axes, (target, current), ("target", "current")):
        im = ax.imshow(G, cmap="magma", norm=norm)
        ax.set_title(f"{layer}\nGram, {what}", fontsize=8)
        ax.axis("off")
    fig.colorbar(im, ax=list(axes), fraction=0.046, pad=0.04, extend="max").ax.tick_params(
        labelsize=7
    )


def _feature_row(axes, maps, idx, tap):
    for ax, F, c in zip(axes, maps, idx):
        ax.imshow(F, cmap="viridis")
        ax.set_title(f"{tap} ch {c}", fontsize=8)
        ax.axis("off")


def _rgb(ax, img, title):
    ax.imshow(np.clip(img, 0, 255).astype(np.uint8))
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def _colours(a, cmap: str, lo: float, hi: float, gamma: float = 1.0):
    """A 2-D array as (H, W, 3) uint8 through a matplotlib colour map, ``lo``..``hi`` (clipped, ``gamma``-scaled)."""
    from matplotlib import colormaps

    t = np.clip((np.asarray(a, dtype=np.float64) - lo) / ((hi - lo) or 1.0), 0.0, 1.0) ** gamma
    return (colormaps[cmap](t)[..., :3] * 255).astype(np.uint8)


def _bar(height: int, cmap: str, lo: float, hi: float, gamma: float = 1.0, what: str = ""):
    """A colour-bar tile for ``contact_sheet``: a vertical strip from ``hi`` (top) to ``lo`` and its labels."""
    t = np.linspace(1.0, 0.0, height) ** (1 / gamma) * (hi - lo) + lo
    return _colours(np.repeat(t[:, None], 16, axis=1), cmap, lo, hi, gamma), [
        f"top {hi:.3g}",
        f"bottom {lo:.3g}",
        what,
    ]


def _heat_sheet(path, maps, cmap, lo, hi, gamma=1.0, what="", min_side=160):
    """``maps`` [(2-D array, caption lines)] on one colour scale, then its colour bar, as one PNG (Pillow);
    small maps are enlarged by a whole factor (nearest neighbour) to at least ``min_side``."""
    tiles = []
    for m, caption in maps:
        k = max(1, -(-min_side // max(m.shape)))
        tiles.append(
            (np.repeat(np.repeat(_colours(m, cmap, lo, hi, gamma), k, axis=0), k, axis=1), caption)
        )
    bar = _bar(max(t.shape[0] for t, _ in tiles), cmap, lo, hi, gamma, what)
    contact_sheet(path, tiles + [bar], columns=len(tiles) + 1, min_side=1)


def _gram_scale(target, current):
    """``(lo, hi, gamma)`` for two Grams: clipped at the 99th percentile of |entries|, square-root scaled
    when no entry is negative (a few large diagonal entries would otherwise leave the rest black)."""
    both = np.abs(np.concatenate([target.ravel(), current.ravel()]))
    hi = float(np.percentile(both, 99)) or float(both.max()) or 1.0
    return (-hi, hi, 1.0) if min(target.min(), current.min()) < 0 else (0.0, hi, 0.5)


def draw(
    result: Inspection,
    folder: str | os.PathLike[str],
    content: np.ndarray,
    styles: Sequence[np.ndarray],
) -> list[str]:
    """Write every picture of ``result`` into ``folder`` (``grad_<name>.png``, ``grad_norms.png``,
    ``gram_<layer>.png``, ``features_<tap>.png``, ``summary.png``) and ``inspect.json``; returns the paths.

    The single pictures are Pillow contact sheets (fast); the bar chart and the summary page are
    matplotlib figures."""
    plt = pyplot()
    if plt is None:
        raise UserError(
            "minivgg inspect draws with matplotlib; install it with: pip install 'minivgg[report]'"
        )
    folder = os.fspath(folder)
    paths = []
    for name, g in result.grads.items():
        m = g.sum(axis=2)
        v = float(np.abs(m).max()) or 1.0
        paths.append(os.path.join(folder, f"grad_{_file_name(name)}.png"))
        _heat_sheet(
            paths[-1],
            [(m, [f"dL/dx: {name}", "summed over R, G, B"])],
            "RdBu_r",
            -v,
            v,
            what="red: descent darkens",
        )
    for layer, (target, current) in result.grams.items():
        paths.append(os.path.join(folder, f"gram_{layer}.png"))
        _heat_sheet(
            paths[-1],
            [(target, [layer, "Gram, target"]), (current, [layer, "Gram, current"])],
            "magma",
            *_gram_scale(target, current),
        )
    for tap, maps in result.features.items():
        paths.append(os.path.join(folder, f"features_{tap}.png"))
        hi = float(max(maps.max(), 0)) or 1.0
        _heat_sheet(
            paths[-1],
            [(F, [tap, f"channel {c}"]) for F, c in zip(maps, result.channels[tap])],
            "viridis",
            float(min(maps.min(), 0)),
            hi,
        )
    height = 0.9 + 0.25 * len(result.grad_norms)
    fig, ax = plt.subplots(
        figsize=(5, height),
        gridspec_kw={"left": 0.32, "right": 0.96, "bottom": 0.55 / height, "top": 1 - 0.3 / height},
    )
    _norm_bars(ax, result.grad_norms)
    paths.append(os.path.join(folder, "grad_norms.png"))
    save_figure(fig, paths[-1], dpi=90)
    paths.append(_summary(plt, result, folder, content, styles))
    summary = {
        "terms": result.terms,
        "grad_norms": result.grad_norms,
        "files": [os.path.basename(p) for p in paths],
    }
    with atomic_write(os.path.join(folder, "inspect.json"), "w") as fh:
        json.dump(summary, fh, indent=1)
    return paths


def _summary(plt, result, folder, content, styles) -> str:
    """One page: the inputs and x; the gradient of the total and of each term; the norms, the
    Grams of the first and last style layers and the feature maps of the first content tap."""
    fig = plt.figure(figsize=(13, 9))
    grid = fig.add_gridspec(
        3, 4, left=0.04, right=0.97, bottom=0.05, top=0.96, wspace=0.35, hspace=0.3
    )
    _rgb(fig.add_subplot(grid[0, 0]), content, "content")
    _rgb(
        fig.add_subplot(grid[0, 1]),
        styles[0],
        "style" if len(styles) == 1 else f"style 1 of {len(styles)}",
    )
    _rgb(fig.add_subplot(grid[0, 2]), result.x, "x (evaluated here)")
    ax = fig.add_subplot(grid[0, 3])
    ax.axis("off")
    ax.text(
        0,
        0.5,
        "L(x), weighted terms:\n" + "\n".join(f"{k} {v:.4g}" for k, v in result.terms.items()),
        fontsize=10,
        va="center",
    )
    for k, name in enumerate(("total", *TERMS)):
        ax = fig.add_subplot(grid[1, k])
        _signed(ax, fig, result.grads[name], f"∂L/∂x: {name}")
    _norm_bars(fig.add_subplot(grid[2, 0]), result.grad_norms)
    layers = list(result.grams)
    shown = list(dict.fromkeys([layers[0], layers[-1]])) if layers else []
    for k, layer in enumerate(shown):
        cell = grid[2, 1 + k].subgridspec(1, 2)
        target, current = result.grams[layer]
        _grams(
            fig, [fig.add_subplot(cell[0, 0]), fig.add_subplot(cell[0, 1])], target, current, layer
        )
    if result.features:  # two maps of the first tap in the last free cell
        tap = next(iter(result.features))
        maps = result.features[tap][:2]
        cell = grid[2, 1 + len(shown)].subgridspec(1, len(maps))
        _feature_row(
            [fig.add_subplot(cell[0, j]) for j in range(len(maps))], maps, result.channels[tap], tap
        )
    path = os.path.join(folder, "summary.png")
    save_figure(fig, path, dpi=80)
    return path


def inspect_files(
    content_path: str | os.PathLike[str],
    style_paths: Sequence[str | os.PathLike[str]],
    outdir: str | os.PathLike[str],
    opts: RunOptions,
    overrides: dict[str, Any],
    at: str | None = None,
) -> Inspection:
    """``minivgg inspect``: one evaluation of the objective ``minivgg transfer`` would build, drawn.

    Every option is checked, and matplotlib is found, before any work. ``outdir`` gets
    ``grad_<term>.png``, ``grad_norms.png``, ``gram_<layer>.png``, ``features_<tap>.png``,
    ``summary.png`` and ``inspect.json`` (``draw``).

    Parameters
    ----------
    content_path : str or os.PathLike
    style_paths : sequence of str or os.PathLike
    outdir : str or os.PathLike
        Created if missing.
    opts : RunOptions
        As for ``minivgg transfer`` (``size``, ``weights``, masks...).
    overrides : dict
        ``Objective`` settings (``style_weight``, ``style_layers``...).
    at : str, optional
        The image to evaluate at (a path); default: the content.

    Returns
    -------
    Inspection

    Raises
    ------
    UserError
        matplotlib missing, a bad option or path.

    Examples
    --------
    >>> import os, tempfile
    >>> from PIL import Image
    >>> from minivgg.network.vgg import random_vgg
    >>> opts = RunOptions(output=None, size=16, quiet=True,
    ...                   load_network=lambda arch, **kw: random_vgg(arch))  # no weights needed
    >>> inspect_files("c.png", ["s.png"], "out", opts, {}, at="missing.png")
    Traceback (most recent call last):
    minivgg.errors.UserError: --at image 'missing.png' does not exist or is not a file

    A full run (about 4 s, most of it matplotlib drawing the pages):

    >>> with tempfile.TemporaryDirectory() as tmp:  # doctest: +SKIP
    ...     for name in ("c.png", "s.png"):
    ...         Image.new("RGB", (16, 16), (200, 40, 90)).save(os.path.join(tmp, name))
    ...     res = inspect_files(os.path.join(tmp, "c.png"), [os.path.join(tmp, "s.png")],
    ...                         os.path.join(tmp, "out"), opts, {"style_layers": "relu1_1"})
    ...     "summary.png" in os.listdir(os.path.join(tmp, "out")), list(res.grams)
    (True, ['relu1_1'])
    """
    if pyplot() is None:
        raise UserError(
            "minivgg inspect draws with matplotlib; install it with: pip install 'minivgg[report]'"
        )
    if at is not None and not os.path.isfile(at):
        raise UserError(f"--at image '{at}' does not exist or is not a file")
    init = "content" if at is None else (os.path.join(".", at) if at in INITS else at)
    with output_folder(outdir) as folder:
        run = prepare(
            content_path,
            style_paths,
            dataclasses.replace(opts, output=str(folder / "summary.png"), init=init),
            overrides,
        )
        result = inspect_objective(run.obj, run.x0)
        draw(result, folder, run.content, run.styles)
    return result
