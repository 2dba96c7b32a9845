"""What a layer keeps of an image (Gatys et al. 2016, Fig. 1): optimise an image from noise until its
features at one layer match the image's (``content`` mode: content loss only, no TV), or until its
Gram matrices match at every style layer up to and including that layer (``style`` mode).

``reconstruct`` works on arrays (notebooks call it); ``reconstruct_files`` is ``minivgg reconstruct``:
``transfer.prepare`` validates the flags and loads the image and the network with the same rules as
``minivgg transfer``, then each layer's image goes to ``DIR/<layer>.png`` as soon as it is done and
``DIR/sheet.png`` shows them all. Backprop-to-input is the whole method: the optimiser only ever sees
``Objective.value_and_grad``, the pixel gradient of one loss term.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import UserError
from ..network.arch import canonical_tap, tap_position
from ..network.vgg import VGG
from ..optim.drivers import NonFiniteError, lbfgs
from ..run.fsutil import check_output_path, output_folder
from ..run.image import save_image, to_uint8
from ..run.report import contact_sheet
from ..run.transfer import RunOptions, prepare
from ..style.memory import lbfgs_history
from ..style.objective import Objective
from ..style.presets import PRESETS

MODES = ("content", "style")
"""What a reconstruction matches: a layer's features, or the Grams of the style layers up to it."""
PRESET = "gatys"  # VGG16, average pooling, ½Σ(F−P)² content, Σ(G−A)²/(4C²M²) style


@dataclasses.dataclass
class Reconstruction:
    """One layer's result, as ``reconstruct`` returns it.

    Parameters
    ----------
    layer, mode : str
        The tap reconstructed from, and "content" or "style".
    image : ndarray, shape (H, W, 3), float64, 0..255
    loss : float
        The final value of the layer's objective.
    iterations : int
        The L-BFGS iterations run (fewer than asked when it converged).
    seconds : float
    psnr : float, optional
        Content mode: the PSNR in dB against the input (None in style mode).

    Examples
    --------
    >>> r = Reconstruction("conv1_2", "content", np.zeros((2, 2, 3)), 0.5, 3, 0.1, psnr=31.04)
    >>> caption(r)
    ['conv1_2', 'loss 0.5, 3 it.', 'PSNR 31.0 dB']
    """

    layer: str
    mode: str
    image: np.ndarray
    loss: float
    iterations: int
    seconds: float
    psnr: float | None = None


def style_layers_up_to(arch: str, layer: str, preset: str = PRESET) -> tuple[str, ...]:
    """The preset's style layers at or before ``layer``, plus ``layer`` itself when it is not one.

    Parameters
    ----------
    arch, layer : str
        The architecture and a tap name (``tap_position`` raises ValueError on an unknown one).
    preset : str
        A name in ``PRESETS``.

    Returns
    -------
    tuple of str

    Examples
    --------
    >>> style_layers_up_to("vgg16", "relu2_1")  # relu2_1 is block2_conv1
    ('block1_conv1', 'block2_conv1')
    >>> style_layers_up_to("vgg16", "conv2_1")  # before its ReLU: not a gatys style layer
    ('block1_conv1', 'conv2_1')
    """
    depth = tap_position(arch, layer)
    taps = [t for t in PRESETS[preset].style_layers if tap_position(arch, t) <= depth]
    if canonical_tap(arch, layer) not in {canonical_tap(arch, t) for t in taps}:
        taps.append(layer)
    return tuple(taps)


def layer_overrides(arch: str, layer: str, mode: str) -> dict[str, Any]:
    """The ``Objective`` overrides of one reconstruction: one term kind, no TV.

    Parameters
    ----------
    arch, layer : str
    mode : {"content", "style"}
        Only ``layer``'s content term, or only the style terms of ``style_layers_up_to(layer)``
        with equal weights.

    Returns
    -------
    dict
        Keyword overrides for ``Objective`` (preset ``PRESET``).

    Raises
    ------
    UserError
        On an unknown ``mode``.

    Examples
    --------
    >>> o = layer_overrides("vgg16", "relu2_1", "style")
    >>> o["style_layers"], o["style_layer_weights"], o["content_weight"], o["tv_weight"]
    (('block1_conv1', 'block2_conv1'), (0.5, 0.5), 0.0, 0.0)
    >>> layer_overrides("vgg16", "conv4_2", "content")["content_layers"]
    ('conv4_2',)
    """
    if mode == "content":
        return {
            "content_layers": (layer,),
            "style_layers": (),
            "content_weight": 1.0,
            "style_weight": 0.0,
            "tv_weight": 0.0,
        }
    if mode != "style":
        raise UserError(f"unknown mode {mode!r}: expected {' or '.join(MODES)}")
    taps = style_layers_up_to(arch, layer)
    return {
        "content_layers": (),
        "style_layers": taps,
        "style_layer_weights": (1.0 / len(taps),) * len(taps),
        "content_weight": 0.0,
        "style_weight": 1.0,
        "tv_weight": 0.0,
    }


