"""The engine's gradient checks: one suite that ``minivgg gradcheck`` prints as a table and pytest
runs case by case (``tests/test_checks.py``, one test id per ``Case.id``).

Every op (conv2d w.r.t. x, w, b over strides, pads and kernel sizes; ReLU; both pools), every loss
term (three content norms, four Gram variants on the eager path and on the in-place large-image
path, six TV kinds), a VGG16 slice with gradients entering at five taps, every preset's objective,
``gatys`` with the first layer's style gradient recomputed, and tiled objectives (``tiling.py``: plain,
centred and guided Grams on tiles whose windows end inside the image). Each runs through
``minivgg.gradcheck``'s directional test in float64 or, end to end, in float32 (``Case.check``),
with the step and tolerance the checker derives and plain random inputs: no case picks its inputs
away from ReLU kinks or max-pool ties, the checker tells those apart itself. Each case builds its
own data from a fixed seed, so a filter never changes it.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import inspect
from collections.abc import Callable, Iterable

import numpy as np

from ..engine import ops
from ..gradcheck import CheckResult, check_grad, check_vjp
from ..network.vgg import random_vgg
from ..style import losses
from ..style.objective import Objective
from ..style.presets import PRESETS
from ..style.regions import MASK_MODES, guided_style_loss
from ..style.temporal import temporal_loss

DTYPES = ("float64", "float32")


@dataclasses.dataclass
class Case:
    """One row of ``minivgg gradcheck``: a name, a shape label and ``run(dtype=np.float64) -> CheckResult``
    (a ``run`` without a ``dtype`` parameter is a float64-only case)."""

    name: str
    shape: str
    run: Callable[..., CheckResult]

    @property
    def id(self) -> str:
        """Unique within the suite: the name and the shape."""
        return f"{self.name} {self.shape}"

    @property
    def dtypes(self) -> tuple:
        """The dtypes the case runs in: both when ``run`` takes a ``dtype``, else float64."""
        try:
            return DTYPES if "dtype" in inspect.signature(self.run).parameters else DTYPES[:1]
        except (TypeError, ValueError):
            return DTYPES[:1]

    def check(self, dtype="float64") -> CheckResult:
        """Run the case in ``dtype`` ("float64" or "float32")."""
        dtype = np.dtype(dtype).name
        if dtype not in self.dtypes:
            raise ValueError(f"{self.id} runs only in {', '.join(self.dtypes)}")
        return self.run(dtype=np.dtype(dtype).type) if len(self.dtypes) > 1 else self.run()


def op_cases() -> list[Case]:
    """conv2d (x, w, b), relu, avg and max pooling over representative shapes, strides and pads."""
    cases = []
    conv_grid = [
        ((2, 3, 7, 6), (4, 3, 3, 3), 1, 1),
        ((1, 2, 9, 8), (3, 2, 3, 3), 2, 1),
        ((1, 3, 8, 7), (2, 3, 2, 2), 1, 0),
        ((1, 2, 7, 9), (3, 2, 5, 3), 2, 2),
    ]
    for k, (xs, ws, s, p) in enumerate(conv_grid):
        for wrt, label in ((0, "x"), (1, "w"), (2, "b")):

            def run(dtype=np.float64, xs=xs, ws=ws, s=s, p=p, wrt=wrt, seed=k):
                rng = np.random.default_rng(seed)
                x, w, b = (
                    rng.standard_normal(xs),
                    rng.standard_normal(ws),
                    rng.standard_normal(ws[0]),
                )
                return check_vjp(
                    ops.conv2d_forward,
                    lambda g, c: ops.conv2d_backward(g, c, need_params=True),
                    (x, w, b),
                    wrt=wrt,
                    kwargs={"stride": s, "pad": p},
                    name="conv2d",
                    dtype=dtype,
                )

            cases.append(Case(f"conv2d d/d{label} s{s}p{p} k{ws[2]}x{ws[3]}", f"{xs}", run))
    for k, shape in enumerate(((2, 3, 6, 5), (1, 4, 7, 7))):
        for op in ("relu", "avg_pool2d", "max_pool2d"):
            fwd, bwd = getattr(ops, f"{op}_forward"), getattr(ops, f"{op}_backward")

            def run_unary(dtype=np.float64, shape=shape, k=k, fwd=fwd, bwd=bwd, op=op):
                x = np.random.default_rng(100 + k).standard_normal(
                    shape
                )  # plain normal: kinks are the checker's
                return check_vjp(fwd, bwd, (x,), name=op, dtype=dtype)

            cases.append(Case(op, f"{shape}", run_unary))
    return cases


def loss_cases() -> list[Case]:
    """Every loss term: content norms, Gram variants (eager and in place), TV kinds."""
    F_shape, x_shape = (1, 5, 4, 3), (6, 7, 3)
    rng = lambda: np.random.default_rng(1)
    P, F0 = (lambda r: (r.standard_normal(F_shape), r.standard_normal(F_shape)))(rng())
    cases = [
        Case(
            f"content_loss {norm}",
            str(F_shape),
            lambda dtype=np.float64, norm=norm: check_grad(
                lambda F: losses.content_loss(F, P.astype(F.dtype), norm),
                F0,
                name="content",
                dtype=dtype,
            ),
        )
        for norm in losses.CONTENT_NORMS
    ]
    for k, kind in enumerate(losses.GRAMS):
        A = losses.gram_variant(np.random.default_rng(10 + k).standard_normal(F_shape), kind)

        def in_place(
            F, A=A, kind=kind
        ):  # the large-image path: the gradient written into F's memory
            value, grad = losses.style_loss_deferred(F, A.astype(F.dtype), kind, 0.3)
            return value, grad(F.copy(), overwrite=True)

        cases.append(
            Case(
                f"style_loss gram={kind}",
                str(F_shape),
                lambda dtype=np.float64, kind=kind, A=A: check_grad(
                    lambda F: losses.style_loss(F, A.astype(F.dtype), kind, 0.3),
                    F0,
                    name="style",
                    dtype=dtype,
                ),
            )
        )
        cases.append(
            Case(
                f"style_loss gram={kind} in place",
                str(F_shape),
                lambda dtype=np.float64, f=in_place: check_grad(
                    f, F0, name="style in place", dtype=dtype
                ),
            )
        )
        cases.append(
            Case(
                f"gram_backward gram={kind} in place, column blocks",
                str(F_shape),
                lambda dtype=np.float64, kind=kind: _gram_in_place(kind, F0, dtype),
            )
        )
    x0 = np.random.default_rng(2).uniform(
        0, 255, x_shape
    )  # pixels; the |d| kinds' kinks are the checker's to dodge
    cases += [
        Case(
            f"tv_loss {kind}",
            str(x_shape),
            lambda dtype=np.float64, kind=kind: check_grad(
                lambda x: losses.tv_loss(x, kind), x0, name="tv", dtype=dtype
            ),
        )
        for kind in losses.TV_KINDS
    ]
    r = np.random.default_rng(3)  # the video's temporal loss: a warped target and a 0..1 mask
    target, mask = (
        r.uniform(0, 255, x_shape),
        (r.uniform(size=x_shape[:2]) > 0.3) * r.uniform(size=x_shape[:2]),
    )
    cases.append(
        Case(
            "temporal_loss",
            str(x_shape),
            lambda dtype=np.float64: check_grad(
                lambda x: temporal_loss(x, target.astype(x.dtype), mask),
                x0,
                name="temporal",
                dtype=dtype,
            ),
        )
    )
    return cases


def _gram_in_place(kind, F0, dtype=np.float64):
    """``gram_backward(overwrite=True)`` against ``gram`` as a VJP, in column blocks of 2 per channel."""
    C, M = F0.shape[1], F0.shape[2] * F0.shape[3]
    scale, center = losses.GRAMS[kind][0](C, M), losses.GRAMS[kind][1]
    return check_vjp(
        lambda F: (losses.gram(F, scale, center), None),
        lambda u, _, F=F0.astype(dtype): losses.gram_backward(  # noqa: B008  (bound once)
            u, F.copy(), scale, center, overwrite=True, block_elements=2 * C
        ),
        (F0,),
        name=f"gram_backward {kind}",
        dtype=dtype,
    )


def vgg_cases() -> list[Case]:
    """A VGG16 slice (block1-2, 16x16) through ``features``/``backward``, both poolings, with gradients
    entering at a pre-ReLU tap, a ReLU tap, a pool tap and the input at once."""
    taps = ["input", "conv1_2", "block2_conv1", "block1_pool", "conv2_2"]

    def run(pooling, dtype):
        net = random_vgg("vgg16", seed=1, dtype=dtype)
        x = np.random.default_rng(2).standard_normal((1, 3, 16, 16)) * 50

        def forward(y):
            feats, tape = net.features(y, taps, pooling)
            return np.concatenate([feats[t].ravel() for t in taps]), (
                tape,
                {t: feats[t].shape for t in taps},
            )

        def backward(u, cache):
            tape, shapes = cache
            grads, k = {}, 0
            for t in taps:
                n = int(np.prod(shapes[t]))
                grads[t] = u[k : k + n].reshape(shapes[t])
                k += n
            return net.backward(tape, grads)

        return check_vjp(forward, backward, (x,), name=f"vgg16 slice {pooling}", dtype=dtype)

    return [
        Case(
            f"vgg16 features/backward pooling={p}",
            "(1, 3, 16, 16)",
            lambda dtype=np.float64, p=p: run(p, dtype),
        )
        for p in ("avg", "max")
    ]


def objective_cases() -> list[Case]:
    """Every preset's full objective on a small random-weight network, and ``gatys`` with the first
    layer's style gradient recomputed in the backward pass (the large-image memory path)."""

    def run(name, dtype, recompute=False):
        rng = np.random.default_rng(3)
        net = random_vgg(PRESETS[name].arch, seed=0, dtype=dtype)
        if recompute:
            net = dataclasses.replace(net, recompute_grad_from=1)
        content = rng.integers(0, 256, (40, 32, 3)).astype(np.uint8)
        style = rng.integers(0, 256, (32, 44, 3)).astype(np.uint8)
        obj = Objective(net, content, style, preset=name)
        x = content + rng.uniform(-20, 20, content.shape)
        return check_grad(obj.value_and_grad, x, name=name, dtype=dtype)

    cases = [
        Case(
            f"objective preset={name}",
            "(40, 32, 3)",
            lambda dtype=np.float64, name=name: run(name, dtype),
        )
        for name in PRESETS
    ]
    cases.append(
        Case(
            "objective preset=gatys, first-layer gradient recomputed",
            "(40, 32, 3)",
            lambda dtype=np.float64: run("gatys", dtype, recompute=True),
        )
    )
    return cases + tiled_cases()


