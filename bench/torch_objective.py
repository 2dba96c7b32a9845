"""The style-transfer objective of minivgg written in PyTorch: the benchmark's reference peer.

Same work as ``minivgg.style.objective.Objective``: the same weights (copied from ``net.params``), the
same images, the same Caffe preprocessing (RGB→BGR, minus the BGR mean), float32 activations,
the network truncated after the deepest tap, and the gradient w.r.t. the pixels from
``torch.autograd`` (the weights do not require grad, so no weight gradients are computed).
Settings are read from ``minivgg.style.presets.resolve_settings`` so both sides run one preset;
only the formulas of the ``gatys`` preset are written here (any pooling, any taps).

Three configurations, as a PyTorch user on a CPU would pick (``CONFIGS``): ``eager`` (NCHW, what the
peers ship), ``channels_last`` (NHWC activations and weights: oneDNN's native layout, no reorders; the
Gram reads the NHWC rows directly) and ``compile`` (``torch.compile`` of the loss, Inductor, NCHW; its
compile time is the first evaluation's, which the bench reports apart).
"""

from __future__ import annotations

import warnings

import numpy as np

from .environment import import_torch

torch = import_torch()
import torch.nn.functional as F

from minivgg.network.arch import canonical_tap, layer_sequence
from minivgg.style.presets import resolve_settings

# The settings this peer implements; anything else raises instead of silently differing.
SUPPORTED = {
    "content_norm": ("half_sum", "sum", "mean"),
    "gram": ("plain",),
    "style_norm": ("gatys",),
    "tv": ("squared",),
    "pooling": ("avg", "max"),
}


def _check_supported(settings: dict) -> None:
    for key, allowed in SUPPORTED.items():
        if settings[key] not in allowed:
            raise NotImplementedError(
                f"bench.torch_objective implements {key} in {allowed}, got {settings[key]!r}"
            )


def _pixels(a) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a, dtype=np.float64)).to(torch.float32)


CONFIGS = ("eager", "channels_last", "compile")