def psnr(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Peak signal-to-noise ratio of two images, both rounded to uint8 first.

    Parameters
    ----------
    a, b : array_like, shape (H, W, 3), 0..255

    Returns
    -------
    float
        ``10 log10(255² / MSE)`` in dB; ``inf`` for equal images.

    Examples
    --------
    >>> psnr(np.zeros((2, 2, 3)), np.full((2, 2, 3), 255.0))
    0.0
    >>> psnr(np.ones((1, 1, 3)), np.full((1, 1, 3), 1.2))  # equal once rounded
    inf
    """
    mse = float(np.mean((to_uint8(a).astype(np.float64) - to_uint8(b).astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def reconstruct(
    net: VGG,
    image: npt.ArrayLike,
    layers: Iterable[str],
    mode: str = "content",
    iters: int = 200,
    x0: npt.ArrayLike | None = None,
    seed: int = 0,
    callback: Callable[[str, int, float], object] | None = None,
    on_layer: Callable[[Reconstruction], object] | None = None,
) -> list[Reconstruction]:
    """Reconstruct ``image`` from each of ``layers`` in turn, by L-BFGS-B on the pixels.

    Parameters
    ----------
    net : VGG
        A VGG16 (the ``gatys`` preset's network).
    image : array_like, shape (H, W, 3), uint8 RGB
    layers : iterable of str
        Tap names, reconstructed one after the other.
    mode : {"content", "style"}
        Match the layer's features, or the Grams of the style layers up to it.
    iters : int >= 1
        L-BFGS-B iterations per layer, within [0, 255].
    x0 : array_like, shape (H, W, 3), optional
        Every layer's start; default uniform noise in [0, 255) from ``seed``.
    seed : int >= 0
    callback : callable, optional
        ``callback(layer, iteration, loss)`` after every iteration.
    on_layer : callable, optional
        ``on_layer(result)`` after every layer.

    Returns
    -------
    list of Reconstruction
        One per layer, in order.

    Raises
    ------
    UserError
        On an unknown mode or layer, or a non-finite loss.

    Examples
    --------
    >>> from minivgg.network.vgg import random_vgg
    >>> image = np.random.default_rng(0).integers(0, 256, (16, 16, 3), np.uint8)
    >>> [r] = reconstruct(random_vgg(), image, ["conv1_2"], iters=2)
    >>> r.layer, r.image.shape, r.image.dtype, bool(r.image.min() >= 0 and r.image.max() <= 255)
    ('conv1_2', (16, 16, 3), dtype('float64'), True)
    >>> r.iterations, r.psnr == psnr(r.image, image)
    (2, True)
    """
    image = np.asarray(image)
    if x0 is None:
        x0 = np.random.default_rng(seed).uniform(0, 255, image.shape)
    results = []
    for layer in layers:
        obj = Objective(net, image, image, preset=PRESET, **layer_overrides(net.arch, layer, mode))
        count = [0]

        def on_iteration(it, x, terms, layer=layer, count=count):
            count[0] = it
            if callback is not None:
                callback(layer, it, (terms or {}).get("total", math.nan))

        t0 = time.perf_counter()
        try:
            final = lbfgs(
                obj,
                np.asarray(x0, dtype=np.float64),
                iters,
                bounds=(0.0, 255.0),
                callback=on_iteration,
                history=lbfgs_history(image.shape[0] * image.shape[1]),
            )
        except NonFiniteError as exc:
            raise UserError(f"{exc} while reconstructing from {layer}") from None
        loss = obj.value_and_grad(final)[0]
        result = Reconstruction(
            layer,
            mode,
            final,
            loss,
            count[0],
            time.perf_counter() - t0,
            psnr(final, image) if mode == "content" else None,
        )
        results.append(result)
        if on_layer is not None:
            on_layer(result)
    return results


def parse_layers(arch: str, text: str | Iterable[str]) -> list[str]:
    """Layer names from ``--layers``: each checked, duplicates dropped, order kept.

    Parameters
    ----------
    arch : {"vgg16", "vgg19"}
    text : str or iterable of str
        ``"conv1_2, block4_conv2"`` or a list of names.

    Returns
    -------
    list of str

    Raises
    ------
    UserError
        No name at all, or an unknown one.

    Examples
    --------
    >>> parse_layers("vgg16", "conv1_2, block4_conv2,conv1_2")
    ['conv1_2', 'block4_conv2']
    >>> parse_layers("vgg16", " , ")
    Traceback (most recent call last):
    minivgg.errors.UserError: --layers needs at least one layer name, e.g. ...
    """
    names = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    if not names:
        raise UserError(
            "--layers needs at least one layer name, e.g. --layers block1_conv2,block4_conv2"
        )
    for name in names:
        try:
            canonical_tap(arch, name)
        except ValueError as exc:
            raise UserError(f"--layers: {exc}") from None
    return list(dict.fromkeys(names))


def caption(r: Reconstruction) -> list[str]:
    """The lines under a layer's tile on the sheet: name, final loss and iterations, PSNR."""
    lines = [r.layer, f"loss {r.loss:.3g}, {r.iterations} it."]
    if r.psnr is not None:
        lines.append(f"PSNR {r.psnr:.1f} dB")
    return lines


def reconstruct_files(
    image_path: str | os.PathLike[str],
    layers: str | Iterable[str],
    outdir: str | os.PathLike[str],
    opts: RunOptions,
    mode: str = "content",
) -> list[Reconstruction]:
    """``minivgg reconstruct``: reconstructions of an image file, written as they finish.

    Every option is checked as ``minivgg transfer`` checks it, before any work; the image is
    resized to ``opts.size``; each layer's image goes to ``outdir/<layer>.png``, then all of them
    to ``outdir/sheet.png``.

    Parameters
    ----------
    image_path : str or os.PathLike
    layers : str or iterable of str
        As ``parse_layers`` takes them.
    outdir : str or os.PathLike
        Created if missing.
    opts : RunOptions
        ``size``, ``iters``, ``seed``, ``weights``...; ``init``: "noise" (default) or an image path.
    mode : {"content", "style"}

    Returns
    -------
    list of Reconstruction

    Raises
    ------
    UserError
        A bad mode, layer, init, option or path, or a non-finite loss.

    Examples
    --------
    >>> import os, tempfile
    >>> from PIL import Image
    >>> from minivgg.network.vgg import random_vgg
    >>> opts = RunOptions(output=None, size=16, iters=2, quiet=True,
    ...                   load_network=lambda arch, **kw: random_vgg(arch))  # no weights needed
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     Image.new("RGB", (20, 16), (200, 40, 90)).save(os.path.join(tmp, "in.png"))
    ...     out = os.path.join(tmp, "out")
    ...     results = reconstruct_files(os.path.join(tmp, "in.png"), "conv1_2", out, opts)
    ...     written = sorted(os.listdir(out))
    >>> written, results[0].image.shape
    (['conv1_2.png', 'sheet.png'], (13, 16, 3))
    """
    from tqdm import tqdm

    if mode not in MODES:
        raise UserError(f"unknown mode {mode!r}: expected {' or '.join(MODES)}")
    arch = PRESETS[PRESET].arch
    layers = parse_layers(arch, layers)
    init = opts.init or "noise"
    if init != "noise" and not os.path.isfile(init):
        raise UserError(f"--init must be noise or an image file; {init!r} is neither")
    overrides = layer_overrides(arch, max(layers, key=lambda t: tap_position(arch, t)), mode)
    if mode == "content":  # every layer at once: prepare then checks the memory for the deepest
        overrides["content_layers"] = tuple(layers)
    with output_folder(outdir) as folder:
        outputs = [folder / f"{layer}.png" for layer in layers] + [folder / "sheet.png"]
        for path in outputs:
            check_output_path(path, [image_path, None if init == "noise" else init])
        run = prepare(
            image_path,
            [image_path],
            dataclasses.replace(
                opts,
                output=str(outputs[-1]),
                preset=PRESET,
                init="random" if init == "noise" else init,
            ),
            overrides,
        )
        bar = tqdm(
            total=len(layers) * run.iters,
            disable=opts.quiet,
            unit="it",
            dynamic_ncols=True,
            file=sys.stderr,
            desc=f"reconstruct ({mode}) {run.content.shape[1]}x{run.content.shape[0]}",
        )

        def on_iteration(layer, it, loss):
            bar.set_postfix(layer=layer, loss=f"{loss:.4g}", refresh=False)
            bar.update(1)

        done = []

        def on_layer(r):
            done.append(r)
            bar.n = len(done) * run.iters  # a layer that converged early still counts in full
            bar.refresh()
            save_image(folder / f"{r.layer}.png", r.image)

        try:
            results = reconstruct(
                run.obj.net,
                run.content,
                layers,
                mode,
                run.iters,
                x0=run.x0,
                callback=on_iteration,
                on_layer=on_layer,
            )
        finally:
            bar.close()
        contact_sheet(
            outputs[-1],
            [(run.content, ["input", f"{run.content.shape[1]}x{run.content.shape[0]}"])]
            + [(r.image, caption(r)) for r in results],
            columns=_columns(len(results) + 1),
        )
    return results


def _columns(tiles: int) -> int:
    """One row up to 4 tiles, else two rows (at most 6 per row): the sheet stays readable when shrunk."""
    return tiles if tiles <= 4 else min(6, -(-tiles // 2))


__all__ = [
    "MODES",
    "Reconstruction",
    "reconstruct",
    "reconstruct_files",
    "layer_overrides",
    "style_layers_up_to",
    "psnr",
    "parse_layers",
]
