"""VGG16/VGG19 features: a forward over ``arch.layer_sequence`` that stops at the deepest tap and a
backward to the input that adds each tap's gradient where it belongs.

Tap names are ``arch``'s (``input``, ``convB_K``, ``blockB_convK``/``reluB_K``, ``blockB_pool``/``poolB``).
The tape is a plain list of per-op caches: conv weights, ReLU masks, pool argmax/shape — no
activations are kept for the backward pass.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..engine import arena, ops
from ..engine.backend import to_host, xp_for
from .arch import CAFFE_MEAN_BGR, canonical_tap, conv_layer_table, conv_param_name, layer_sequence

# ReLU masks of at least this many elements are bit-packed (8x smaller, ~free next to a conv).
PACK_MASKS_FROM = 1 << 22
# First-layer tap gradients of at least this many elements are recomputed in the backward pass
# (64 channels at 1024²: 256 MB saved at the peak for ~2% more time). Both are ``VGG`` fields.
RECOMPUTE_GRAD_FROM = 1 << 26


@dataclasses.dataclass
class VGG:
    """Frozen VGG conv stack: ``params[name] = (w OIHW, b)`` on the engine's device and dtype.

    Preprocessing belongs to the weights (Caffe convention: RGB→BGR, minus ``mean_bgr``, 0..255),
    so callers hand ``preprocess`` plain RGB pixels. ``conv`` picks the algorithm of every conv
    (``ops.CONV_ALGORITHMS``; ``dataclasses.replace(net, conv="im2col")`` switches a loaded network).
    """

    arch: str
    params: dict
    mean_bgr: tuple = CAFFE_MEAN_BGR
    device: str = "cpu"
    dtype: type = np.float32
    provenance: dict = dataclasses.field(default_factory=dict)
    pack_masks_from: int = PACK_MASKS_FROM  # ReLU masks of this many elements are bit-packed
    recompute_grad_from: int = (
        RECOMPUTE_GRAD_FROM  # first-layer tap gradients this large are recomputed
    )
    conv: str = "auto"  # every conv's ops algorithm: auto, im2col or winograd

    def __post_init__(self):
        if self.conv not in ops.CONV_ALGORITHMS:
            raise ValueError(
                f"unknown conv algorithm {self.conv!r}: expected one of {', '.join(ops.CONV_ALGORITHMS)}"
            )
        for w, b in self.params.values():  # frozen: lets ops memoise kernel transforms safely
            for a in (w, b):
                if isinstance(a, np.ndarray):
                    a.flags.writeable = False

    @property
    def xp(self):
        return xp_for(self.device)

    def astype(self, dtype) -> VGG:
        """A copy of the network with parameters in ``dtype`` (float64 for gradient checks)."""
        params = {k: (w.astype(dtype), b.astype(dtype)) for k, (w, b) in self.params.items()}
        return dataclasses.replace(self, params=params, dtype=dtype)

    def to(self, device: str) -> VGG:
        """A copy of the network on ``device`` ('cpu' or 'gpu')."""
        xp = xp_for(device)
        params = {
            k: (xp.asarray(to_host(w)), xp.asarray(to_host(b))) for k, (w, b) in self.params.items()
        }
        return dataclasses.replace(self, params=params, device=device)

    # ----------------------------------------------------------------- pre/post-processing
    def preprocess(self, x):
        """RGB pixels (H, W, 3), 0..255 -> network input (1, 3, H, W): BGR, mean-subtracted, engine dtype."""
        xp = self.xp
        x = xp.asarray(x)
        y = arena.empty((1, 3) + tuple(x.shape[:2]), self.dtype, xp)  # one pass, no temporaries
        xp.subtract(
            x.transpose(2, 0, 1)[::-1],
            xp.asarray(self.mean_bgr, dtype=self.dtype)[:, None, None],
            out=y[0],
            casting="unsafe",
        )
        return y

    def preprocess_backward(self, gy):
        """Gradient w.r.t. the RGB pixels (H, W, 3) from the gradient w.r.t. the network input (1, 3, H, W)."""
        return gy[0].transpose(1, 2, 0)[:, :, ::-1]

    def deprocess(self, y):
        """Network input (1, 3, H, W) -> RGB pixels (H, W, 3) float (not clipped)."""
        y = to_host(y)[0].transpose(1, 2, 0) + np.asarray(self.mean_bgr)
        return y[:, :, ::-1]

    # ------------------------------------------------------------------ forward / backward
    def _forward(self, y, canonical_taps, pooling: str, lean: bool, masks: bool = True):
        """Yield ``(kind, name, h, cache)`` op by op up to the deepest canonical tap.

        ``lean`` runs ReLUs in place (``h`` is valid only until the next step) and bit-packs large
        masks; otherwise every yielded ``h`` is a fresh array that stays valid. ``masks=False`` (with
        ``lean``: features recomputed for a gradient) keeps no ReLU mask: the cache is None.
        """
        if pooling not in ("avg", "max"):
            raise ValueError(f"unknown pooling {pooling!r}: expected 'avg' or 'max'")
        seq = layer_sequence(self.arch)
        positions = {name: i for i, (_, name) in enumerate(seq)}
        last = max([positions[t] for t in canonical_taps if t != "input"], default=-1)
        fwd = ops.avg_pool2d_forward if pooling == "avg" else ops.max_pool2d_forward
        bwd = ops.avg_pool2d_backward if pooling == "avg" else ops.max_pool2d_backward
        h = y
        for kind, name in seq[: last + 1]:
            if kind == "conv":
                w, b = self.params[conv_param_name(name)]
                h, cache = ops.conv2d_forward(h, w, b, 1, 1, save_input=False, algorithm=self.conv)
            elif kind == "relu" and lean and not masks:
                h, cache = self.xp.maximum(h, h.dtype.type(0), out=h), None
            elif kind == "relu":
                h, cache = ops.relu_forward(
                    h, inplace=lean, pack=lean and h.size >= self.pack_masks_from
                )
            else:
                h, pcache = fwd(h)
                cache = (bwd, pcache)
            yield kind, name, h, cache

    def features(self, y, taps, pooling: str = "avg", keep_tape: bool = True):
        """Run the network on input ``y`` (1, 3, H, W) only as deep as the deepest of ``taps``.

        Returns ``(feats, tape)``: ``feats[tap]`` for every requested tap (aliases allowed), and the
        tape (per-op caches: conv weights, ReLU masks, pool argmax) for ``backward``; ``keep_tape=False``
        keeps nothing (target computation).
        """
        canon = {t: canonical_tap(self.arch, t) for t in taps}
        wanted = set(canon.values())
        found = {"input": y} if "input" in wanted else {}
        tape = []
        for kind, name, h, cache in self._forward(y, wanted, pooling, lean=False):
            if name in wanted:
                found[name] = h
            if keep_tape:
                tape.append((kind, name, cache))
        return {t: found[c] for t, c in canon.items()}, tape

    def visit(self, y, taps, fn, pooling: str = "avg") -> None:
        """Forward only, calling ``fn(tap, F)`` as soon as each tap is computed; keeps nothing.
        ``F`` is valid only during the call (ReLUs run in place afterwards)."""
        at = {}
        for t in taps:
            at.setdefault(canonical_tap(self.arch, t), []).append(t)
        for t in at.get("input", ()):
            fn(t, y)
        for _kind, name, h, _ in self._forward(y, set(at), pooling, lean=True):
            for t in at.get(name, ()):
                fn(t, h)

    def backward(self, tape, tap_grads):
        """Gradient w.r.t. the network input given ``tap_grads[tap]`` (dL/d feature) for any taps in the tape."""
        grads = {}
        for t, g in tap_grads.items():
            c = canonical_tap(self.arch, t)
            grads[c] = g if c not in grads else grads[c] + g
        g = self._backward(tape, grads, inplace=False)
        if grads:
            raise ValueError(
                f"gradients given for taps the forward pass did not reach: {sorted(grads)}"
            )
        return g

    def _backward(self, tape, grads, inplace: bool, deferred=None):
        """Walk the tape backwards, adding (and popping) ``grads[name]`` where each tap sits.
        ``deferred[name]()`` produces a tap's gradient only when the walk gets there."""
        deferred = deferred or {}
        g = None
        for i in range(len(tape) - 1, -1, -1):
            kind, name, cache = tape[i]
            if name in deferred:
                grads[name] = deferred.pop(name)()
            if name in grads:
                tg = grads.pop(name)
                if g is None:
                    g = tg
                elif inplace:
                    g += tg
                else:
                    g = g + tg
            if g is None:
                continue
            if kind == "conv":
                # a tap gradient waiting at this conv's input: accumulate into it, no third buffer
                below = tape[i - 1][1] if i > 0 else "input"
                if below in deferred:
                    grads[below] = deferred.pop(below)()
                into = grads.pop(below) if inplace and below in grads else None
                g = ops.conv2d_backward(g, cache, gx_into=into)[0]
            elif kind == "relu":
                g = ops.relu_backward(g, cache, inplace=inplace)
            else:
                bwd, pcache = cache
                g = bwd(g, pcache)
        if "input" in grads:
            tg = grads.pop("input")
            g = tg if g is None else g + tg
        return g

    def loss_and_input_grad(self, y, taps, tap_loss, pooling: str = "avg"):
        """The memory-lean path of the objective: forward to the deepest tap, calling
        ``tap_loss(tap, F) -> (value, dL/dF)`` the moment each tap is computed, then backward to the input.

        Returns ``(Σ values, dL/dy)``. Nothing but ReLU masks (bit-packed on large maps), pool
        argmax and the tap gradients is kept; ReLUs run in place. Same result as
        ``features`` + ``backward`` (the tests compare them).

        ``tap_loss`` may return a ``DeferredGrad`` instead of the gradient. On a large first-layer tap
        (``conv1_1``/``relu1_1``, at least ``recompute_grad_from`` elements) it is kept that way: the forward
        pass then holds no gradient of the widest map, and the backward pass recomputes those
        features (one conv from the input) and turns them into the gradient in place. At 4096² that
        is 4.3 GB less at the peak, for one extra 3→64 conv. Elsewhere it is evaluated at once.
        """
        at = {}
        for t in taps:
            at.setdefault(canonical_tap(self.arch, t), []).append(t)
        total, stored, later = 0.0, {}, {}
        first = {
            name for _, name in layer_sequence(self.arch)[:2]
        }  # one conv (+ its ReLU) from the input

        def visit(name, h):
            nonlocal total
            for t in at.get(name, ()):
                v, g = tap_loss(t, h)
                total += v
                if isinstance(g, DeferredGrad):
                    if name in first and h.size >= self.recompute_grad_from:
                        later.setdefault(name, []).append(g)
                        continue
                    g = g(h)
                if g is not None:
                    stored[name] = g if name not in stored else stored[name] + g

        visit("input", y)
        tape = []
        for kind, name, h, cache in self._forward(y, set(at), pooling, lean=True):
            visit(name, h)
            tape.append((kind, name, cache))
        h = None  # the last map is not needed by the backward pass: free it before it starts

        def recomputed(name):
            def grad():
                F = next(
                    h
                    for _, n, h, _ in self._forward(y, {name}, pooling, lean=True, masks=False)
                    if n == name
                )
                fns = later[name]
                g = fns[0](F if len(fns) == 1 else F.copy(), overwrite=True)
                for fn in fns[1:]:
                    g += fn(F)
                if name in stored:
                    g += stored.pop(name)
                return g

            return grad

        g = self._backward(
            tape, stored, inplace=True, deferred={name: recomputed(name) for name in later}
        )
        return total, (g if g is not None else self.xp.zeros_like(y))


