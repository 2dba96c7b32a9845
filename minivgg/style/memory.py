"""Memory planning: estimate a run's peak before allocating anything, and size L-BFGS's history.

The lean objective path (``VGG.loss_and_input_grad``) peaks at about three activation-sized buffers of
the widest tapped layer (a conv's input and output plus the first style tap's gradient; two once that
gradient is recomputed in the backward pass, on large maps) plus the bit-packed ReLU masks; L-BFGS
adds about ``(2m + 9)·n`` doubles for ``n`` variables with a float64 history (scipy's workspace, or the
in-house L-BFGS's vectors), and ``(2m + 1)·n`` floats beside 3n doubles with the in-house float32
history of huge images. A tiled run (``tiling.py``) holds the network's peak of one tile's window
only, beside the whole-image arrays: the gradient, the start image and its copy, the content
targets, and the images (the loaded uint8 ones, which the objective holds as they are; float64
ones after the colour controls, ``image_itemsize``). The numbers were fitted to measured peak RSS
(``bench/``); they err on the high side (a 4096² gatys transfer: estimated 17.5 GiB, measured
16.8 GiB in ``bench/transfer_4096.md``, before the float32 history).
"""

from __future__ import annotations

import os

from ..errors import UserError
from ..network.arch import (
    BLOCK_CHANNELS,
    block_of,
    canonical_tap,
    deepest,
    layer_sequence,
    tap_pixels,
)
from ..network.vgg import PACK_MASKS_FROM, RECOMPUTE_GRAD_FROM
from .tiling import halo_and_alignment

_BASELINE = 400 * 2**20  # interpreter, libraries, weights and their Winograd transforms, bands
_HISTORY_BUDGET = 2 * 2**30  # bytes of L-BFGS (s, y) pairs we allow before shortening the history
_TILED_HEADROOM = 1.05  # the tiled estimate's margin over the arrays it lists (bench/tiling.json)


def lbfgs_history_dtype(n_pixels: int, default: int = 10) -> str:
    """The dtype of L-BFGS's (s, y) pairs: float64 while ``default`` pairs of them fit in 2 GiB
    (up to about 2115² pixels), float32 above (the in-house L-BFGS, which runs every problem that large)."""
    return "float64" if default * 2 * 3 * n_pixels * 8 <= _HISTORY_BUDGET else "float32"


