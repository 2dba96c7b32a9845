"""Exact tiled evaluation: the objective of ``objective.py`` on tiles, with the untiled numbers.

Geometry. A feature at a tap of stride s (2 to the number of pools up to it) at grid position p
reads the input pixels ``[s·p − a, s·p + s − 1 + a]``: each 3x3 conv widens the reach a by the
stride it runs at, each 2x2 pool doubles the stride (``arch.receptive_field``: size = s + 2a). A
tile owns a core of T×T pixels, T a multiple of the alignment S (the deepest tap's stride), so
every tap's grid splits along the same lines and every pool of a tile pairs the pixels the whole
image's pools pair. It runs on its window: the core and a halo of ``h = ⌈a/S⌉·S`` pixels on each
side, cut at the image's border. Every feature the tile owns then sees its whole receptive field
as in the untiled network — real pixels inside the image, and at a true border the same zero
padding of every conv — so it is the untiled feature, to the rounding of the arithmetic; only the
halo's own features differ, and no loss reads them. VGG16 to ``block5_conv1``: field 132, S = 16,
a = 58, h = 64; to ``block5_pool`` (cntk): field 212, S = 32, a = 90, h = 96.

Two passes per evaluation. Pass 1 runs each tile forward to the deepest style tap and sums, per
style tap and mask, ``Q = Σ m²(F − c)(F − c)ᵀ``, ``q = Σ m²(F − c)``, ``w = Σ m²`` and ``ΣF`` over
the owned features (m = 1 without masks; c, the first tile's mean, only for centred Grams, keeps
the sums well conditioned): enough for every Gram variant, plain, scaled, centred and guided. The
global Grams give the style values and ``dE/dG``. Pass 2 recomputes each tile, puts each owned
feature's cotangent at every tap (content and style; zero in the halo), back-propagates through
the tile and adds the gradient of its whole window: halo pixels feed owned features too. TV is
pixels only: it runs over the whole image, in bands of rows. Targets are built tile by tile the
same way, so no whole-image activation is ever held except the content targets themselves.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import numbers
from typing import Any

import numpy as np

from ..engine import arena as arenas
from ..engine.backend import get_array_module, to_host
from ..errors import UserError
from ..network.arch import layer_sequence, receptive_field, tap_pixels, tap_position
from . import losses
from .presets import style_norm

# Elements of x per band of rows in ``tv_into`` (32 MiB of float64 per temporary).
TV_BAND_ELEMENTS = 1 << 22


def tap_stride(arch: str, tap: str) -> int:
    """Input pixels between neighbouring features of ``tap``: 2 to the number of pools up to it."""
    return 2 ** sum(
        1 for kind, _ in layer_sequence(arch)[: tap_position(arch, tap) + 1] if kind == "pool"
    )


def halo_and_alignment(arch: str, taps) -> tuple[int, int]:
    """``(halo, alignment)`` in input pixels for tiles that evaluate ``taps`` exactly.

    The alignment S is the deepest tap's stride; a feature reaches ``a = (size − S)/2`` pixels beyond
    its own S×S block (``receptive_field``), and the halo is a rounded up to a multiple of S, so that
    window origins stay aligned. VGG16 to block5_conv1: (64, 16); to block5_pool: (96, 32).
    """
    size, align = receptive_field(arch, taps)
    return -(-((size - align) // 2) // align) * align, align


def check_tile_size(tile_size, arch: str, taps) -> int:
    """``tile_size`` rounded down to a multiple of the alignment; UserError unless a whole number >= it."""
    _, align = halo_and_alignment(arch, taps)
    whole = isinstance(tile_size, numbers.Integral) or (
        isinstance(tile_size, float) and tile_size.is_integer()
    )
    if isinstance(tile_size, bool) or not whole or tile_size < align:
        raise UserError(
            f"the tile size must be a whole number of pixels, at least {align} (the stride of the "
            f"deepest layer), got {tile_size!r}"
        )
    return int(tile_size) // align * align


def validate_tile_size(tile_size, settings: dict) -> None:
    """``check_tile_size`` for the taps of resolved preset ``settings``; None (untiled) passes."""
    if tile_size is not None:
        check_tile_size(
            tile_size,
            settings["arch"],
            list(settings["content_layers"]) + list(settings["style_layers"]),
        )


def spans(n: int, tile: int, halo: int) -> list[tuple[int, int, int, int]]:
    """The tiles along a side of n pixels: ``(core start, core end, window start, window end)``; cores of
    ``tile`` pixels (the last takes the rest), windows ``halo`` wider on each side, cut at 0 and n."""
    return [
        (c0, min(n, c0 + tile), max(0, c0 - halo), min(n, c0 + tile + halo))
        for c0 in range(0, n, tile)
    ]


@dataclasses.dataclass(frozen=True)
class Tile:
    """One tile: ``rows`` and ``cols`` are ``spans`` entries (core start, core end, window start, window end)."""

    rows: tuple
    cols: tuple

    @property
    def window(self):
        """The window's pixels, as slices of the image."""
        return slice(self.rows[2], self.rows[3]), slice(self.cols[2], self.cols[3])

    def owned(self, stride: int):
        """``(local, whole)``: the owned features of a tap of ``stride`` as (row, col) slices of the window's
        grid and of the whole image's grid (a core edge is aligned, the last one is the image's edge)."""
        local, whole = [], []
        for c0, c1, w0, _ in (self.rows, self.cols):
            a, b = c0 // stride, c1 // stride
            whole.append(slice(a, b))
            local.append(slice(a - w0 // stride, b - w0 // stride))
        return tuple(local), tuple(whole)

    @property
    def geometry(self) -> tuple:
        """Core and window end relative to the window start, rows then columns: tiles of equal geometry
        allocate the same arrays (with cores aligned, every tap's owned block has the same size)."""
        return tuple(v - w0 for c0, c1, w0, w1 in (self.rows, self.cols) for v in (c0, c1, w1))

    def owns_nothing(self, stride: int) -> bool:
        return any(c1 // stride <= c0 // stride for c0, c1, _, _ in (self.rows, self.cols))


def grid(h: int, w: int, tile: int, halo: int) -> list[Tile]:
    """Every tile of an (h, w) image, row by row."""
    return [Tile(r, c) for r in spans(h, tile, halo) for c in spans(w, tile, halo)]


class GramSums:
    """One tap's Gram sums over the owned features of the tiles, for each of its masks (None: unmasked):
    ``Q = Σ m²(F − c)(F − c)ᵀ``, ``q = Σ m²(F − c)``, ``w = Σ m²`` (float64); for centred Grams also ΣF
    and the element count, with the shift c the first tile's mean."""

    def __init__(self, n_masks: int, center: bool):
        self.center, self.total, self.count = center, 0.0, 0
        self.c: float | None = None  # the shift, set by the first tile
        # per mask: 0.0 until the first tile, then (C, C) and (C,) float64 arrays; Σ m² stays a float
        self.Q: list[Any] = [0.0] * n_masks
        self.q: list[Any] = [0.0] * n_masks
        self.w = [0.0] * n_masks

    def add(self, X, masks) -> None:
        """Add owned features X (C, m), which are consumed, with one (1, m) mask or None per mask."""
        xp = get_array_module(X)
        if self.center:
            if self.c is None:
                self.c = float(X.mean(dtype=xp.float64))
            self.total += float(X.sum(dtype=xp.float64))
            self.count += X.size
            X -= X.dtype.type(self.c)
        for k, m in enumerate(masks):
            Xm = X if m is None else X * m
            self.Q[k] = self.Q[k] + losses.gram_matrix(xp.ascontiguousarray(Xm)).astype(xp.float64)
            if self.center:
                self.q[k] = self.q[k] + (Xm if m is None else Xm * m).sum(axis=1, dtype=xp.float64)
            self.w[k] += X.shape[1] if m is None else float((m * m).sum(dtype=xp.float64))

    def centred(self, k: int):
        """``(Σ m²(F − μ)(F − μ)ᵀ, μ, Σ m²(F − μ))`` for mask k; μ is the mean of all of F (0 and None uncentred)."""
        if not self.center:
            return self.Q[k], 0.0, None
        mu = self.total / self.count
        assert self.c is not None  # set by the first tile, and count > 0
        d = mu - self.c
        q = self.q[k]
        return self.Q[k] - d * (q[:, None] + q[None, :]) + d * d * self.w[k], mu, q - d * self.w[k]


def _owned_matrix(F, local):
    """The owned features of a tile's map F (1, C, h, w) as a fresh (C, m) array (from the arena, if any)."""
    owned = F[0][:, local[0], local[1]]
    out = arenas.empty(owned.shape, F.dtype, get_array_module(F))
    out[...] = owned
    return out.reshape(F.shape[1], -1)


def _mask_part(mask, whole, like):
    """The owned part of a whole-grid mask as a (1, m) array beside ``like`` (None stays None)."""
    if mask is None:
        return None
    return get_array_module(like).asarray(
        np.ascontiguousarray(mask[whole]).reshape(1, -1), dtype=like.dtype
    )


def _session(arena, pass_name, tile, xp):
    """``arena``'s session for one tile of one pass (keyed by the pass and the tile's geometry), or none."""
    if arena is None or xp is not np:
        return contextlib.nullcontext()
    return arena.session((pass_name,) + tile.geometry)


def _sum_tiles(net, image, tiles, pooling, sums, masks, content=None, arena=None):
    """Pass 1 over ``tiles`` of ``image`` (H, W, 3): each style tap's owned features into ``sums[tap]`` with
    ``masks[tap]`` (whole-grid masks or None, one per sum), each content tap's into the whole map ``content[tap]``.
    With ``arena`` (the objective's) each tile's large arrays come from its plan for that window shape."""
    content = {} if content is None else content
    h, w = image.shape[:2]
    strides = {t: tap_stride(net.arch, t) for t in list(sums) + list(content)}
    for tile in tiles:

        def fn(t, F, tile=tile):
            s = strides[t]
            if tile.owns_nothing(s):
                return
            local, whole = tile.owned(s)
            if t in content:
                if content[t] is None:
                    content[t] = get_array_module(F).empty(
                        (1, F.shape[1], h // s, w // s), dtype=F.dtype
                    )
                content[t][0][:, whole[0], whole[1]] = F[0][:, local[0], local[1]]
            if t in sums:
                sums[t].add(_owned_matrix(F, local), [_mask_part(m, whole, F) for m in masks[t]])

        window = image[tile.window]
        with _session(arena, "sums", tile, get_array_module(image)):
            net.visit(
                net.preprocess(window), list(dict.fromkeys(list(sums) + list(content))), fn, pooling
            )
    return content


class Tiling:
    """The tile grid of one objective: its taps' halo and alignment and the validated tile size ``tile``."""

    def __init__(self, arch: str, taps, tile_size):
        self.halo, self.align = halo_and_alignment(arch, taps)
        self.tile = check_tile_size(tile_size, arch, taps)

    def tiles(self, h: int, w: int) -> list[Tile]:
        return grid(h, w, self.tile, self.halo)

    def splits(self, h: int, w: int) -> bool:
        """True when an (h, w) image needs more than one tile (one tile is the untiled evaluation)."""
        return h > self.tile or w > self.tile

    def features(self, net, image, content_taps, style_taps, gram: str, pooling: str, masks=None):
        """``(content features {tap: (1, C, H_l, W_l)}, Grams {tap: (C, C)})`` of one image, tile by tile:
        the preset's Gram ``gram``, guided by ``masks[tap]`` (whole-grid) when given, in the engine's dtype."""
        scale_of, center = losses.GRAMS[gram]
        sums = {t: GramSums(1, center) for t in style_taps}
        per_tap = {t: [None if masks is None else masks[t]] for t in style_taps}
        content = _sum_tiles(
            net,
            image,
            self.tiles(*image.shape[:2]),
            pooling,
            sums,
            per_tap,
            {t: None for t in content_taps},
        )
        grams = {}
        for t, sm in sums.items():
            C, M = sm.Q[0].shape[0], tap_pixels(net.arch, t, *image.shape[:2])
            k = scale_of(C, M) / _area(per_tap[t][0])
            grams[t] = (sm.centred(0)[0] * k).astype(net.dtype)
        return content, grams

    def value_and_grad(self, obj, x):
        """``(parts {"content", "style", "tv"}, dL/dx)`` of ``obj`` (an ``Objective``) at x (H, W, 3) float64, in the
        two passes of the module docstring; the gradient is where x lives."""
        s, net = obj.settings, obj.net
        xp = get_array_module(x)
        content_w, style_w = obj.tap_weights()
        h, w = x.shape[:2]
        tiles = self.tiles(h, w)
        center = losses.GRAMS[s["gram"]][1]
        # one style term per region, or the one unmasked term
        regions = obj.regions or [(None, obj.style_targets)]
        sums = {
            t: GramSums(len(regions), center)
            for t in dict.fromkeys(t for t in obj.style_taps if style_w.get(t))
        }
        masks = {t: [None if m is None else m[t] for m, _ in regions] for t in sums}
        _sum_tiles(net, x, tiles, s["pooling"], sums, masks, arena=obj.arena)
        parts = {"content": 0.0, "style": 0.0}
        parts["style"], style = _style_terms(obj, sums, masks, style_w, (h, w))
        content_scale = _CONTENT_SCALE[s["content_norm"]]
        taps = [t for t in obj.taps if content_w.get(t) or style_w.get(t)]
        strides = {t: tap_stride(net.arch, t) for t in taps}
        grad = xp.zeros_like(x)
        for tile in tiles:

            def tap_loss(t, F, tile=tile):
                """The owned features' weighted content term and the cotangent of content and style."""
                if tile.owns_nothing(strides[t]):
                    return 0.0, None
                local, whole = tile.owned(strides[t])
                g = arenas.empty(F.shape, F.dtype, get_array_module(F))
                g.fill(0)
                Fo, go = F[0][:, local[0], local[1]], g[0][:, local[0], local[1]]
                value = 0.0
                if content_w.get(t):
                    P = obj.content_targets[t]
                    diff = arenas.empty(Fo.shape, F.dtype, get_array_module(F))
                    get_array_module(F).subtract(Fo, P[0][:, whole[0], whole[1]], out=diff)
                    k = content_w[t] * content_scale(P.size)
                    value = k * losses.sum_squares(diff)
                    diff *= diff.dtype.type(2 * k)
                    go += diff
                    del diff
                if t in style:
                    mu, terms = style[t]
                    X = _owned_matrix(F, local)
                    X -= X.dtype.type(mu)
                    for S, gbar, m in terms:
                        G = losses.matmul(
                            S, X, out=arenas.empty(X.shape, X.dtype, get_array_module(X))
                        )
                        if m is not None:
                            G *= _mask_part(m, whole, F) ** 2
                        G -= G.dtype.type(gbar)
                        go += G.reshape(go.shape)
                parts["content"] += value
                return value, g

            window = x[tile.window]
            with _session(obj.arena, "grad", tile, xp):
                _, gy = net.loss_and_input_grad(
                    net.preprocess(window), taps, tap_loss, s["pooling"]
                )
                gx = net.preprocess_backward(gy)
                grad[tile.window] += gx if get_array_module(gx) is xp else to_host(gx)
                del gy, gx
        obj.arena.drop_buffer()  # reused by all tiles of both passes; not held beyond them
        parts["tv"] = tv_into(x, s["tv"], s["tv_weight"], grad) if s["tv_weight"] else 0.0
        return parts, grad


# content norm -> its factor k from the number of elements of the whole tap (``losses.content_loss``)
_CONTENT_SCALE = {"half_sum": lambda n: 0.5, "sum": lambda n: 1.0, "mean": lambda n: 1.0 / n}


def _style_terms(obj, sums, masks, style_w, hw):
    """The style value and, per tap, ``(μ, [(S, ḡ, whole-grid mask or None) per term])`` from pass 1's sums:
    the cotangent of an owned feature column F_j is ``m_j² S (F_j − μ) − ḡ`` (μ = ḡ = 0 uncentred)."""
    s, net = obj.settings, obj.net
    scale_of, center = losses.GRAMS[s["gram"]]
    regions = obj.regions or [(None, obj.style_targets)]
    weights = obj.blend * len(obj.blend) if obj.regions else [1.0]
    value, style = 0.0, {}
    for t, sm in sums.items():
        C, M = sm.Q[0].shape[0], tap_pixels(net.arch, t, *hw)
        norm = style_norm(s["style_norm"], C, M, hw) * style_w[t]
        terms, mu = [], 0.0
        for k, ((_, targets), b) in enumerate(zip(regions, weights)):
            Gc, mu, r = sm.centred(k)
            scale = scale_of(C, M) / _area(masks[t][k])
            R = Gc * scale - targets[t].astype(np.float64)
            value += norm * b * float((R * R).sum())
            S = (R + R.T) * (2 * norm * b * scale)
            gbar = float(S.sum(axis=0) @ r) / (C * M) if center else 0.0
            terms.append((S.astype(net.dtype), gbar, masks[t][k]))
        style[t] = (mu, terms)
    return value, style


def _area(mask) -> float:
    """The guided Gram's normaliser: the mask's mean (1 unmasked); an empty mask gives an infinite area, a zero Gram."""
    if mask is None:
        return 1.0
    area = float(np.mean(mask))
    return area if area > 0 else math.inf


# ------------------------------------------------------------------------------------------ tv


def _square(xp, d):
    return d * d


def _twice(xp, d):
    return 2 * d


# kind -> (the term of a difference d, its derivative, (kv, kh) from the vertical and horizontal pair counts)
_TV_SEPARABLE = {
    "squared": (_square, _twice, lambda nv, nh: (1.0, 1.0)),
    "mean_squared": (_square, _twice, lambda nv, nh: (0.5 / nv, 0.5 / nh)),
    "mean_abs": (
        lambda xp, d: xp.abs(d),
        lambda xp, d: xp.sign(d),
        lambda nv, nh: (0.5 / nv, 0.5 / nh),
    ),
    "abs255": (
        lambda xp, d: xp.abs(d),
        lambda xp, d: xp.sign(d),
        lambda nv, nh: (1 / 255.0, 1 / 255.0),
    ),
}


def tv_into(x, kind: str, weight: float, out, band_elements: int = TV_BAND_ELEMENTS) -> float:
    """``weight · losses.tv_loss(x, kind)`` with its gradient added into ``out`` (shaped like x (H, W, C)),
    over bands of rows, so no whole-image temporary is built: the same terms, grouped by their top row."""
    xp = get_array_module(x)
    H, W, C = x.shape
    rows = max(1, band_elements // max(1, W * C))
    value = 0.0
    if kind in (
        "keras",
        "harvard",
    ):  # terms (i, j), i < H−1, read rows i and i+1: a band and the row below
        for r0 in range(0, H - 1, rows):
            top = min(r0 + rows, H - 1)
            v, g = losses.tv_loss(x[r0 : top + 1], kind)
            value += v
            out[r0 : top + 1] += weight * g
        return weight * value
    if kind not in _TV_SEPARABLE:
        raise ValueError(f"tv_loss: unknown kind {kind!r}: expected one of {losses.TV_KINDS}")
    f, df, norms = _TV_SEPARABLE[kind]
    kv, kh = norms((H - 1) * W * C, H * (W - 1) * C)
    for r0 in range(0, H, rows):
        r1 = min(H, r0 + rows)
        top = min(r1, H - 1)
        if top > r0:  # vertical pairs (i, i+1) with i in [r0, top)
            dv = x[r0 + 1 : top + 1] - x[r0:top]
            value += kv * float(xp.sum(f(xp, dv), dtype=xp.float64))
            gv = df(xp, dv) * (weight * kv)
            out[r0 + 1 : top + 1] += gv
            out[r0:top] -= gv
        dh = x[r0:r1, 1:] - x[r0:r1, :-1]
        value += kh * float(xp.sum(f(xp, dh), dtype=xp.float64))
        gh = df(xp, dh) * (weight * kh)
        out[r0:r1, 1:] += gh
        out[r0:r1, :-1] -= gh
    return weight * value
