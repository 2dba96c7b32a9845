"""``minivgg.Objective``: the style-transfer loss of ``../shared/spec/objective.md`` and its six presets.

``L = content_weight · Σ_l c_l · Lc_l + style_weight · Σ_l w_l · E_l + tv_weight · L_tv``.
A preset fixes every choice (layers, per-layer weights, Gram variant, normalisations, TV kind,
pooling, optimiser); any of them can be overridden by keyword. Targets (content features, blended
target Grams) are computed once at construction; ``value_and_grad`` runs the network once forward
to the deepest tap and once backward to the pixels.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from . import losses
from .backend import get_array_module, to_host
from .errors import UserError
from .vgg import DeferredGrad, _accumulate, canonical_tap, layer_names, layer_sequence, min_input_size

IMAGENET_STD_RGB = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class Preset:
    """Every setting of one reference formulation; field names are the ``Objective`` overrides."""
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
    content_layer_weights: tuple | None = None   # None: equal weights summing to 1
    decay: float | None = None                    # cntk only: all-layer decay d
    optimizer: str = "lbfgs"
    iters: int = 500
    round_evals: int | None = None                # L-BFGS rounds of at most N evaluations
    bounds: bool = True
    init: str = "content"
    lr: float | tuple = 1.0
    lr_unit: str = "pixel"                        # units the lr/eps are written in: pixel, unit01, imagenet_std
    betas: tuple = (0.9, 0.999)
    adam_eps: float = 1e-8
    lr_decay_every: int | None = None
    lr_decay_gamma: float = 0.1
    clip: bool = False
    size: int = 512
    square_crop: bool = False


_B1 = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")

PRESETS = {
    "gatys": Preset(
        "gatys", "Gatys, Ecker, Bethge 2016 on VGG16 (EE8601 report, theory)", "vgg16", "avg",
        ("block4_conv2",), "half_sum", 1.0, _B1, (0.2,) * 5, "plain", "gatys", 1e4, "squared", 1e-3,
        iters=500, init="content"),
    "keras": Preset(
        "keras", "Keras VGG16 neural-style notebook (seed 001)", "vgg16", "max",
        ("block2_conv2",), "sum", 0.025,
        ("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3", "block5_conv3"), (0.2,) * 5,
        "plain", "keras", 5.0, "keras", 1.0, iters=200, round_evals=20, bounds=False, init="noise"),
    "cntk": Preset(
        "cntk", "CNTK 205 with the Novak-Nikulin improvements (seed 000)", "vgg16", "avg",
        (), "mean", 5.0, (), (), "centered", "cntk", 1.0, "mean_squared", 1.0, decay=0.5,
        iters=200, round_evals=20, init="content", size=300, square_crop=True),
    "harvard": Preset(
        "harvard", "AC 209B homework 6 (seed 002)", "vgg16", "max",
        ("block4_conv2",), "sum", 3e-2, _B1, tuple(w / 5 for w in (20000, 500, 12, 1, 1)),
        "plain", "harvard", 1.0, "harvard", 5e-2, iters=1000, round_evals=20, init="noise"),
    "d2l": Preset(
        "d2l", "Dive into Deep Learning, neural style (seed 003)", "vgg19", "max",
        ("conv4_4",), "mean", 1.0, ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"), (1.0,) * 5,
        "per_cm", "mean", 1e3, "mean_abs", 10.0, optimizer="adam", iters=500, lr=0.01,
        lr_unit="imagenet_std", lr_decay_every=200, init="content"),
    "ee8601": Preset(
        "ee8601", "EE8601 project report, TensorFlow 2 (seed 004)", "vgg19", "max",
        ("block5_conv2",), "mean", 1e4, _B1, (0.2,) * 5, "per_m", "mean", 10.0, "abs255", 30.0,
        optimizer="adam", iters=10000, lr=0.02, lr_unit="unit01", betas=(0.99, 0.999), adam_eps=0.1,
        clip=True, init="content"),
}

# Overrides the objective itself understands (the optimiser ones are read by optim/transfer).
OVERRIDES = tuple(f.name for f in dataclasses.fields(Preset) if f.name not in ("name", "source"))


def cntk_layers(arch: str, decay: float):
    """The CNTK all-layer schedule: content taps ``input`` + every ReLU, style taps ``block5_pool`` + every
    ReLU, with weights ``1/T, d^(i+1)/T`` and ``1/T, d^(n−i)/T``, ``T = (1 − d^(n+1)) / (1 − d)``."""
    relus = [n for n in layer_names(arch) if n.startswith("block") and "_conv" in n]
    n = len(relus)
    T = (1 - decay ** (n + 1)) / (1 - decay) if decay != 1 else n + 1
    content = ("input",) + tuple(relus)
    content_w = (1 / T,) + tuple(decay ** (i + 1) / T for i in range(n))
    style = ("block5_pool",) + tuple(relus)
    style_w = (1 / T,) + tuple(decay ** (n - i) / T for i in range(n))
    return content, content_w, style, style_w


def resolve_settings(preset: str, overrides: dict) -> dict:
    """The preset's settings with ``overrides`` applied and validated (UserError on anything wrong)."""
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    unknown = sorted(set(overrides) - set(OVERRIDES) - {"style_blend_weights"})
    if unknown:
        raise UserError(f"unknown setting(s) {', '.join(unknown)}; valid settings: {', '.join(OVERRIDES)}, style_blend_weights")
    s = dataclasses.asdict(PRESETS[preset])
    s.update({k: v for k, v in overrides.items() if v is not None})
    for key in ("content_weight", "style_weight", "tv_weight"):
        v = s[key]
        if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise UserError(f"{key} must be a finite number >= 0, got {v!r}")
    if s["pooling"] not in ("avg", "max"):
        raise UserError(f"pooling must be 'avg' or 'max', got {s['pooling']!r}")
    if preset == "cntk" and not s["content_layers"] and not s["style_layers"]:
        c, cw, st, sw = cntk_layers(s["arch"], s["decay"])
        s.update(content_layers=c, content_layer_weights=cw, style_layers=st, style_layer_weights=sw)
    for key in ("content_layers", "style_layers"):
        if isinstance(s[key], str):
            s[key] = tuple(t for t in s[key].split(",") if t)
        s[key] = tuple(s[key])
        for tap in s[key]:
            try:
                canonical_tap(s["arch"], tap)
            except ValueError as exc:
                raise UserError(f"{key}: {exc}") from None
    if "style_layers" in overrides and "style_layer_weights" not in overrides and preset != "cntk" \
            or len(s["style_layer_weights"] or ()) != len(s["style_layers"]):
        if "style_layer_weights" in overrides and overrides["style_layer_weights"] is not None:
            raise UserError(f"style_layer_weights has {len(s['style_layer_weights'])} values for "
                            f"{len(s['style_layers'])} style layers")
        s["style_layer_weights"] = (1.0 / max(1, len(s["style_layers"])),) * len(s["style_layers"])
    if s["content_layer_weights"] is None or len(s["content_layer_weights"]) != len(s["content_layers"]):
        s["content_layer_weights"] = (1.0 / max(1, len(s["content_layers"])),) * len(s["content_layers"])
    for key in ("style_layer_weights", "content_layer_weights"):
        s[key] = tuple(float(w) for w in s[key])
        if any(not math.isfinite(w) or w < 0 for w in s[key]):
            raise UserError(f"{key} must be finite numbers >= 0, got {list(s[key])}")
    s["preset"] = preset
    return s