class TorchObjective:
    """``L = content_weight·Σ c_l·Lc_l + style_weight·Σ w_l·E_l + tv_weight·L_tv`` in PyTorch.

    ``content``/``style``: (H, W, 3) uint8 RGB. ``value_and_grad(x)`` takes (H, W, 3) float64 RGB
    0..255 and returns ``(float, float64 gradient)``, the same contract as minivgg's ``Objective``;
    ``last_terms`` keeps the weighted parts. Scalar sums are taken in float64, as minivgg does.
    """

    def __init__(
        self, net, content, style, preset: str = "gatys", config: str = "eager", **overrides
    ):
        if config not in CONFIGS:
            raise ValueError(f"config must be one of {CONFIGS}, got {config!r}")
        self.config = config
        self.settings = s = resolve_settings(preset, overrides)
        _check_supported(s)
        with (
            warnings.catch_warnings()
        ):  # the cached weights are read-only; torch shares them and never writes
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            self.params = {
                name: (
                    torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32)),
                    torch.from_numpy(np.ascontiguousarray(b, dtype=np.float32)),
                )
                for name, (w, b) in net.params.items()
            }
        if config == "channels_last":
            self.params = {
                k: (w.contiguous(memory_format=torch.channels_last), b)
                for k, (w, b) in self.params.items()
            }
        self.mean_bgr = torch.tensor(net.mean_bgr, dtype=torch.float32)
        self.content_taps = [canonical_tap(net.arch, t) for t in s["content_layers"]]
        self.style_taps = [canonical_tap(net.arch, t) for t in s["style_layers"]]
        seq = layer_sequence(net.arch)
        wanted = set(self.content_taps + self.style_taps) - {"input"}
        last = max((i for i, (_, name) in enumerate(seq) if name in wanted), default=-1)
        self.sequence = seq[: last + 1]
        self.shape = tuple(np.shape(content))
        with torch.no_grad():
            c_feats = self.features(self.preprocess(_pixels(content)))
            s_feats = self.features(self.preprocess(_pixels(style)))
            self.content_targets = {t: c_feats[t] for t in self.content_taps}
            self.style_targets = {}
            for t in self.style_taps:
                Fs = s_feats[t]
                # minivgg brings an unnormalised style Gram to the content image's scale (M_content / M_style).
                scale = (c_feats[t].shape[2] * c_feats[t].shape[3]) / (Fs.shape[2] * Fs.shape[3])
                self.style_targets[t] = self.gram(Fs) * scale
        self.last_terms = None
        self._terms = torch.compile(self.terms) if config == "compile" else self.terms

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """(H, W, 3) RGB pixels -> (1, 3, H, W) network input: BGR, minus the BGR mean."""
        y = (x.flip(-1) - self.mean_bgr).permute(2, 0, 1).unsqueeze(0)
        return y.contiguous(
            memory_format=torch.channels_last
            if self.config == "channels_last"
            else torch.contiguous_format
        )

    def features(self, y: torch.Tensor) -> dict:
        """The activation at every tap, running the truncated conv stack once (other layers are not kept)."""
        taps = set(self.content_taps + self.style_taps)
        found = {"input": y} if "input" in taps else {}
        h = y
        for kind, name in self.sequence:
            if kind == "conv":
                w, b = self.params[f"block{name[4]}_conv{name.split('_')[1]}"]
                h = F.conv2d(h, w, b, stride=1, padding=1)
            elif kind == "relu":
                h = torch.relu(h)
            elif self.settings["pooling"] == "avg":
                h = F.avg_pool2d(h, 2, 2)
            else:
                h = F.max_pool2d(h, 2, 2)
            if name in taps:
                found[name] = h
        return found

    @staticmethod
    def gram(Fm: torch.Tensor) -> torch.Tensor:
        """``G = F Fᵀ`` of F (1, C, H, W) read as (C, M) (channels_last: as the (M, C) rows it holds)."""
        if Fm.is_contiguous(memory_format=torch.channels_last) and not Fm.is_contiguous():
            f = Fm.permute(0, 2, 3, 1).reshape(-1, Fm.shape[1])
            return f.T @ f
        f = Fm.reshape(Fm.shape[1], -1)
        return f @ f.T

    def loss(self, x: torch.Tensor):
        """The total loss (float64 0-d tensor) and its weighted parts, for pixels x (H, W, 3) float32."""
        content, style, tv = self._terms(x)
        total = content + style + tv
        parts = {"content": content, "style": style, "tv": tv, "total": total}
        return total, {k: float(v.detach()) for k, v in parts.items()}

    def terms(self, x: torch.Tensor):
        """The weighted content, style and TV terms (float64 0-d tensors): the part ``compile`` compiles."""
        s = self.settings
        feats = self.features(self.preprocess(x))
        k = {"half_sum": 0.5, "sum": 1.0}.get(s["content_norm"])
        content = x.new_zeros((), dtype=torch.float64)
        for tap, w in zip(self.content_taps, s["content_layer_weights"]):
            diff = feats[tap] - self.content_targets[tap]
            kk = k if k is not None else 1.0 / diff.numel()
            content = content + s["content_weight"] * w * kk * (diff.double() ** 2).sum()
        style = x.new_zeros((), dtype=torch.float64)
        for tap, w in zip(self.style_taps, s["style_layer_weights"]):
            Fm = feats[tap]
            C, M = Fm.shape[1], Fm.shape[2] * Fm.shape[3]
            R = self.gram(Fm) - self.style_targets[tap]
            style = style + s["style_weight"] * w / (4.0 * C * C * M * M) * (R.double() ** 2).sum()
        dv = x[1:] - x[:-1]
        dh = x[:, 1:] - x[:, :-1]
        tv = s["tv_weight"] * ((dv.double() ** 2).sum() + (dh.double() ** 2).sum())
        return content, style, tv

    def value_and_grad(self, x):
        """``(L(x), dL/dx)`` for x (H, W, 3) float64 RGB pixels, like minivgg's ``Objective``."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape != self.shape:
            raise ValueError(f"x has shape {x.shape}, the objective expects {self.shape}")
        xt = _pixels(x).requires_grad_(True)
        total, self.last_terms = self.loss(xt)
        total.backward()
        return float(total.detach()), xt.grad.numpy().astype(np.float64)

    def __call__(self, x):
        return self.value_and_grad(x)
