"""VGG16/VGG19 features: a forward over ``arch.layer_sequence`` that stops at the deepest tap and a
backward to the input that adds each tap's gradient where it belongs.

Tap names are ``arch``'s (``input``, ``convB_K``, ``blockB_convK``/``reluB_K``, ``blockB_pool``/``poolB``).
The tape is a plain list of per-op caches: conv weights, ReLU masks, pool argmax/shape — no
activations are kept for the backward pass.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType

import numpy as np

from ..engine import arena, ops
from ..engine.backend import to_host, xp_for
from .arch import CAFFE_MEAN_BGR, canonical_tap, conv_layer_table, conv_param_name, layer_sequence

_TapFn = Callable[[str, np.ndarray], object]  # visit's fn(tap, F)
_TapLoss = Callable[[str, np.ndarray], "tuple[float, np.ndarray | DeferredGrad | None]"]

PACK_MASKS_FROM = 1 << 22
"""ReLU masks of at least this many elements are bit-packed (8x smaller, ~free next to a conv)."""
RECOMPUTE_GRAD_FROM = 1 << 26
"""First-layer tap gradients this large are recomputed backward (256 MB less at 1024²)."""


@dataclasses.dataclass
class VGG:
    """Frozen VGG conv stack: ``params[name] = (w OIHW, b)`` on the engine's device and dtype.

    Preprocessing belongs to the weights (Caffe: RGB→BGR, minus ``mean_bgr``, 0..255), so callers
    hand ``preprocess`` plain RGB pixels. Build one with ``load_vgg`` or ``random_vgg``.

    Parameters
    ----------
    arch, params : {"vgg16", "vgg19"}; dict
        ``params["block1_conv1"] = (w (O, C, 3, 3), b (O,))`` for every conv; made read-only.
    mean_bgr, device, dtype, provenance, pack_masks_from, recompute_grad_from
        Mean pixel (BGR, 0..255); "cpu"/"gpu"; engine dtype; the weights' origin; memory limits.
    conv : {"auto", "im2col", "winograd"}, every conv's algorithm (ValueError if unknown)

    Examples
    --------
    >>> net = random_vgg()
    >>> net.arch, len(net.params), net.params["block1_conv1"][0].shape, net.conv
    ('vgg16', 13, (64, 3, 3, 3), 'auto')
    """

    arch: str
    params: dict
    mean_bgr: tuple = CAFFE_MEAN_BGR
    device: str = "cpu"
    dtype: type = np.float32
    provenance: dict = dataclasses.field(default_factory=dict)
    pack_masks_from: int = PACK_MASKS_FROM
    recompute_grad_from: int = RECOMPUTE_GRAD_FROM
    conv: str = "auto"  # every conv's ops algorithm: auto, im2col or winograd

    def __post_init__(self) -> None:
        if self.conv not in ops.CONV_ALGORITHMS:
            raise ValueError(
                f"unknown conv algorithm {self.conv!r}: expected one of {', '.join(ops.CONV_ALGORITHMS)}"
            )
        for w, b in self.params.values():  # frozen: lets ops memoise kernel transforms safely
            for a in (w, b):
                if isinstance(a, np.ndarray):
                    a.flags.writeable = False

    @property
    def xp(self) -> ModuleType:
        """The array module of ``device``: numpy, or cupy on "gpu"."""
        return xp_for(self.device)

    def astype(self, dtype: type) -> VGG:
        """A copy of the network with parameters in ``dtype`` (float64 for gradient checks).

        Parameters
        ----------
        dtype : float type

        Returns
        -------
        VGG

        Examples
        --------
        >>> random_vgg().astype(np.float64).params["block5_conv3"][1].dtype
        dtype('float64')
        """
        params = {k: (w.astype(dtype), b.astype(dtype)) for k, (w, b) in self.params.items()}
        return dataclasses.replace(self, params=params, dtype=dtype)

    def to(self, device: str) -> VGG:
        """A copy of the network on ``device`` (DeviceError for "gpu" without CuPy and a GPU).

        Parameters
        ----------
        device : {"cpu", "gpu"}

        Returns
        -------
        VGG

        Examples
        --------
        >>> type(random_vgg().to("cpu").params["block1_conv1"][0]).__name__
        'ndarray'
        """
        xp = xp_for(device)
        params = {
            k: (xp.asarray(to_host(w)), xp.asarray(to_host(b))) for k, (w, b) in self.params.items()
        }
        return dataclasses.replace(self, params=params, device=device)

    def preprocess(self, x: np.typing.ArrayLike) -> np.ndarray:
        """RGB pixels -> network input: BGR, mean-subtracted, in the engine dtype.

        Parameters
        ----------
        x : array_like, shape (H, W, 3), uint8 or float, 0..255

        Returns
        -------
        ndarray, shape (1, 3, H, W), ``self.dtype``, on ``self.device``

        Examples
        --------
        >>> y = random_vgg().preprocess(np.full((2, 4, 3), 100, np.uint8))
        >>> y.shape, y.dtype, float(y[0, 0, 0, 0])  # blue first, minus its mean 103.939
        ((1, 3, 2, 4), dtype('float32'), -3.939...)
        """
        xp = self.xp
        rgb = xp.asarray(x)
        y = arena.empty((1, 3) + tuple(rgb.shape[:2]), self.dtype, xp)  # one pass, no temporaries
        xp.subtract(
            rgb.transpose(2, 0, 1)[::-1],
            xp.asarray(self.mean_bgr, dtype=self.dtype)[:, None, None],
            out=y[0],
            casting="unsafe",
        )
        return y

    def preprocess_backward(self, gy: np.ndarray) -> np.ndarray:
        """Gradient w.r.t. the RGB pixels from the gradient w.r.t. the network input.

        Parameters
        ----------
        gy : ndarray, shape (1, 3, H, W)

        Returns
        -------
        ndarray, shape (H, W, 3): a view of ``gy``, channels back in RGB order

        Examples
        --------
        >>> random_vgg().preprocess_backward(np.arange(3.0).reshape(1, 3, 1, 1))
        array([[[2., 1., 0.]]])
        """
        return gy[0].transpose(1, 2, 0)[:, :, ::-1]

    def deprocess(self, y: np.ndarray) -> np.ndarray:
        """Network input -> RGB pixels, the inverse of ``preprocess``.

        Parameters
        ----------
        y : ndarray, shape (1, 3, H, W)

        Returns
        -------
        ndarray, shape (H, W, 3): float, on the host, not clipped to 0..255

        Examples
        --------
        >>> random_vgg().deprocess(np.zeros((1, 3, 1, 1)))  # the mean pixel, RGB
        array([[[123.68 , 116.779, 103.939]]])
        """
        y = to_host(y)[0].transpose(1, 2, 0) + np.asarray(self.mean_bgr)
        return y[:, :, ::-1]

    def _forward(self, y, canonical_taps, pooling: str, lean: bool, masks: bool = True):
        """Yield ``(kind, name, h, cache)`` op by op up to the deepest canonical tap; ``lean``:
        ReLUs in place (``h`` valid one step), large masks packed; ``masks=False``: none kept."""
        if pooling not in ("avg", "max"):
            raise ValueError(f"unknown pooling {pooling!r}: expected 'avg' or 'max'")
        seq = layer_sequence(self.arch)
        positions = {name: i for i, (_, name) in enumerate(seq)}
        last = max([positions[t] for t in canonical_taps if t != "input"], default=-1)
        fwd = ops.avg_pool2d_forward if pooling == "avg" else ops.max_pool2d_forward
        bwd = ops.avg_pool2d_backward if pooling == "avg" else ops.max_pool2d_backward
        cache: object = None  # what the op's backward needs
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

    def features(
        self, y: np.ndarray, taps: Iterable[str], pooling: str = "avg", keep_tape: bool = True
    ) -> tuple[dict[str, np.ndarray], list[tuple]]:
        """Run the network on ``y`` only as deep as the deepest of ``taps``.

        Parameters
        ----------
        y : ndarray, shape (1, 3, H, W), the network input (``preprocess``)
        taps : iterable of str
            Tap names, aliases allowed (ValueError if unknown); ``blockB_convK`` is after the ReLU.
        pooling, keep_tape : {"avg", "max"}; bool, False keeps no tape (target computation)

        Returns
        -------
        (feats, tape) : ``feats[tap]`` (1, C_l, H_l, W_l) per tap; per-op caches for ``backward``

        Examples
        --------
        >>> net = random_vgg()
        >>> feats, tape = net.features(net.preprocess(np.zeros((8, 8, 3))), ["conv1_2", "relu2_1"])
        >>> feats["conv1_2"].shape, feats["relu2_1"].shape, [name for _, name, _ in tape][-2:]
        ((1, 64, 8, 8), (1, 128, 4, 4), ['conv2_1', 'block2_conv1'])
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

    def visit(self, y: np.ndarray, taps: Iterable[str], fn: _TapFn, pooling: str = "avg") -> None:
        """Forward only, calling ``fn(tap, F)`` as soon as each tap is computed; keeps nothing.

        Parameters
        ----------
        y, taps : ndarray, shape (1, 3, H, W); iterable of str
        fn, pooling : callable ``fn(tap, F)``, F (1, C_l, H_l, W_l) valid in the call; avg/max

        Examples
        --------
        >>> net, seen, y = random_vgg(), {}, np.zeros((1, 3, 8, 8), np.float32)
        >>> net.visit(y, ["conv1_1", "pool1"], lambda tap, F: seen.setdefault(tap, F.shape))
        >>> seen
        {'conv1_1': (1, 64, 8, 8), 'pool1': (1, 64, 4, 4)}
        """
        at: dict[str, list[str]] = {}
        for t in taps:
            at.setdefault(canonical_tap(self.arch, t), []).append(t)
        for t in at.get("input", ()):
            fn(t, y)
        for _kind, name, h, _ in self._forward(y, set(at), pooling, lean=True):
            for t in at.get(name, ()):
                fn(t, h)

    def backward(self, tape: list[tuple], tap_grads: Mapping[str, np.ndarray]) -> np.ndarray | None:
        """Gradient w.r.t. the network input from gradients w.r.t. tap features.

        Parameters
        ----------
        tape, tap_grads : list from ``features``; mapping ``tap_grads[tap]`` = dL/dF
            A gradient for a tap the forward pass did not reach is a ValueError.

        Returns
        -------
        ndarray, shape (1, 3, H, W), or None (no ``tap_grads``)

        Examples
        --------
        >>> net, (y, d) = random_vgg(), np.random.default_rng(0).random((2, 1, 3, 8, 8), np.float32)
        >>> feats, tape = net.features(y, ["conv1_1"])  # affine in y: <g, d> is exact
        >>> g = net.backward(tape, {"conv1_1": np.ones_like(feats["conv1_1"])})
        >>> change = net.features(y + d, ["conv1_1"])[0]["conv1_1"].sum() - feats["conv1_1"].sum()
        >>> bool(np.isclose(change, (g * d).sum(), rtol=1e-3))
        True
        """
        grads: dict[str, np.ndarray] = {}
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

    def loss_and_input_grad(
        self, y: np.ndarray, taps: Iterable[str], tap_loss: _TapLoss, pooling: str = "avg"
    ) -> tuple[float, np.ndarray]:
        """The objective's memory-lean path: one forward to the deepest tap, one backward to ``y``.

        As ``features`` + ``backward``, keeping only ReLU masks, pool argmax and tap gradients; a
        large first-layer ``DeferredGrad`` waits for the backward pass (4.3 GB less at 4096²).

        Parameters
        ----------
        y, taps : ndarray, shape (1, 3, H, W); iterable of str
        tap_loss : callable, ``(tap, F) -> (value, dL/dF or None or a DeferredGrad)``
            Called as each tap is computed; ``F`` is valid only during the call.
        pooling : {"avg", "max"}

        Returns
        -------
        (value, grad) : (float, ndarray (1, 3, H, W)), Σ values and dL/dy (0 if no gradient)

        Examples
        --------
        >>> net, y = random_vgg(), np.zeros((1, 3, 8, 8), np.float32)
        >>> value, g = net.loss_and_input_grad(y, ["relu1_1"], lambda t, F: (F.sum(), F * 0 + 1))
        >>> feats, tape = net.features(y, ["relu1_1"])
        >>> g_ref = net.backward(tape, {"relu1_1": np.ones_like(feats["relu1_1"])})
        >>> bool(np.isclose(value, feats["relu1_1"].sum())), bool(np.allclose(g, g_ref))
        (True, True)
        """
        at: dict[str, list[str]] = {}
        for t in taps:
            at.setdefault(canonical_tap(self.arch, t), []).append(t)
        total = 0.0
        stored: dict[str, np.ndarray] = {}
        later: dict[str, list[DeferredGrad]] = {}
        first = {name for _, name in layer_sequence(self.arch)[:2]}  # one conv (+ ReLU) from y

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
    ``overwrite`` may reuse F (``tap_loss`` returns one for gradients linear in F: Gram terms)."""

    def __init__(self, fn: Callable[[np.ndarray, bool], np.ndarray]) -> None:
        self.fn = fn

    def __call__(self, F: np.ndarray, overwrite: bool = False) -> np.ndarray:
        return self.fn(F, overwrite)


def random_vgg(arch: str = "vgg16", seed: int = 0, dtype: type = np.float32) -> VGG:
    """A VGG with He-initialised random weights (tests, examples, benchmarks without weights).

    Parameters
    ----------
    arch, seed, dtype : {"vgg16", "vgg19"}; int >= 0 (same seed, same weights); float type

    Returns
    -------
    VGG, on the CPU

    Examples
    --------
    >>> net = random_vgg("vgg19", seed=1)
    >>> len(net.params), net.params["block1_conv1"][0].dtype, net.provenance["source"]
    (16, dtype('float32'), 'random seed 1')
    """
    rng = np.random.default_rng(seed)
    params: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, cin, cout in conv_layer_table(arch):
        w = rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2.0 / (9 * cin))
        params[name] = (w.astype(dtype), (rng.standard_normal(cout) * 0.01).astype(dtype))
    return VGG(arch, params, dtype=dtype, provenance={"source": f"random seed {seed}"})


def load_vgg(
    arch: str = "vgg16",
    weights: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    flip_kernels: bool | str | None = None,
    conv: str = "auto",
) -> VGG:
    """Load ``arch`` from a weights file or, when ``weights`` is None, from the verified cache.

    Parameters
    ----------
    arch : {"vgg16", "vgg19"}
    weights : str or os.PathLike, optional
        A Keras ``.h5``/``.keras`` or ONNX file; None: the cache ``minivgg weights fetch`` fills.
    device, conv : {"cpu", "gpu"}; the conv algorithm, {"auto", "im2col", "winograd"}
    flip_kernels : bool or {"yes", "no", "auto"}, optional; None is "auto"
        Kernel orientation when the manifest cannot tell it (Theano-era files).

    Returns
    -------
    VGG, float32, on ``device``

    Raises
    ------
    WeightsError
        A missing, unreadable, damaged or mismatched file, or an empty cache (saying what to run).

    Examples
    --------
    >>> import os, tempfile
    >>> from minivgg.network.weights import base, cache
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "random.h5")
    ...     cache.write_cache(path, base.WeightSet("vgg16", random_vgg().params, "keras-h5"), {})
    ...     net = load_vgg("vgg16", weights=path, conv="im2col")
    >>> w = random_vgg().params["block5_conv3"][0]
    >>> net.conv, bool(np.array_equal(net.params["block5_conv3"][0], w))
    ('im2col', True)
    """
    from . import weights as W

    wset = (
        W.load_weights(weights, arch=arch, flip_kernels=flip_kernels)
        if weights is not None
        else W.load_cached(arch)
    )
    net = VGG(wset.arch, wset.params, provenance=wset.provenance, conv=conv)
    return net.to(device) if device != "cpu" else net