def _style_norm(kind: str, C: int, M: int, image_hw: tuple) -> float:
    """The per-layer factor multiplying ``Σ (G − A)²`` for each preset's style term."""
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


def _tap_pixels(arch, tap, h, w) -> int:
    """M = H_l · W_l of ``tap`` for an (h, w) input: each pool before it floors both sides by 2."""
    seq = layer_sequence(arch)
    name = canonical_tap(arch, tap)
    upto = [n for _, n in seq].index(name) if name != "input" else -1
    for kind, _ in seq[:upto + 1]:
        if kind == "pool":
            h, w = h // 2, w // 2
    return h * w


def _as_image(a, what):
    a = np.asarray(a)
    if a.ndim != 3 or a.shape[2] != 3:
        raise UserError(f"{what} must be an (H, W, 3) RGB array, got shape {a.shape}")
    return a.astype(np.float64)


class Objective:
    """The style-transfer objective of one preset on one network, with targets precomputed.

    ``content``: (H, W, 3) uint8 RGB; ``style``: one such array or a list (blend with
    ``style_blend_weights``, normalised to sum 1). ``value_and_grad(x)`` takes (H, W, 3) float64 RGB
    0..255 and returns ``(float, float64 gradient shaped like x)``; ``terms(x)`` the weighted parts.
    """

    def __init__(self, net, content, style, preset: str = "gatys", **overrides):
        self.settings = s = resolve_settings(preset, overrides)
        if net.arch != s["arch"]:
            raise UserError(f"preset {preset!r} runs on {s['arch']} but the network is {net.arch}; "
                            f"load {s['arch']} weights (minivgg weights fetch {s['arch']})")
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
            raise UserError(f"style blend weights must be finite, >= 0 and not all 0, got {blend.tolist()}")
        self.blend = blend / blend.sum()
        s["style_blend_weights"] = self.blend.tolist()
        self.shape = self.content.shape
        need = min_input_size(net.arch, list(s["content_layers"]) + list(s["style_layers"]))
        for what, img in [("content", self.content)] + [(f"style {k + 1}", st) for k, st in enumerate(self.styles)]:
            if min(img.shape[:2]) < need:
                raise UserError(f"the {what} image is {img.shape[1]}x{img.shape[0]} pixels; preset {preset!r} "
                                f"needs at least {need} pixels on each side for its deepest layer")
        self.content_taps = list(s["content_layers"])
        self.style_taps = list(s["style_layers"])
        self.taps = list(dict.fromkeys(self.content_taps + self.style_taps))
        content_targets = {}
        net.visit(net.preprocess(self.content), self.content_taps,
                  lambda t, F: content_targets.__setitem__(t, F.copy()), s["pooling"])
        self.content_targets = content_targets
        h, w = self.shape[:2]
        self.style_targets = {t: 0 for t in self.style_taps}
        for b, st in zip(self.blend, self.styles):
            def add_gram(t, F, b=b):
                A = losses.gram_variant(F, s["gram"])
                if s["gram"] in ("plain", "centered"):  # unnormalised Gram: bring to the content's scale
                    A = A * (_tap_pixels(net.arch, t, h, w) / (F.shape[2] * F.shape[3]))
                self.style_targets[t] = self.style_targets[t] + A * A.dtype.type(b)
            net.visit(net.preprocess(st), self.style_taps, add_gram, s["pooling"])
        self.last_terms = None

    # ------------------------------------------------------------------------------------
    def _check_x(self, x):
        xp = get_array_module(x)
        x = xp.asarray(x, dtype=xp.float64)
        if tuple(x.shape) != self.shape:
            raise ValueError(f"x has shape {tuple(x.shape)}, the objective expects {self.shape}")
        return x, xp

    def value_and_grad(self, x):
        """``(L(x), dL/dx)`` for x (H, W, 3) float64 RGB pixels; ``self.last_terms`` keeps the parts.

        ``x`` may be a host array or, for a GPU network, a device array: the gradient comes back
        where ``x`` lives, so an on-device optimiser moves nothing per evaluation.
        """
        x, xp = self._check_x(x)
        s, net = self.settings, self.net
        parts = {"content": 0.0, "style": 0.0}
        content_w = {}
        for tap, w in zip(self.content_taps, s["content_layer_weights"]):
            content_w[tap] = content_w.get(tap, 0.0) + s["content_weight"] * w
        style_w = {}
        for tap, w in zip(self.style_taps, s["style_layer_weights"]):
            style_w[tap] = style_w.get(tap, 0.0) + s["style_weight"] * w

        def tap_loss(tap, F):
            """Weighted content and style terms of one tap, and their gradient w.r.t. its features."""
            value, grad = 0.0, None
            if content_w.get(tap):
                v, g = losses.content_loss(F, self.content_targets[tap], s["content_norm"])
                parts["content"] += content_w[tap] * v
                g *= g.dtype.type(content_w[tap])
                value, grad = value + content_w[tap] * v, g
            if style_w.get(tap):
                norm = _style_norm(s["style_norm"], F.shape[1], F.shape[2] * F.shape[3], self.shape[:2])
                if grad is None:  # linear in F: the network may compute it later, from recomputed features
                    v, g = losses.style_loss_deferred(F, self.style_targets[tap], s["gram"], norm * style_w[tap])
                    g = DeferredGrad(g)
                else:
                    v, g = losses.style_loss(F, self.style_targets[tap], s["gram"], norm * style_w[tap])
                parts["style"] += v
                value, grad = value + v, g if grad is None else _accumulate(grad, g)
            return value, grad

        taps = [t for t in self.taps if content_w.get(t) or style_w.get(t)]
        grad = xp.zeros_like(x)
        if taps:
            _, gy = net.loss_and_input_grad(net.preprocess(x), taps, tap_loss, s["pooling"])
            gx = net.preprocess_backward(gy)
            grad += gx if get_array_module(gx) is xp else to_host(gx)
        tv = 0.0
        if s["tv_weight"]:
            v, g = losses.tv_loss(x, s["tv"])
            tv = s["tv_weight"] * v
            grad += s["tv_weight"] * g
        total = parts["content"] + parts["style"] + tv
        self.last_terms = {"content": parts["content"], "style": parts["style"], "tv": tv, "total": total}
        return total, grad

    def terms(self, x) -> dict:
        """The weighted parts ``{"content", "style", "tv", "total"}`` of ``L(x)``; they sum to ``total``."""
        self.value_and_grad(x)
        return dict(self.last_terms)

    def __call__(self, x):
        return self.value_and_grad(x)


