"""Memory planning: estimate a run's peak before allocating anything, and size L-BFGS's history.

The lean objective path (``VGG.loss_and_input_grad``) peaks at about three activation-sized buffers of
the widest tapped layer (a conv's input and output plus the first style tap's gradient; two once that
gradient is recomputed in the backward pass, on large maps) plus the bit-packed ReLU masks; L-BFGS
adds about ``(2m + 9)·n`` doubles for ``n`` variables (scipy's workspace, or the in-house L-BFGS's
vectors above ``optim.SCIPY_BOUNDS_MAX``). The numbers were fitted to measured peak RSS (``bench/``);
they err on the high side (a 4096² gatys transfer: estimated 17.5 GiB, measured 16.8 GiB in
``bench/transfer_4096.md``).
"""
from __future__ import annotations

import os

from .arch import BLOCK_CHANNELS, block_of, deepest, layer_sequence

# ReLU masks of at least this many elements are bit-packed (8x smaller, ~free next to a conv).
PACK_MASKS_FROM = 1 << 22
# First-layer tap gradients of at least this many elements are recomputed in the backward pass
# (64 channels at 1024²: 256 MB saved at the peak for ~2% more time). Both are ``VGG`` fields.
RECOMPUTE_GRAD_FROM = 1 << 26
_BASELINE = 400 * 2**20       # interpreter, libraries, weights and their Winograd transforms, bands
_HISTORY_BUDGET = 2 * 2**30   # bytes of L-BFGS (s, y) pairs we allow before shortening the history


def lbfgs_history(n_pixels: int, default: int = 10) -> int:
    """L-BFGS history length m for an image of ``n_pixels``: 10, fewer (≥ 3) when 2·m·3n doubles exceed 2 GiB."""
    per_pair = 2 * 3 * n_pixels * 8
    return max(3, min(default, _HISTORY_BUDGET // max(1, per_pair)))


def estimate_bytes(arch: str, h: int, w: int, taps, optimizer: str = "lbfgs") -> int:
    """Estimated peak bytes of a run at (h, w) that taps ``taps`` (engine in float32)."""
    widest, masks = 3 * h * w, 0
    hh, ww = h, w
    for kind, name in layer_sequence(arch)[:deepest(arch, taps) + 1]:
        if kind == "pool":
            hh, ww = hh // 2, ww // 2
            continue
        size = BLOCK_CHANNELS[block_of(name) - 1] * hh * ww
        widest = max(widest, size)
        if kind == "relu":
            masks += size // 8 if size >= PACK_MASKS_FROM else size
    n = 3 * h * w
    # scipy: (2m + 5)·n doubles of workspace plus x, g and copies; the in-house L-BFGS (large n):
    # x, g, the free mask, the direction, the trial point and its gradient beside 2(m + 1) pairs.
    opt = (2 * lbfgs_history(h * w) + 9) * n * 8 if optimizer.startswith("lbfgs") else 6 * n * 8
    # three maps of the widest layer at once (a conv's input and output and the first tap's
    # gradient), two when that gradient is recomputed in the backward pass instead
    maps = 2 if widest >= RECOMPUTE_GRAD_FROM else 3
    # the objective's own float64 pixel arrays (x, the network input, the gradient, TV's
    # differences) and the content target: about 8·n doubles (fitted: bench/transfer_4096.md)
    objective = 8 * n * 8
    return int(maps * widest * 4 + masks + _BASELINE + opt + objective)


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


def largest_fitting_size(arch: str, h: int, w: int, taps, budget: int, optimizer: str = "lbfgs") -> int:
    """The largest longest side (same aspect) whose estimate fits in ``budget`` bytes (at least 16)."""
    longest = max(h, w)
    lo, hi = 16, longest
    while lo < hi:
        mid = (lo + hi + 1) // 2
        s = mid / longest
        if estimate_bytes(arch, max(1, round(h * s)), max(1, round(w * s)), taps, optimizer) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo
