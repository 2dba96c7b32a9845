"""VGG16/VGG19 as an ordered layer table, with a forward that stops at the deepest tap and a
backward to the input that adds each tap's gradient where it belongs.

Names (``../shared/spec/objective.md``): ``input`` is the preprocessed network input ``y``;
``convB_K`` is a convolution output before its ReLU; ``blockB_convK`` (alias ``reluB_K``) after it;
``blockB_pool`` (alias ``poolB``) the pooling output. The tape is a plain list of per-op caches:
conv weights, ReLU masks, pool argmax/shape — no activations are kept for the backward pass.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from . import ops
from .backend import to_host, xp_for

BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
BLOCK_CHANNELS = (64, 128, 256, 512, 512)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def conv_layer_table(arch: str) -> list[tuple[str, int, int]]:
    """``[(name, in_channels, out_channels), …]`` for every conv of ``arch`` in network order
    (Keras names ``block1_conv1`` …); kernels are 3x3, stride 1, pad 1."""
    if arch not in BLOCKS:
        raise ValueError(f"unknown architecture {arch!r}: expected one of {', '.join(BLOCKS)}")
    table, cin = [], 3
    for b, (n, cout) in enumerate(zip(BLOCKS[arch], BLOCK_CHANNELS), start=1):
        for k in range(1, n + 1):
            table.append((f"block{b}_conv{k}", cin, cout))
            cin = cout
    return table


def layer_sequence(arch: str) -> list[tuple[str, str]]:
    """The full op chain as ``[(kind, canonical_name)]``: kind is 'conv', 'relu' or 'pool';
    the canonical name of a conv output is ``convB_K``, of a ReLU ``blockB_convK``, of a pool ``blockB_pool``."""
    seq = []
    for b, n in enumerate(BLOCKS[arch], start=1):
        for k in range(1, n + 1):
            seq.append(("conv", f"conv{b}_{k}"))
            seq.append(("relu", f"block{b}_conv{k}"))
        seq.append(("pool", f"block{b}_pool"))
    return seq


def layer_names(arch: str) -> list[str]:
    """Every valid tap name of ``arch`` (canonical names and aliases)."""
    names = ["input"]
    for kind, name in layer_sequence(arch):
        names.append(name)
        names.extend(_aliases(kind, name))
    return names


def _aliases(kind, name):
    if kind == "relu":  # block3_conv2 -> relu3_2
        b, k = name[5], name.split("conv")[1]
        return [f"relu{b}_{k}"]
    if kind == "pool":
        return [f"pool{name[5]}"]
    return []


def canonical_tap(arch: str, tap: str) -> str:
    """Map an alias (``relu4_2``, ``pool3``) to its canonical name; ValueError listing valid names otherwise."""
    if tap == "input":
        return tap
    for kind, name in layer_sequence(arch):
        if tap == name or tap in _aliases(kind, name):
            return name
    raise ValueError(f"unknown layer {tap!r} for {arch}; valid names: {', '.join(layer_names(arch))}")


@dataclasses.dataclass
class VGG:
    """Frozen VGG conv stack: ``params[name] = (w OIHW, b)`` on the engine's device and dtype.

    Preprocessing belongs to the weights (Caffe convention: RGB→BGR, minus ``mean_bgr``, 0..255),
    so callers hand ``preprocess`` plain RGB pixels.
    """
    arch: str
    params: dict
    mean_bgr: tuple = CAFFE_MEAN_BGR
    device: str = "cpu"
    dtype: type = np.float32
    provenance: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        for w, b in self.params.values():  # frozen: lets ops memoise kernel transforms safely
            for a in (w, b):
                if isinstance(a, np.ndarray):
                    a.flags.writeable = False

    @property
    def xp(self):
        return xp_for(self.device)

    def astype(self, dtype) -> "VGG":
        """A copy of the network with parameters in ``dtype`` (float64 for gradient checks)."""
        params = {k: (w.astype(dtype), b.astype(dtype)) for k, (w, b) in self.params.items()}
        return dataclasses.replace(self, params=params, dtype=dtype)

    def to(self, device: str) -> "VGG":
        """A copy of the network on ``device`` ('cpu' or 'gpu')."""
        xp = xp_for(device)
        params = {k: (xp.asarray(to_host(w)), xp.asarray(to_host(b))) for k, (w, b) in self.params.items()}
        return dataclasses.replace(self, params=params, device=device)

    # ----------------------------------------------------------------- pre/post-processing
    def preprocess(self, x):
        """RGB pixels (H, W, 3), 0..255 -> network input (1, 3, H, W): BGR, mean-subtracted, engine dtype."""
        xp = self.xp
        x = xp.asarray(x, dtype=self.dtype)
        y = x[:, :, ::-1] - xp.asarray(self.mean_bgr, dtype=self.dtype)
        return xp.ascontiguousarray(y.transpose(2, 0, 1)[None])

    def preprocess_backward(self, gy):
        """Gradient w.r.t. the RGB pixels (H, W, 3) from the gradient w.r.t. the network input (1, 3, H, W)."""
        return gy[0].transpose(1, 2, 0)[:, :, ::-1]

    def deprocess(self, y):
        """Network input (1, 3, H, W) -> RGB pixels (H, W, 3) float (not clipped)."""
        y = to_host(y)[0].transpose(1, 2, 0) + np.asarray(self.mean_bgr)
        return y[:, :, ::-1]

    # ------------------------------------------------------------------ forward / backward
    def _forward(self, y, canonical_taps, pooling: str, lean: bool):
        """Yield ``(kind, name, h, cache)`` op by op up to the deepest canonical tap.

        ``lean`` runs ReLUs in place (``h`` is valid only until the next step) and bit-packs large
        masks; otherwise every yielded ``h`` is a fresh array that stays valid.
        """
        if pooling not in ("avg", "max"):
            raise ValueError(f"unknown pooling {pooling!r}: expected 'avg' or 'max'")
        seq = layer_sequence(self.arch)
        positions = {name: i for i, (_, name) in enumerate(seq)}
        last = max([positions[t] for t in canonical_taps if t != "input"], default=-1)
        fwd = ops.avg_pool2d_forward if pooling == "avg" else ops.max_pool2d_forward
        bwd = ops.avg_pool2d_backward if pooling == "avg" else ops.max_pool2d_backward
        h = y
        for kind, name in seq[:last + 1]:
            if kind == "conv":
                w, b = self.params[f"block{name[4]}_conv{name.split('_')[1]}"]
                h, cache = ops.conv2d_forward(h, w, b, 1, 1, save_input=False)
            elif kind == "relu":
                h, cache = ops.relu_forward(h, inplace=lean, pack=lean and h.size >= _PACK_MASKS_FROM)
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
        for kind, name, h, _ in self._forward(y, set(at), pooling, lean=True):
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
            raise ValueError(f"gradients given for taps the forward pass did not reach: {sorted(grads)}")
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
                g = tg if g is None else (_accumulate(g, tg) if inplace else g + tg)
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
        (``conv1_1``/``relu1_1``, at least ``_DEFER_FROM`` elements) it is kept that way: the forward
        pass then holds no gradient of the widest map, and the backward pass recomputes those
        features (one conv from the input) and turns them into the gradient in place. At 4096² that
        is 4.3 GB less at the peak, for one extra 3→64 conv. Elsewhere it is evaluated at once.
        """
        at = {}
        for t in taps:
            at.setdefault(canonical_tap(self.arch, t), []).append(t)
        total, stored, later = 0.0, {}, {}
        first = {name for _, name in layer_sequence(self.arch)[:2]}  # one conv (+ its ReLU) from the input

        def visit(name, h):
            nonlocal total
            for t in at.get(name, ()):
                v, g = tap_loss(t, h)
                total += v
                if isinstance(g, DeferredGrad):
                    if name in first and h.size >= _DEFER_FROM:
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
        del h

        def recomputed(name):
            def grad():
                F = next(h for _, n, h, _ in self._forward(y, {name}, pooling, lean=True) if n == name)
                fns = later[name]
                g = fns[0](F if len(fns) == 1 else F.copy(), overwrite=True)
                for fn in fns[1:]:
                    g += fn(F)
                return g if name not in stored else _accumulate(g, stored.pop(name))
            return grad
        g = self._backward(tape, stored, inplace=True, deferred={name: recomputed(name) for name in later})
        return total, (g if g is not None else self.xp.zeros_like(y))


# ReLU masks of at least this many elements are bit-packed (8x smaller, ~free next to a conv).
_PACK_MASKS_FROM = 1 << 22
# First-layer tap gradients of at least this many elements are recomputed in the backward pass
# (64 channels at 1024²: 256 MB saved at the peak for ~2% more time).
_DEFER_FROM = 1 << 26


class DeferredGrad:
    """A tap gradient that needs the tap's features: ``self(F, overwrite=False) -> dL/dF``;
    ``overwrite=True`` may compute it in F's own memory. Returned by ``tap_loss`` callbacks of
    ``VGG.loss_and_input_grad`` when the gradient is linear in F (Gram-based style terms)."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, F, overwrite: bool = False):
        return self.fn(F, overwrite)


def _accumulate(g, extra):
    g += extra
    return g


def min_input_size(arch: str, taps, pooling="avg") -> int:
    """Smallest image side whose pooling chain still leaves at least one pixel at the deepest tap."""
    seq = layer_sequence(arch)
    deepest = max([[n for _, n in seq].index(canonical_tap(arch, t)) for t in taps if canonical_tap(arch, t) != "input"], default=-1)
    pools = sum(1 for kind, _ in seq[:deepest + 1] if kind == "pool")
    return 2 ** pools


def random_vgg(arch: str = "vgg16", seed: int = 0, dtype=np.float32) -> VGG:
    """A VGG with He-initialised random weights (tests, synthetic VGG19 presets, benchmarks without weights)."""
    rng = np.random.default_rng(seed)
    params = {}
    for name, cin, cout in conv_layer_table(arch):
        w = rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2.0 / (9 * cin))
        params[name] = (w.astype(dtype), (rng.standard_normal(cout) * 0.01).astype(dtype))
    return VGG(arch, params, dtype=dtype, provenance={"source": f"random seed {seed}"})


def load_vgg(arch: str = "vgg16", weights=None, device: str = "cpu", flip_kernels=None) -> VGG:
    """Load ``arch`` from ``weights`` (a file path) or, when None, from the verified cache.

    The cache is filled by ``minivgg weights fetch``; a missing cache raises a WeightsError saying so.
    """
    from . import weights as W
    wset = W.load_weights(weights, arch=arch, flip_kernels=flip_kernels) if weights is not None else W.load_cached(arch)
    net = VGG(wset.arch, wset.params, provenance=wset.provenance)
    return net.to(device) if device != "cpu" else net


def gradcheck_cases():
    """A VGG slice (block1-2, float64, 16x16) through ``features``/``backward``, both poolings,
    with gradients entering at a pre-ReLU tap, a ReLU tap, a pool tap and the input at once."""
    from .gradcheck import Case, check_vjp
    cases = []
    taps = ["input", "conv1_2", "block2_conv1", "block1_pool", "conv2_2"]
    for pooling in ("avg", "max"):
        def run(pooling=pooling):
            net = random_vgg("vgg16", seed=1, dtype=np.float64)
            x = np.random.default_rng(2).standard_normal((1, 3, 16, 16)) * 50

            def forward(y):
                feats, tape = net.features(y, taps, pooling)
                flat = np.concatenate([feats[t].ravel() for t in taps])
                return flat, (tape, {t: feats[t].shape for t in taps})

            def backward(u, cache):
                tape, shapes = cache
                grads, k = {}, 0
                for t in taps:
                    n = int(np.prod(shapes[t]))
                    grads[t] = u[k:k + n].reshape(shapes[t])
                    k += n
                return net.backward(tape, grads)
            return check_vjp(forward, backward, (x,), eps=1e-5, name=f"vgg16 slice {pooling}")
        cases.append(Case(f"vgg16 features/backward pooling={pooling}", "(1, 3, 16, 16)", run))
    return cases