# --------------------------------------------------------------------------------- gradcheck

def gradcheck_cases():
    """Every preset's full objective on a small random-weight network (float64 engine path)."""
    from .gradcheck import Case, check_grad
    from .vgg import random_vgg
    cases = []
    rng = np.random.default_rng(3)
    nets = {}
    for name, p in PRESETS.items():
        def run(name=name, p=p):
            net = nets.get(p.arch) or nets.setdefault(p.arch, random_vgg(p.arch, seed=0, dtype=np.float64))
            content = rng.integers(0, 256, (40, 32, 3)).astype(np.uint8)
            style = rng.integers(0, 256, (32, 44, 3)).astype(np.uint8)
            obj = Objective(net, content, style, preset=name)
            x = content + rng.uniform(-20, 20, content.shape)
            return check_grad(obj.value_and_grad, x, eps=1e-4, rtol=1e-5, name=name)
        cases.append(Case(f"objective preset={name}", "(40, 32, 3)", run))

    def run_recomputed():  # the large-image path: first-layer style gradient recomputed in the backward pass
        from . import vgg
        saved, vgg._DEFER_FROM = vgg._DEFER_FROM, 1
        try:
            net = random_vgg("vgg16", seed=0, dtype=np.float64)
            content = rng.integers(0, 256, (40, 32, 3)).astype(np.uint8)
            obj = Objective(net, content, rng.integers(0, 256, (32, 44, 3)).astype(np.uint8), preset="gatys")
            x = content + rng.uniform(-20, 20, content.shape)
            return check_grad(obj.value_and_grad, x, eps=1e-4, rtol=1e-5, name="gatys recomputed")
        finally:
            vgg._DEFER_FROM = saved
    cases.append(Case("objective preset=gatys, first-layer gradient recomputed", "(40, 32, 3)", run_recomputed))
    return cases
