"""``minivgg.Objective``: the style-transfer loss of ``../shared/spec/objective.md`` for one preset.

``L = content_weight · Σ_l c_l · Lc_l + style_weight · Σ_l w_l · E_l + tv_weight · L_tv``.
A preset (``presets.py``) fixes every choice; any of them can be overridden by keyword. Targets (content features, blended
target Grams) are computed once at construction; ``value_and_grad`` runs the network once forward
to the deepest tap and once backward to the pixels. With ``tile_size`` both run tile by tile
(``tiling.py``): the same numbers in memory bounded by the tile, for print-size images.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..engine import arena
from ..engine.backend import get_array_module, to_host
from ..errors import UserError
from ..network.arch import min_input_size, tap_pixels
from ..network.vgg import VGG, DeferredGrad
from . import losses
from .presets import resolve_settings, style_norm
from .regions import check_coverage, guided_gram, guided_style_loss, tap_masks
from .tiling import Tiling


def _as_image(a, what):
    """An (H, W, 3) image as given when uint8, float32 or float64 (the network casts it to its dtype: no
    copy of a print, where a float64 one is 1.6 GB at 8192²), else as float64."""
    a = np.asarray(a)
    if a.ndim != 3 or a.shape[2] != 3:
        raise UserError(f"{what} must be an (H, W, 3) RGB array, got shape {a.shape}")
    return a if a.dtype in (np.uint8, np.float32, np.float64) else a.astype(np.float64)


class Objective:
    """The style-transfer objective of one preset on one network, with targets precomputed.

    ``L(x) = content_weight · Σ c_l · Lc_l + style_weight · Σ w_l · E_l + tv_weight · L_tv``,
    every choice fixed by ``preset`` unless overridden. Calling the objective is ``value_and_grad``.

    Parameters
    ----------
    net : VGG
        Its ``arch`` must be the preset's (``load_vgg``, or ``random_vgg`` for tests).
    content : array_like, shape (H, W, 3), uint8 (or float) RGB, 0..255
    style : ndarray (Hs, Ws, 3), or a list of array_like (Hs, Ws, 3)
        Style images of any size; several are blended by ``style_blend_weights`` (normalised to
        sum 1).
    preset : str
        A name in ``PRESETS`` ("gatys", "keras", "cntk", "harvard", "d2l", "ee8601").
    content_masks : sequence of array_like (H, W) in 0..1, optional
        One per style image: where in the content it applies (regions; must cover the image).
    style_masks : sequence of array_like (Hs, Ws) in 0..1 or None, optional
        One per style image: where its statistics are taken (None: everywhere).
    mask_mode : {"simple", "inside", "all"}
        How masks are brought to each tap (``regions.tap_masks``).
    tile_size : int, optional
        Evaluate targets and objective on tiles of this side: the same numbers in bounded memory.
    **overrides
        Any ``Preset`` field (``content_weight``, ``style_layers``, ...) or ``style_blend_weights``.

    Raises
    ------
    UserError
        An unknown preset or setting, a network of the wrong architecture, an image too small
        for the deepest layer, or masks and blend weights that do not match the style images.

    Examples
    --------
    >>> from minivgg.network.vgg import random_vgg
    >>> content, style = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), np.uint8)
    >>> net = random_vgg()
    >>> obj = Objective(net, content, style, "gatys", content_layers="relu2_2",
    ...                 style_layers=("relu1_1", "relu2_1"))
    >>> obj.shape, obj.taps, obj.settings["style_weight"]
    ((16, 16, 3), ['relu2_2', 'relu1_1', 'relu2_1'], 10000.0)
    >>> Objective(net, content[:8], style)  # block5_conv1 needs 16 px
    Traceback (most recent call last):
    minivgg.errors.UserError: the content image is 16x8 pixels; preset 'gatys' needs at least 16 ...
    """

    def __init__(
        self,
        net: VGG,
        content: npt.ArrayLike,
        style: np.ndarray | Sequence[npt.ArrayLike],
        preset: str = "gatys",
        *,
        content_masks: Sequence[npt.ArrayLike] | None = None,
        style_masks: Sequence[npt.ArrayLike | None] | None = None,
        mask_mode: str = "simple",
        tile_size: int | None = None,
        **overrides: Any,
    ) -> None:
        self.settings = s = resolve_settings(preset, overrides)
        if net.arch != s["arch"]:
            raise UserError(
                f"preset {preset!r} runs on {s['arch']} but the network is {net.arch}; "
                f"load {s['arch']} weights (minivgg weights fetch {s['arch']})"
            )
        self.net = net
        self.content = _as_image(content, "content")
        styles = [style] if isinstance(style, np.ndarray) and style.ndim == 3 else list(style)
        if not styles:
            raise UserError("at least one style image is needed")
        self.styles = [_as_image(st, f"style {k + 1}") for k, st in enumerate(styles)]
        blend = s.pop("style_blend_weights", None) or [1.0] * len(self.styles)
        if len(blend) != len(self.styles):
            raise UserError(f"{len(blend)} style blend weights for {len(self.styles)} style images")
        blend = np.asarray(blend, dtype=np.float64)
        if not np.all(np.isfinite(blend)) or np.any(blend < 0) or blend.sum() <= 0:
            raise UserError(
                f"style blend weights must be finite, >= 0 and not all 0, got {blend.tolist()}"
            )
        self.blend = blend / blend.sum()
        s["style_blend_weights"] = self.blend.tolist()
        self.shape = self.content.shape
        need = min_input_size(net.arch, list(s["content_layers"]) + list(s["style_layers"]))
        for what, img in [("content", self.content)] + [
            (f"style {k + 1}", st) for k, st in enumerate(self.styles)
        ]:
            if min(img.shape[:2]) < need:
                raise UserError(
                    f"the {what} image is {img.shape[1]}x{img.shape[0]} pixels; preset {preset!r} "
                    f"needs at least {need} pixels on each side for its deepest layer"
                )
        self.content_taps = list(s["content_layers"])
        self.style_taps = list(s["style_layers"])
        self.taps = list(dict.fromkeys(self.content_taps + self.style_taps))
        self.tiling = None if tile_size is None else Tiling(net.arch, self.taps, tile_size)
        self.content_targets = self._features(self.content, self.content_taps, [])[0]
        self.regions = (
            None if content_masks is None else self._regions(content_masks, style_masks, mask_mode)
        )
        self.style_targets = {t: 0 for t in self.style_taps}
        if self.regions is None:
            for b, st in zip(self.blend, self.styles):
                for t, A in self._features(st, [], self.style_taps)[1].items():
                    self.style_targets[t] = self.style_targets[t] + self._to_content_scale(
                        t, st, A
                    ) * A.dtype.type(b)
        self.last_terms: dict[str, float] | None = None
        self.evaluations = 0  # value_and_grad calls so far (the optimiser's cost, in the run's log)
        # Further terms of x alone, each ``term(x) -> (weighted value, weighted gradient)`` with a
        # ``name`` (the video's temporal loss, ``temporal.py``); their values join ``last_terms``.
        self.extra_terms: list = []
        self.arena = (
            arena.Arena()
        )  # the untiled evaluation's large arrays, planned once per image size

    def _features(self, img, content_taps, style_taps, masks=None):
        """``(content features {tap: F}, the preset's Grams {tap: (C, C)}, guided by masks[tap] if given)`` of one
        image: one forward pass, or tile by tile when the objective is tiled and the image needs several."""
        s, net = self.settings, self.net
        if self.tiling is not None and self.tiling.splits(*img.shape[:2]):
            return self.tiling.features(
                net, img, content_taps, style_taps, s["gram"], s["pooling"], masks
            )
        feats, grams = {}, {}
        scale_of, center = losses.GRAMS[s["gram"]]

        def keep(t, F):
            if t in content_taps:
                feats[t] = F.copy()
            if t in style_taps:
                grams[t] = (
                    losses.gram_variant(F, s["gram"])
                    if masks is None
                    else guided_gram(
                        F, masks[t], scale_of(F.shape[1], F.shape[2] * F.shape[3]), center
                    )
                )

        net.visit(
            net.preprocess(img),
            list(dict.fromkeys(list(content_taps) + list(style_taps))),
            keep,
            s["pooling"],
        )
        return feats, grams

    def _to_content_scale(self, tap, style, A):
        """An unnormalised Gram of a style of another size, brought to the content's pixel count."""
        if self.settings["gram"] not in ("plain", "centered"):
            return A
        return A * (
            tap_pixels(self.net.arch, tap, *self.shape[:2])
            / tap_pixels(self.net.arch, tap, *style.shape[:2])
        )

    def _regions(self, content_masks, style_masks, mode):
        """Per style image: its content mask at every style tap and its guided target Grams."""
        net = self.net
        if len(content_masks) != len(self.styles):
            raise UserError(
                f"{len(content_masks)} content masks for {len(self.styles)} style images; "
                "give one mask per style image"
            )
        style_masks = list(style_masks) if style_masks is not None else [None] * len(self.styles)
        if len(style_masks) != len(self.styles):
            raise UserError(f"{len(style_masks)} style masks for {len(self.styles)} style images")
        check_coverage([np.asarray(m) for m in content_masks])
        regions = []
        for k, (cm, sm, st) in enumerate(zip(content_masks, style_masks, self.styles)):
            if tuple(np.shape(cm)) != self.shape[:2]:
                raise UserError(
                    f"content mask {k + 1} is {np.shape(cm)}, the content image {self.shape[:2]}"
                )
            sm = np.ones(st.shape[:2]) if sm is None else np.asarray(sm)
            if tuple(sm.shape) != st.shape[:2]:
                raise UserError(f"style mask {k + 1} is {sm.shape}, its style image {st.shape[:2]}")
            grams = self._features(
                st, [], self.style_taps, tap_masks(net.arch, sm, self.style_taps, mode)
            )[1]
            targets = {t: self._to_content_scale(t, st, A) for t, A in grams.items()}
            regions.append((tap_masks(net.arch, cm, self.style_taps, mode), targets))
        return regions

    # ------------------------------------------------------------------------------------
    def _check_x(self, x):
        xp = get_array_module(x)
        x = xp.asarray(x, dtype=xp.float64)
        if tuple(x.shape) != self.shape:
            raise ValueError(f"x has shape {tuple(x.shape)}, the objective expects {self.shape}")
        return x, xp

    def value_and_grad(self, x: npt.ArrayLike) -> tuple[float, np.ndarray]:
        """``(L(x), dL/dx)``: one forward and one backward pass; ``last_terms`` keeps the parts.

        Parameters
        ----------
        x : array_like, shape (H, W, 3), RGB pixels, 0..255
            Cast to float64. A device array for a GPU network: the gradient stays on the device.

        Returns
        -------
        value : float
        grad : ndarray, shape (H, W, 3), float64, where ``x`` lives

        Raises
        ------
        ValueError
            If ``x`` is not shaped like the content image.

        Examples
        --------
        >>> from minivgg.network.vgg import random_vgg
        >>> content, style = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), np.uint8)
        >>> net = random_vgg()
        >>> obj = Objective(net, content, style, content_layers="relu2_2", style_layers="relu1_1")
        >>> x = content.astype(np.float64)
        >>> value, g = obj.value_and_grad(x)
        >>> g.shape, g.dtype, obj.last_terms["content"]  # x is the content: no content loss
        ((16, 16, 3), dtype('float64'), 0.0)
        >>> bool(obj.value_and_grad(x - g / np.abs(g).max())[0] < value)  # -g descends
        True
        """
        x, xp = self._check_x(x)
        self.evaluations += 1
        if self.tiling is not None and self.tiling.splits(*self.shape[:2]):
            parts, grad = self.tiling.value_and_grad(self, x)
        else:
            parts, grad = self._untiled(x, xp)
        extra = {}
        for term in self.extra_terms:
            extra[term.name], g = term(x)
            grad += g
        total = parts["content"] + parts["style"] + parts["tv"] + sum(extra.values())
        self.last_terms = {
            "content": parts["content"],
            "style": parts["style"],
            "tv": parts["tv"],
            **extra,
            "total": total,
        }
        return total, grad

    def tap_weights(self) -> tuple[dict[str, float], dict[str, float]]:
        """Each tap's global weight times its layer weight, summed over repeated taps.

        Returns
        -------
        content_weights, style_weights : dict
            ``{tap: float}`` for the content taps and for the style taps.

        Examples
        --------
        >>> from minivgg.network.vgg import random_vgg
        >>> img = np.zeros((16, 16, 3), np.uint8)
        >>> obj = Objective(random_vgg(), img, img, "gatys", content_layers="relu2_2",
        ...                 style_layers="relu1_1,relu2_1")
        >>> obj.tap_weights()  # content_weight 1 x 1; style_weight 1e4 x 1/2 each
        ({'relu2_2': 1.0}, {'relu1_1': 5000.0, 'relu2_1': 5000.0})
        """
        s = self.settings
        content_w: dict[str, float] = {}
        style_w: dict[str, float] = {}
        for tap, w in zip(self.content_taps, s["content_layer_weights"]):
            content_w[tap] = content_w.get(tap, 0.0) + s["content_weight"] * w
        for tap, w in zip(self.style_taps, s["style_layer_weights"]):
            style_w[tap] = style_w.get(tap, 0.0) + s["style_weight"] * w
        return content_w, style_w

    def _untiled(self, x, xp):
        """``(parts, gradient)`` in one forward and one backward pass over the whole image."""
        s, net = self.settings, self.net
        parts = {"content": 0.0, "style": 0.0}
        content_w, style_w = self.tap_weights()

        def tap_loss(tap, F):
            """Weighted content and style terms of one tap, and their gradient w.r.t. its features."""
            value, grad = 0.0, None
            if content_w.get(tap):
                v, g = losses.content_loss(F, self.content_targets[tap], s["content_norm"])
                parts["content"] += content_w[tap] * v
                g *= g.dtype.type(content_w[tap])
                value, grad = value + content_w[tap] * v, g
            if style_w.get(tap):
                norm = style_norm(
                    s["style_norm"], F.shape[1], F.shape[2] * F.shape[3], self.shape[:2]
                )
                if (
                    self.regions is not None
                ):  # one guided term per region, weighted by its blend weight
                    scale = losses.GRAMS[s["gram"]][0](F.shape[1], F.shape[2] * F.shape[3])
                    for b, (masks, targets) in zip(self.blend * len(self.blend), self.regions):
                        v, g = guided_style_loss(
                            F,
                            targets[tap],
                            masks[tap],
                            scale,
                            losses.GRAMS[s["gram"]][1],
                            norm * style_w[tap] * b,
                        )
                        parts["style"] += v
                        value = value + v
                        grad = g if grad is None else grad + g
                    return value, grad
                if (
                    grad is None
                ):  # linear in F: the network may compute it later, from recomputed features
                    v, g = losses.style_loss_deferred(
                        F, self.style_targets[tap], s["gram"], norm * style_w[tap]
                    )
                    g = DeferredGrad(g)
                else:
                    v, g = losses.style_loss(
                        F, self.style_targets[tap], s["gram"], norm * style_w[tap]
                    )
                parts["style"] += v
                value = value + v
                if grad is None:
                    grad = g
                else:
                    grad += g
            return value, grad

        taps = [t for t in self.taps if content_w.get(t) or style_w.get(t)]
        with self.arena.session(x.shape) if xp is np else contextlib.nullcontext():
            grad = None
            if taps:
                _, gy = net.loss_and_input_grad(net.preprocess(x), taps, tap_loss, s["pooling"])
                gx = net.preprocess_backward(gy)
                grad = xp.array(gx if get_array_module(gx) is xp else to_host(gx), dtype=x.dtype)
                del gy, gx  # dead inside the session: the arena plans their memory
            parts["tv"] = 0.0
            if s["tv_weight"]:
                v, g = losses.tv_loss(x, s["tv"])
                parts["tv"] = s["tv_weight"] * v
                g *= g.dtype.type(s["tv_weight"])
                if grad is None:
                    grad = xp.array(g)  # g may be the arena's: the caller gets its own copy
                else:
                    grad += g
                del g
        return parts, (xp.zeros_like(x) if grad is None else grad)

    def terms(self, x: npt.ArrayLike) -> dict[str, float]:
        """The weighted parts of ``L(x)``, which sum to ``total`` (one ``value_and_grad``).

        Parameters
        ----------
        x : array_like, shape (H, W, 3), RGB pixels, 0..255

        Returns
        -------
        dict
            ``{"content", "style", "tv", "total"}`` as floats, plus one per ``extra_terms`` entry.

        Examples
        --------
        >>> from minivgg.network.vgg import random_vgg
        >>> img = np.full((16, 16, 3), 128, np.uint8)
        >>> net = random_vgg()
        >>> obj = Objective(net, img, img, content_layers="relu2_2", style_layers="relu1_1")
        >>> obj.terms(img)  # x is content and style alike, flat: every part is 0
        {'content': 0.0, 'style': 0.0, 'tv': 0.0, 'total': 0.0}
        """
        self.value_and_grad(x)
        return dict(self.last_terms or {})

    def __call__(self, x: npt.ArrayLike) -> tuple[float, np.ndarray]:
        """The same as ``value_and_grad(x)`` (optimisers call the objective)."""
        return self.value_and_grad(x)
