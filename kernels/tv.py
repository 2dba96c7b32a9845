"""The TV loss's arithmetic shared by the CPU (Numba) and CUDA kernels (``cpu.tv_loss``, ``cuda_ops.tv_loss``).

Plain Python functions that each backend compiles for itself (``njit`` / ``cuda.jit(device=True)``),
following ``minivgg.style.losses.tv_loss`` (the reference) operation by operation. Constants arrive as
arguments of the array's dtype: a literal would promote float32 arithmetic to float64 when compiled.
"""

from __future__ import annotations

# Codes of losses.TV_KINDS in the kernels.
TV_CODES = {"squared": 0, "mean_squared": 1, "mean_abs": 2, "abs255": 3, "harvard": 4, "keras": 5}


def weights(kind: str, h: int, w: int, c: int):
    """``(kv, kh)``: the weight of each vertical and each horizontal difference of an (h, w, c) image."""
    if kind in ("mean_squared", "mean_abs"):
        return 0.5 / max(1, (h - 1) * w * c), 0.5 / max(1, h * (w - 1) * c)
    if kind == "abs255":
        return 1.0 / 255.0, 1.0 / 255.0
    return 1.0, 1.0


def dphi(d, code, one):
    """Derivative of the neighbour kinds' penalty d² (codes 0, 1) or |d|: 2d, or sign(d) with sign(0) = 0."""
    if code <= 1:
        return d + d
    if d > 0:
        return one
    if d < 0:
        return -one
    return d - d


def corner(x, i, j, c, code, c125, p25):
    """At a corner (i, j) of the keras/harvard kinds: ``(gv, gh, s)`` with gv = 2·ds·dv, gh = 2·ds·dh and
    s = dv² + dh² (harvard: ds = 1; keras: ds = 1.25·s^0.25)."""
    dv = x[i, j, c] - x[i + 1, j, c]
    dh = x[i, j, c] - x[i, j + 1, c]
    s = dv * dv + dh * dh
    if code == 4:
        return dv + dv, dh + dh, s
    ds = c125 * s**p25
    two_ds = ds + ds
    return two_ds * dv, two_ds * dh, s
