"""The engine's gradient checks: one suite that ``minivgg gradcheck`` prints as a table and pytest
runs case by case (``tests/test_checks.py``, one test id per ``Case.id``).

Every op (conv2d w.r.t. x, w, b over strides, pads and kernel sizes; ReLU; both pools), every loss
term (three content norms, four Gram variants on the eager path and on the in-place large-image
path, six TV kinds), a VGG16 slice with gradients entering at five taps, every preset's objective,
and ``gatys`` with the first layer's style gradient recomputed. All float64, ``minivgg.gradcheck``'s
directional test; each case builds its own data from a fixed seed, so a filter never changes it.
"""
from __future__ import annotations

import dataclasses
import fnmatch
from typing import Callable, Iterable

import numpy as np

from . import losses, ops
from .gradcheck import CheckResult, check_grad, check_vjp
from .objective import Objective
from .presets import PRESETS
from .vgg import random_vgg


@dataclasses.dataclass
class Case:
    """One row of ``minivgg gradcheck``: a name, a shape label and a thunk returning a CheckResult."""
    name: str
    shape: str
    run: Callable[[], CheckResult]

    @property
    def id(self) -> str:
        """Unique within the suite: the name and the shape."""
        return f"{self.name} {self.shape}"


def _kinkless(rng, shape, gap=0.05):
    """Normal samples pushed at least ``gap`` away from 0, so ReLU kinks sit far outside ±ε."""
    z = rng.standard_normal(shape)
    return z + np.sign(z) * gap + (z == 0) * gap


def _distinct(rng, shape):
    """Values that are all distinct (spaced 1/size apart), so max-pool has no ties within ±ε."""
    n = int(np.prod(shape))
    return (rng.permutation(n).astype(np.float64) / n).reshape(shape) * 4 - 2


def op_cases() -> list[Case]:
    """conv2d (x, w, b), relu, avg and max pooling over representative shapes, strides and pads."""
    cases = []
    conv_grid = [((2, 3, 7, 6), (4, 3, 3, 3), 1, 1), ((1, 2, 9, 8), (3, 2, 3, 3), 2, 1),
                 ((1, 3, 8, 7), (2, 3, 2, 2), 1, 0), ((1, 2, 7, 9), (3, 2, 5, 3), 2, 2)]
    for k, (xs, ws, s, p) in enumerate(conv_grid):
        for wrt, label in ((0, "x"), (1, "w"), (2, "b")):
            def run(xs=xs, ws=ws, s=s, p=p, wrt=wrt, seed=k):
                rng = np.random.default_rng(seed)
                x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
                return check_vjp(ops.conv2d_forward, lambda g, c: ops.conv2d_backward(g, c, need_params=True),
                                 (x, w, b), wrt=wrt, kwargs={"stride": s, "pad": p}, name="conv2d")
            cases.append(Case(f"conv2d d/d{label} s{s}p{p} k{ws[2]}x{ws[3]}", f"{xs}", run))
    for k, shape in enumerate(((2, 3, 6, 5), (1, 4, 7, 7))):
        rng = lambda k=k: np.random.default_rng(100 + k)  # noqa: E731
        cases.append(Case("relu", f"{shape}", lambda shape=shape, rng=rng: check_vjp(
            ops.relu_forward, ops.relu_backward, (_kinkless(rng(), shape),), name="relu")))
        cases.append(Case("avg_pool2d", f"{shape}", lambda shape=shape, rng=rng: check_vjp(
            ops.avg_pool2d_forward, ops.avg_pool2d_backward, (rng().standard_normal(shape),), name="avg_pool2d")))
        cases.append(Case("max_pool2d", f"{shape}", lambda shape=shape, rng=rng: check_vjp(
            ops.max_pool2d_forward, ops.max_pool2d_backward, (_distinct(rng(), shape),), name="max_pool2d", eps=1e-7)))
    return cases


def loss_cases() -> list[Case]:
    """Every loss term: content norms, Gram variants (eager and in place), TV kinds."""
    F_shape, x_shape = (1, 5, 4, 3), (6, 7, 3)
    rng = lambda: np.random.default_rng(1)  # noqa: E731
    P, F0 = (lambda r: (r.standard_normal(F_shape), r.standard_normal(F_shape)))(rng())
    cases = [Case(f"content_loss {norm}", str(F_shape),
                  lambda norm=norm: check_grad(lambda F: losses.content_loss(F, P, norm), F0, name="content"))
             for norm in losses.CONTENT_NORMS]
    for k, kind in enumerate(losses.GRAMS):
        A = losses.gram_variant(np.random.default_rng(10 + k).standard_normal(F_shape), kind)

        def in_place(F, A=A, kind=kind):  # the large-image path: the gradient written into F's memory
            value, grad = losses.style_loss_deferred(F, A, kind, 0.3)
            return value, grad(F.copy(), overwrite=True)
        cases.append(Case(f"style_loss gram={kind}", str(F_shape), lambda kind=kind, A=A: check_grad(
            lambda F: losses.style_loss(F, A, kind, 0.3), F0, name="style")))
        cases.append(Case(f"style_loss gram={kind} in place", str(F_shape),
                          lambda f=in_place: check_grad(f, F0, name="style in place")))
        cases.append(Case(f"gram_backward gram={kind} in place, column blocks", str(F_shape),
                          lambda kind=kind: _gram_in_place(kind, F0)))
    # |d| kinks are dodged: distinct values spaced far beyond eps.
    x0 = np.random.default_rng(2).permutation(int(np.prod(x_shape))).reshape(x_shape).astype(np.float64) * 0.37
    cases += [Case(f"tv_loss {kind}", str(x_shape), lambda kind=kind: check_grad(
        lambda x: losses.tv_loss(x, kind), x0, name="tv")) for kind in losses.TV_KINDS]
    return cases


