"""Localisation by bisection: which elements of the input a failing (or kinked) directional check
comes from, without ever forming the Jacobian.

``⟨g, v⟩ = Σ_b ⟨g, v ⊙ m_b⟩`` and the finite difference is linear in the direction too (to first
order), so a block ``b`` is re-tested along ``v ⊙ m_b`` alone. Blocks are boxes (optionally cut to
the border or the interior of the spatial axes first), halved along axis 0, then 1, … — for NCHW
that is batch → channel → row bands → columns. A failing block recurses into its failing half;
when both halves fail the fault is spread and both are kept while fewer than ``max_blocks`` are
open, else the block stays whole along that axis and moves on to the next. A fault in k elements
costs O(k log n) evaluations; a whole wrong row costs O(log n) plus a few per open block.
"""

from __future__ import annotations

import dataclasses
from collections import deque

import numpy as np


def spatial_axes(shape) -> tuple:
    """The axes whose first/last index is a "border": H, W of NCHW and of HWC images (3-D with a
    last axis of at most 4), the last two of CHW, every axis of 1-D and 2-D arrays."""
    nd = len(shape)
    if nd >= 4:
        return (nd - 2, nd - 1)
    if nd == 3:
        return (0, 1) if shape[2] <= 4 else (1, 2)
    return tuple(range(nd))


def border_mask(shape) -> np.ndarray:
    """True on the first and last index of every spatial axis (those with at least 3 entries)."""
    mask = np.zeros(shape, dtype=bool)
    for ax in spatial_axes(shape):
        if shape[ax] >= 3:
            idx: list[slice | int] = [slice(None)] * len(shape)
            for edge in (0, shape[ax] - 1):
                idx[ax] = edge
                mask[tuple(idx)] = True
    return mask


@dataclasses.dataclass
class Block:
    """A box ``rect`` (one (lo, hi) per axis) cut to ``region`` (a mask, or None for all), the next
    axis to halve (-1: split border from interior first), and the test's state for it."""

    rect: tuple
    region: np.ndarray | None
    axis: int
    state: object

    def mask(self, shape) -> np.ndarray:
        m = np.zeros(shape, dtype=bool)
        m[tuple(slice(lo, hi) for lo, hi in self.rect)] = True
        return m if self.region is None else m & self.region


def bisect(shape, root_state, split, bad, max_blocks: int = 8, max_forwards: int = 400):
    """Blame elements: ``split(parent_state, left_mask, right_mask) -> (left, right, forwards)``
    tests two halves, ``bad(state)`` says whether one still fails. Returns
    ``(suspects, forwards)``."""
    shape = tuple(shape)
    border = border_mask(shape)
    can_cut = border.any() and not border.all()
    root = Block(tuple((0, n) for n in shape), None, -1 if can_cut else 0, root_state)
    open_, final, spent = deque([root]), [], 0
    while open_:
        blk = open_.popleft()
        if blk.axis >= len(shape) or spent >= max_forwards:
            final.append(blk)
            continue
        if blk.axis == -1:
            halves = [Block(blk.rect, border, 0, None), Block(blk.rect, ~border, 0, None)]
        else:
            lo, hi = blk.rect[blk.axis]
            if hi - lo == 1:
                open_.appendleft(dataclasses.replace(blk, axis=blk.axis + 1))
                continue
            mid = (lo + hi) // 2
            halves = [
                dataclasses.replace(
                    blk, rect=blk.rect[: blk.axis] + ((a, b),) + blk.rect[blk.axis + 1 :]
                )
                for a, b in ((lo, mid), (mid, hi))
            ]
        masks = [h.mask(shape) for h in halves]
        if not masks[0].any() or not masks[1].any():  # one half is empty: the other is the parent
            keep = halves[0] if masks[0].any() else halves[1]
            open_.appendleft(dataclasses.replace(keep, state=blk.state))
            continue
        left, right, cost = split(blk.state, masks[0], masks[1])
        spent += cost
        halves[0].state, halves[1].state = left, right
        failing = [h for h in halves if bad(h.state)]
        if not failing:  # neither half alone fails: the fault needs both, blame the whole block
            final.append(blk)
        elif len(failing) == 1:
            open_.appendleft(failing[0])
        elif len(open_) + len(final) + 2 <= max_blocks:
            open_.extend(failing)
        else:  # spread along this axis and no room to follow both halves: keep it whole here
            open_.append(dataclasses.replace(blk, axis=blk.axis + 1))
    suspects = np.zeros(shape, dtype=bool)
    for blk in final:
        suspects |= blk.mask(shape)
    return suspects, spent


def _runs(values) -> str:
    """Sorted integers as index ranges: ``[0, 1, 2, 7]`` -> ``0:3,7``."""
    out: list[str] = []
    ints = [int(v) for v in values]
    start = 0
    for i in range(1, len(ints) + 1):
        if i == len(ints) or ints[i] != ints[i - 1] + 1:
            lo, hi = ints[start], ints[i - 1]
            out.append(str(lo) if lo == hi else f"{lo}:{hi + 1}")
            start = i
    return ",".join(out)


def describe(mask: np.ndarray) -> str:
    """``mask`` as index ranges per axis, e.g.
    ``96 of 384 elements, [0:2, 0:3, 7, 0:8] (all of that box)``."""
    count = int(mask.sum())
    if count == 0:
        return "no elements"
    if mask.ndim == 0:
        return "the (scalar) element"
    if count <= 4:
        where = "; ".join(
            "[" + ", ".join(str(int(i)) for i in idx) + "]" for idx in zip(*np.nonzero(mask))
        )
        return f"{count} of {mask.size} elements: {where}"
    axes = [
        np.nonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != ax)))[0]
        for ax in range(mask.ndim)
    ]
    box = int(np.prod([len(a) for a in axes]))
    text = f"{count} of {mask.size} elements, [{', '.join(_runs(a) for a in axes)}]"
    text += " (all of that box)" if box == count else f" ({count} of that box's {box})"
    border = border_mask(mask.shape)
    if border.any() and not border.all() and not (mask & ~border).any():
        text += ", all on the border"
    return text