# Shallow taps keep the halo small (4 and 8 pixels), so 16-pixel tiles of a 40x32 image have windows
# that end inside the image: the halo, the owned parts and the sum over windows are all exercised.
_TILED = {
    "gatys": {
        "content_layers": ("block1_conv2",),
        "style_layers": ("block1_conv1", "block2_conv1"),
    },
    "cntk": {
        "content_layers": ("input", "block1_conv2"),
        "style_layers": ("block2_pool", "block1_conv1"),
    },
}


def tiled_cases() -> list[Case]:
    """The tiled objective (16-pixel tiles): ``gatys`` (plain Grams), ``cntk`` (centred Grams, a pool
    tap, the input as a content tap) and ``gatys`` with two regions (guided Grams)."""

    def run(name, dtype, regions=False):
        rng = np.random.default_rng(6)
        net = random_vgg("vgg16", seed=0, dtype=dtype)
        content = rng.integers(0, 256, (40, 32, 3)).astype(np.uint8)
        style = rng.integers(0, 256, (36, 44, 3)).astype(np.uint8)
        kw = {}
        if regions:
            left = np.zeros((40, 32))
            left[:, :12] = 1
            kw = {"content_masks": [left, 1 - left]}
            style = [style, rng.integers(0, 256, (20, 24, 3)).astype(np.uint8)]
        obj = Objective(net, content, style, preset=name, tile_size=16, **_TILED[name], **kw)
        x = content + rng.uniform(-20, 20, content.shape)
        return check_grad(obj.value_and_grad, x, name=f"{name} tiled", dtype=dtype)

    return [
        Case(
            f"objective preset={name}, tiled",
            "(40, 32, 3)",
            lambda dtype=np.float64, name=name: run(name, dtype),
        )
        for name in _TILED
    ] + [
        Case(
            "objective preset=gatys, tiled, two regions",
            "(40, 32, 3)",
            lambda dtype=np.float64: run("gatys", dtype, regions=True),
        )
    ]