class DeferredGrad:
    """A tap gradient that needs the tap's features: ``self(F, overwrite=False) -> dL/dF``;
    ``overwrite=True`` may compute it in F's own memory. Returned by ``tap_loss`` callbacks of
    ``VGG.loss_and_input_grad`` when the gradient is linear in F (Gram-based style terms)."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, F, overwrite: bool = False):
        return self.fn(F, overwrite)


def random_vgg(arch: str = "vgg16", seed: int = 0, dtype=np.float32) -> VGG:
    """A VGG with He-initialised random weights (tests, synthetic VGG19 presets, benchmarks without weights)."""
    rng = np.random.default_rng(seed)
    params = {}
    for name, cin, cout in conv_layer_table(arch):
        w = rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2.0 / (9 * cin))
        params[name] = (w.astype(dtype), (rng.standard_normal(cout) * 0.01).astype(dtype))
    return VGG(arch, params, dtype=dtype, provenance={"source": f"random seed {seed}"})


def load_vgg(
    arch: str = "vgg16", weights=None, device: str = "cpu", flip_kernels=None, conv: str = "auto"
) -> VGG:
    """Load ``arch`` from ``weights`` (a file path) or, when None, from the verified cache.

    The cache is filled by ``minivgg weights fetch``; a missing cache raises a WeightsError saying so.
    ``conv`` is the conv algorithm the network runs (``ops.CONV_ALGORITHMS``).
    """
    from . import weights as W

    wset = (
        W.load_weights(weights, arch=arch, flip_kernels=flip_kernels)
        if weights is not None
        else W.load_cached(arch)
    )
    net = VGG(wset.arch, wset.params, provenance=wset.provenance, conv=conv)
    return net.to(device) if device != "cpu" else net
