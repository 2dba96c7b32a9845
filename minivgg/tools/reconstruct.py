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

import numpy as np

from ..errors import UserError
from ..network.arch import canonical_tap, tap_position
from ..optim.drivers import NonFiniteError, lbfgs
from ..run.fsutil import check_output_path, output_folder
from ..run.image import save_image, to_uint8
from ..run.report import contact_sheet
from ..run.transfer import RunOptions, prepare
from ..style.memory import lbfgs_history
from ..style.objective import Objective
from ..style.presets import PRESETS

MODES = ("content", "style")
PRESET = "gatys"  # VGG16, average pooling, ½Σ(F−P)² content, Σ(G−A)²/(4C²M²) style


@dataclasses.dataclass
class Reconstruction:
    """One layer's result: the image (H, W, 3) float64 in 0..255, the final loss, the L-BFGS
    iterations run, the seconds, and (content mode) the PSNR in dB against the input."""

    layer: str
    mode: str
    image: np.ndarray
    loss: float
    iterations: int
    seconds: float
    psnr: float | None = None


def style_layers_up_to(arch: str, layer: str, preset: str = PRESET) -> tuple:
    """The preset's style layers at or before ``layer`` in the network, plus ``layer`` itself when it is not one."""
    depth = tap_position(arch, layer)
    taps = [t for t in PRESETS[preset].style_layers if tap_position(arch, t) <= depth]
    if canonical_tap(arch, layer) not in {canonical_tap(arch, t) for t in taps}:
        taps.append(layer)
    return tuple(taps)


def layer_overrides(arch: str, layer: str, mode: str) -> dict:
    """The ``Objective`` overrides of one reconstruction: only ``layer``'s content term, or only the
    style terms of ``style_layers_up_to(layer)`` with equal weights; no TV."""
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


def psnr(a, b) -> float:
    """Peak signal-to-noise ratio in dB of two (H, W, 3) images in 0..255 (both rounded to uint8 first)."""
    mse = float(np.mean((to_uint8(a).astype(np.float64) - to_uint8(b).astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def reconstruct(
    net,
    image,
    layers,
    mode: str = "content",
    iters: int = 200,
    x0=None,
    seed: int = 0,
    callback=None,
    on_layer=None,
) -> list[Reconstruction]:
    """Reconstruct ``image`` ((H, W, 3) uint8 RGB) from each of ``layers`` in turn; one ``Reconstruction`` each.

    Every layer starts from the same ``x0`` ((H, W, 3) pixels; default uniform noise in [0, 255)
    from ``seed``) and runs ``iters`` L-BFGS-B iterations within [0, 255]. ``callback(layer,
    iteration, loss)`` follows every iteration, ``on_layer(result)`` every finished layer.
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


def parse_layers(arch: str, text) -> list[str]:
    """``"conv1_2, block4_conv2"`` (or a list) -> the layer names, each checked, duplicates dropped."""
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
    image_path, layers, outdir, opts: RunOptions, mode: str = "content"
) -> list[Reconstruction]:
    """``minivgg reconstruct``: reconstructions of the image at ``opts.size`` from each layer, written to
    ``outdir/<layer>.png`` as they finish, then ``outdir/sheet.png``. ``opts.init`` is ``noise`` (default)
    or an image path; every other option is checked as ``minivgg transfer`` checks it, before any work."""
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