def region_cases() -> list[Case]:
    """The guided (masked) style term: its loss with plain and centred Grams, and the ``gatys``
    objective with two regions (a mask per style image, a style mask) for each mask propagation."""
    F_shape = (1, 5, 4, 3)
    rng = np.random.default_rng(4)
    F0, A, mask = (
        rng.standard_normal(F_shape),
        rng.standard_normal((5, 5)),
        rng.uniform(0, 1, (4, 3)),
    )
    cases = [
        Case(
            f"guided_style_loss center={center}",
            str(F_shape),
            lambda dtype=np.float64, center=center: check_grad(
                lambda F: guided_style_loss(
                    F, A.astype(F.dtype), mask.astype(F.dtype), 0.7, center, 0.3
                ),
                F0,
                name="guided style",
                dtype=dtype,
            ),
        )
        for center in (False, True)
    ]

    def run(mode, dtype):
        r = np.random.default_rng(5)
        net = random_vgg("vgg16", seed=0, dtype=dtype)
        content = r.integers(0, 256, (40, 32, 3)).astype(np.uint8)
        styles = [
            r.integers(0, 256, (32, 44, 3)).astype(np.uint8),
            r.integers(0, 256, (36, 36, 3)).astype(np.uint8),
        ]
        left = np.zeros((40, 32))
        left[:, :16] = 1
        style_mask = np.ones((36, 36))
        style_mask[:10] = 0
        obj = Objective(
            net,
            content,
            styles,
            preset="gatys",
            content_masks=[left, 1 - left],
            style_masks=[None, style_mask],
            mask_mode=mode,
        )
        x = content + r.uniform(-20, 20, content.shape)
        return check_grad(obj.value_and_grad, x, name=f"regions {mode}", dtype=dtype)

    return cases + [
        Case(
            f"objective preset=gatys, two regions, masks={mode}",
            "(40, 32, 3)",
            lambda dtype=np.float64, mode=mode: run(mode, dtype),
        )
        for mode in MASK_MODES
    ]