def _gram_in_place(kind, F0):
    """``gram_backward(overwrite=True)`` against ``gram`` as a VJP, in column blocks of 2 per channel."""
    C, M = F0.shape[1], F0.shape[2] * F0.shape[3]
    scale, center = losses.GRAMS[kind][0](C, M), losses.GRAMS[kind][1]
    return check_vjp(lambda F: (losses.gram(F, scale, center), None),
                     lambda u, _, F=F0: losses.gram_backward(u, F.copy(), scale, center, overwrite=True,
                                                             block_elements=2 * C),
                     (F0,), name=f"gram_backward {kind}")


def vgg_cases() -> list[Case]:
    """A VGG16 slice (block1-2, 16x16) through ``features``/``backward``, both poolings, with gradients
    entering at a pre-ReLU tap, a ReLU tap, a pool tap and the input at once."""
    taps = ["input", "conv1_2", "block2_conv1", "block1_pool", "conv2_2"]

    def run(pooling):
        net = random_vgg("vgg16", seed=1, dtype=np.float64)
        x = np.random.default_rng(2).standard_normal((1, 3, 16, 16)) * 50

        def forward(y):
            feats, tape = net.features(y, taps, pooling)
            return np.concatenate([feats[t].ravel() for t in taps]), (tape, {t: feats[t].shape for t in taps})

        def backward(u, cache):
            tape, shapes = cache
            grads, k = {}, 0
            for t in taps:
                n = int(np.prod(shapes[t]))
                grads[t] = u[k:k + n].reshape(shapes[t])
                k += n
            return net.backward(tape, grads)
        return check_vjp(forward, backward, (x,), eps=1e-5, name=f"vgg16 slice {pooling}")
    return [Case(f"vgg16 features/backward pooling={p}", "(1, 3, 16, 16)", lambda p=p: run(p)) for p in ("avg", "max")]


def objective_cases() -> list[Case]:
    """Every preset's full objective on a small random-weight network, and ``gatys`` with the first
    layer's style gradient recomputed in the backward pass (the large-image memory path)."""
    def run(name, recompute=False):
        rng = np.random.default_rng(3)
        net = random_vgg(PRESETS[name].arch, seed=0, dtype=np.float64)
        if recompute:
            net = dataclasses.replace(net, recompute_grad_from=1)
        content = rng.integers(0, 256, (40, 32, 3)).astype(np.uint8)
        style = rng.integers(0, 256, (32, 44, 3)).astype(np.uint8)
        obj = Objective(net, content, style, preset=name)
        x = content + rng.uniform(-20, 20, content.shape)
        return check_grad(obj.value_and_grad, x, eps=1e-4, rtol=1e-5, name=name)
    cases = [Case(f"objective preset={name}", "(40, 32, 3)", lambda name=name: run(name)) for name in PRESETS]
    cases.append(Case("objective preset=gatys, first-layer gradient recomputed", "(40, 32, 3)",
                      lambda: run("gatys", recompute=True)))
    return cases


def all_cases(pattern: str = "*") -> list[Case]:
    """Every check, in table order; ``pattern`` (a glob) keeps those whose name matches."""
    cases = op_cases() + loss_cases() + vgg_cases() + objective_cases()
    return [c for c in cases if fnmatch.fnmatch(c.name, pattern)]


def run_cases(cases: Iterable[Case], out=print) -> bool:
    """Run ``cases`` and print the table (check, shape, max relative error, verdict); True when all pass."""
    ok = True
    out(f"{'check':<52} {'shape':<16} {'rel. error':>11}  result")
    out("-" * 90)
    for case in cases:
        try:
            res = case.run()
            passed, label, err = res.passed, "pass" if res.passed else "FAIL", f"{res.error:.2e}"
        except Exception as exc:  # a check that crashes fails, with the reason on its row
            passed, label, err = False, f"ERROR: {exc}", "-"
        ok &= passed
        out(f"{case.name:<52} {case.shape:<16} {err:>11}  {label}")
    return ok