def lbfgs_history(n_pixels: int, default: int = 10) -> int:
    """L-BFGS history length m for an image of ``n_pixels``: 10, fewer when 2·m·3n values of
    ``lbfgs_history_dtype`` exceed 2 GiB (at least 3 float64 pairs, at least 2 float32 ones)."""
    itemsize = 8 if lbfgs_history_dtype(n_pixels, default) == "float64" else 4
    return max(
        3 if itemsize == 8 else 2,
        min(default, _HISTORY_BUDGET // max(1, 2 * 3 * n_pixels * itemsize)),
    )


def optimizer_bytes(n_pixels: int, optimizer: str = "lbfgs", history: int = 10) -> int:
    """The optimiser's own bytes for an image of ``n_pixels`` (x, gradient, ``history`` pairs at most,
    workspace)."""
    n = 3 * n_pixels
    if not optimizer.startswith("lbfgs"):
        return 6 * n * 8
    m = lbfgs_history(n_pixels, history)
    if lbfgs_history_dtype(n_pixels, history) == "float64":
        # scipy: (2m + 5)·n doubles of workspace plus x, g and copies; the in-house L-BFGS:
        # x, g, the free mask, the direction, the trial point and its gradient beside 2(m + 1) pairs
        return (2 * m + 9) * n * 8
    # the in-house L-BFGS, float32 history, during an evaluation: x, g and the trial point in float64,
    # the direction and the m pairs in float32, the free mask in bytes (the trial point's gradient is
    # the objective's; a new pair is built after the evaluation, when the direction is gone)
    return 3 * n * 8 + (2 * m + 1) * n * 4 + n


def _network_bytes(arch: str, h: int, w: int, taps, maps: int | None = None) -> int:
    """The lean forward/backward's peak on an (h, w) input: ``maps`` of the widest layer at once (default:
    3, or 2 where the first tap's gradient is recomputed) and the ReLU masks."""
    widest, masks = 3 * h * w, 0
    hh, ww = h, w
    for kind, name in layer_sequence(arch)[: deepest(arch, taps) + 1]:
        if kind == "pool":
            hh, ww = hh // 2, ww // 2
            continue
        size = BLOCK_CHANNELS[block_of(name) - 1] * hh * ww
        widest = max(widest, size)
        if kind == "relu":
            masks += size // 8 if size >= PACK_MASKS_FROM else size
    # three maps of the widest layer at once (a conv's input and output and the first tap's
    # gradient), two when that gradient is recomputed in the backward pass instead
    maps = maps or (2 if widest >= RECOMPUTE_GRAD_FROM else 3)
    return maps * widest * 4 + masks


def _channels(arch: str, tap: str) -> int:
    name = canonical_tap(arch, tap)
    return 3 if name == "input" else BLOCK_CHANNELS[block_of(name) - 1]


def estimate_bytes(
    arch: str,
    h: int,
    w: int,
    taps,
    optimizer: str = "lbfgs",
    tile_size: int | None = None,
    content_taps=(),
    image_itemsize: int = 1,
    history: int = 10,
) -> int:
    """Estimated peak bytes of a run at (h, w) that taps ``taps`` (engine in float32), on tiles of
    ``tile_size`` when given (``content_taps``: the content targets, whole-image arrays even then).
    ``image_itemsize``: bytes per value of the content and style images the objective holds beside the
    loaded uint8 ones (1: the same arrays; 9: float64 ones after colour matching or luminance)."""
    n = 3 * h * w
    opt = optimizer_bytes(h * w, optimizer, history)
    if tile_size is None or (h <= tile_size and w <= tile_size):
        # the objective's own float64 pixel arrays (x, the network input, the gradient, TV's
        # differences) and the content target: about 8·n doubles (fitted: bench/transfer_4096.md)
        return int(_network_bytes(arch, h, w, taps) + _BASELINE + opt + 8 * n * 8)
    halo, align = halo_and_alignment(arch, taps)
    side = max(align, tile_size // align * align) + 2 * halo
    targets = sum(
        _channels(arch, t) * tap_pixels(arch, t, h, w) * 4 for t in dict.fromkeys(content_taps)
    )
    # a window holds four maps of its widest layer at the first style tap (the map, its cotangent, the
    # owned features' copy and their product with dL/dG: bench/results.md, "Tiled evaluation"); beside
    # it the whole-image arrays: the gradient, the start image and the progress's copy of x (float64),
    # the content target, the content and style images (uint8, or what the colour controls made); and
    # _TILED_HEADROOM for what no list has (heap fragmentation, the interpreter's transients): the sum
    # alone came within 0.4% of the measured peak at 8192² and 2.5% under it at 2048²
    listed = (
        _network_bytes(arch, min(h, side), min(w, side), taps, maps=4)
        + _BASELINE
        + opt
        + 3 * n * 8
        + targets
        + 2 * n * image_itemsize
    )
    return int(listed * _TILED_HEADROOM)


def available_bytes() -> int | None:
    """Memory available to this process now (Linux MemAvailable), or None when unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def largest_fitting_size(
    arch: str,
    h: int,
    w: int,
    taps,
    budget: int,
    optimizer: str = "lbfgs",
    tile_size: int | None = None,
    content_taps=(),
    image_itemsize: int = 1,
) -> int:
    """The largest longest side (same aspect) whose estimate fits in ``budget`` bytes (at least 16)."""
    longest = max(h, w)
    lo, hi = 16, longest
    while lo < hi:
        mid = (lo + hi + 1) // 2
        s = mid / longest
        if (
            estimate_bytes(
                arch,
                max(1, round(h * s)),
                max(1, round(w * s)),
                taps,
                optimizer,
                tile_size,
                content_taps,
                image_itemsize,
            )
            <= budget
        ):
            lo = mid
        else:
            hi = mid - 1
    return lo


def largest_fitting_tile(
    arch: str,
    h: int,
    w: int,
    taps,
    budget: int,
    optimizer: str = "lbfgs",
    content_taps=(),
    image_itemsize: int = 1,
) -> int | None:
    """The largest tile size (a multiple of the taps' alignment, below the image's longest side) whose
    tiled estimate fits in ``budget`` bytes, or None when not even the smallest tile does."""
    _, align = halo_and_alignment(arch, taps)
    lo, hi = 0, (max(h, w) - 1) // align  # in units of the alignment; 0: none fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if (
            estimate_bytes(arch, h, w, taps, optimizer, mid * align, content_taps, image_itemsize)
            <= budget
        ):
            lo = mid
        else:
            hi = mid - 1
    return lo * align or None


def check_fits(
    settings: dict,
    hw: tuple[int, int],
    optimizer: str,
    suggest,
    what: str = "run",
    tile_size: int | None = None,
    image_itemsize: int = 1,
) -> None:
    """UserError, before anything is allocated, when a run at ``hw`` of the resolved ``settings`` would not
    fit in 90% of the memory available now; it names the largest ``--tile-size`` that fits, if one does,
    and ``suggest(longest side that fits)`` (which flag to lower)."""
    content_taps = list(settings["content_layers"]) if what == "run" else []
    taps = content_taps + list(settings["style_layers"])
    arch = settings["arch"]
    need, have = (
        estimate_bytes(
            arch, *hw, taps, optimizer, tile_size, content_taps, image_itemsize, settings["history"]
        ),
        available_bytes(),
    )
    if have is None or need <= 0.9 * have:
        return
    budget = int(0.9 * have)
    fits = largest_fitting_size(
        arch, *hw, taps, budget, optimizer, tile_size, content_taps, image_itemsize
    )
    tile = largest_fitting_tile(arch, *hw, taps, budget, optimizer, content_taps, image_itemsize)
    tiled = (
        ""
        if tile is None
        else (
            f"--tile-size {tile} (about "
            f"{estimate_bytes(arch, *hw, taps, optimizer, tile, content_taps, image_itemsize, settings['history']) / 2**30:.1f} GiB) or "
        )
    )
    raise UserError(
        f"a {hw[1]}x{hw[0]} {what} needs about {need / 2**30:.1f} GiB but {have / 2**30:.1f} GiB "
        f"are available; use {tiled}{suggest(fits)} (or free memory)"
    )