def conv_algorithm_cases() -> list[Case]:
    """conv2d with each algorithm forced (``algorithm="im2col"``: the banded GEMM; ``"winograd"``:
    F(2x2,3x3) and its adjoint) w.r.t. x, w and b on 3x3/s1/p1 shapes, odd sizes included, and the
    VGG16 slice of ``vgg_cases`` run on im2col convs."""
    cases = []
    for algorithm in ("im2col", "winograd"):
        for k, (xs, ws) in enumerate((((2, 3, 7, 6), (4, 3, 3, 3)), ((1, 2, 5, 9), (3, 2, 3, 3)))):
            for wrt, label in ((0, "x"), (1, "w"), (2, "b")):

                def run(dtype=np.float64, xs=xs, ws=ws, wrt=wrt, algorithm=algorithm, seed=200 + k):
                    rng = np.random.default_rng(seed)
                    x, w, b = (
                        rng.standard_normal(xs),
                        rng.standard_normal(ws),
                        rng.standard_normal(ws[0]),
                    )
                    return check_vjp(
                        ops.conv2d_forward,
                        lambda g, c: ops.conv2d_backward(g, c, need_params=True),
                        (x, w, b),
                        wrt=wrt,
                        kwargs={"algorithm": algorithm},
                        name=f"conv2d {algorithm}",
                        dtype=dtype,
                    )

                cases.append(
                    Case(f"conv2d algorithm={algorithm} d/d{label} s1p1 k3x3", f"{xs}", run)
                )
    taps = ["input", "conv1_2", "block1_pool", "conv2_2"]

    def vgg_im2col(dtype=np.float64):
        net = dataclasses.replace(random_vgg("vgg16", seed=1, dtype=dtype), conv="im2col")
        x = np.random.default_rng(2).standard_normal((1, 3, 12, 10)) * 50

        def forward(y):
            feats, tape = net.features(y, taps)
            return np.concatenate([feats[t].ravel() for t in taps]), (
                tape,
                {t: feats[t].shape for t in taps},
            )

        def backward(u, cache):
            tape, shapes = cache
            sizes = np.cumsum([0] + [int(np.prod(shapes[t])) for t in taps])
            return net.backward(
                tape, {t: u[a:b].reshape(shapes[t]) for t, a, b in zip(taps, sizes, sizes[1:])}
            )

        return check_vjp(forward, backward, (x,), name="vgg16 slice im2col", dtype=dtype)

    cases.append(Case("vgg16 features/backward conv=im2col", "(1, 3, 12, 10)", vgg_im2col))
    return cases


def all_cases(pattern: str = "*", dtype: str | None = None) -> list[Case]:
    """Every check, in table order; ``pattern`` (a glob) keeps those whose name matches, ``dtype`` those
    that run in it."""
    cases = (
        op_cases()
        + conv_algorithm_cases()
        + loss_cases()
        + vgg_cases()
        + objective_cases()
        + region_cases()
    )
    return [
        c
        for c in cases
        if fnmatch.fnmatch(c.name, pattern) and (dtype is None or np.dtype(dtype).name in c.dtypes)
    ]


def run_case(case: Case, dtype="float64") -> tuple[CheckResult | None, str | None]:
    """``(result, None)``, or ``(None, "Type: message")`` when the check itself crashed."""
    try:
        return case.check(dtype), None
    except Exception as exc:  # a check that crashes fails, with the reason on its row
        return None, f"{type(exc).__name__}: {exc}"


def run_cases(cases: Iterable[Case], out=print, dtype="float64") -> bool:
    """Run ``cases`` in ``dtype`` and print the table (check, shape, relative error, the tolerance it was
    held to, the step, verdict) with the full report under any row that did not pass; True when all pass."""
    ok = True
    out(
        f"{'check':<52} {'shape':<16} {'error':>9} {'tolerance':>9} {'eps':>9}  verdict ({np.dtype(dtype).name})"
    )
    out("-" * 110)
    for case in cases:
        res, crash = run_case(case, dtype)
        if res is None:
            ok = False
            out(f"{case.name:<52} {case.shape:<16} {'-':>9} {'-':>9} {'-':>9}  ERROR: {crash}")
            continue
        ok &= res.passed
        out(
            f"{case.name:<52} {case.shape:<16} {res.error:>9.2e} {res.tolerance:>9.2e} {res.eps:>9.2e}  "
            f"{'pass' if res.passed else res.verdict.upper()}"
        )
        if not res.passed:
            for line in res.report().splitlines():
                out(f"    {line.strip()}")
    return ok
