"""The optimiser driver (``minivgg.optim.drivers``): ``lbfgs`` through scipy's L-BFGS-B or the in-house projected
L-BFGS (rounds that restart, callbacks, large bounded problems kept away from scipy, the loss falling
at every iteration on the real objective) and ``adam``; a non-finite loss raises ``NonFiniteError``
naming the term."""

import numpy as np
import pytest

from minivgg.network.vgg import random_vgg
from minivgg.optim import drivers as optim
from minivgg.optim.drivers import NonFiniteError, checked
from minivgg.style.objective import Objective


@pytest.fixture(scope="module")
def net():
    return random_vgg("vgg16", seed=0)


def images(shape, style_shape, seed):
    r = np.random.default_rng(seed)
    return r.integers(0, 256, shape).astype(np.uint8), r.integers(0, 256, style_shape).astype(
        np.uint8
    )


@pytest.mark.parametrize("in_house", [True, False])
def test_lbfgs_rounds_restart_and_report(net, in_house):
    content, style = images((24, 24, 3), (24, 24, 3), seed=8)
    obj = Objective(net, content, style, preset="keras")
    rounds, its = [], []
    optim.lbfgs(
        obj,
        content.astype(np.float64),
        6,
        round_evals=3,
        bounds=None,
        callback=lambda it, xk, terms: its.append(it) and False,
        round_callback=lambda rnd, xk: rounds.append(rnd),
        start_iteration=10,
        in_house=in_house,
    )
    assert rounds == [1, 2] and its[0] == 11


def test_in_house_lbfgs_lowers_the_real_objective_every_iteration(net):
    content, style = images((24, 32, 3), (32, 32, 3), seed=6)
    obj = Objective(net, content, style, preset="gatys")
    x0 = np.random.default_rng(7).uniform(0, 255, content.shape)
    first = obj.value_and_grad(x0)[0]
    seen = []
    x = optim.lbfgs(
        obj,
        x0,
        8,
        in_house=True,
        callback=lambda it, xk, terms: seen.append((it, terms["total"], xk.min(), xk.max())),
    )
    assert [s[0] for s in seen] == list(range(1, 9))
    values = [first] + [s[1] for s in seen]
    assert all(b < a for a, b in zip(values, values[1:]))
    assert values[-1] < 0.5 * values[0]
    assert min(s[2] for s in seen) >= 0 and max(s[3] for s in seen) <= 255
    assert x.shape == x0.shape and x.dtype == np.float64


def test_large_bounded_lbfgs_runs_in_house_not_through_scipy(monkeypatch):
    """Above ``SCIPY_BOUNDS_MAX`` variables scipy would build a Python list of n bound tuples (6 GB at
    4096²): ``optim.lbfgs`` runs the engine's projected L-BFGS instead, with the same callbacks."""

    def no_scipy(*a, **k):
        raise AssertionError("scipy's minimize was called")

    monkeypatch.setattr(optim, "SCIPY_BOUNDS_MAX", 100)
    monkeypatch.setattr(optim, "minimize", no_scipy)
    net = random_vgg("vgg16", seed=1, dtype=np.float64)
    rng = np.random.default_rng(0)
    content, style = rng.uniform(0, 255, (24, 20, 3)), rng.uniform(0, 255, (24, 24, 3))
    obj = Objective(net, content, style, preset="gatys")
    seen = []
    x = optim.lbfgs(
        obj,
        np.clip(content + 30, 0, 255),
        4,
        bounds=(0.0, 255.0),
        history=3,
        callback=lambda it, xk, terms: seen.append((it, terms["total"])),
    )
    assert [it for it, _ in seen] == [1, 2, 3, 4]
    assert all(b <= a for (_, a), (_, b) in zip(seen, seen[1:]))  # the loss never rises
    assert x.shape == content.shape and x.min() >= 0 and x.max() <= 255
    assert obj.value_and_grad(x)[0] < obj.value_and_grad(np.clip(content + 30, 0, 255))[0]


def test_small_problems_go_to_scipy(monkeypatch):
    def no_in_house(*a, **k):
        raise AssertionError("the in-house L-BFGS was called")

    monkeypatch.setattr(optim, "minimize_lbfgs", no_in_house)

    class Quadratic:
        last_terms = None

        def value_and_grad(self, x):
            self.last_terms = {"content": 0.0, "style": float(np.sum((x - 3) ** 2)), "tv": 0.0}
            return self.last_terms["style"], 2 * (x - 3)

    x = optim.lbfgs(Quadratic(), np.zeros((4, 4, 3)), 20)
    np.testing.assert_allclose(x, 3, atol=1e-6)


class Exploding:
    last_terms = None

    def value_and_grad(self, x):
        self.last_terms = {"content": 1.0, "style": float("nan"), "tv": 0.0, "total": float("nan")}
        return float("nan"), np.zeros_like(x)


@pytest.mark.parametrize(
    "run",
    [
        pytest.param(lambda obj, x: optim.lbfgs(obj, x, 3, in_house=True), id="lbfgs-in-house"),
        pytest.param(lambda obj, x: optim.lbfgs(obj, x, 3, in_house=False), id="lbfgs-scipy"),
        pytest.param(lambda obj, x: optim.adam(obj, x, 3), id="adam"),
    ],
)
def test_non_finite_loss_raises_naming_the_term(run):
    with pytest.raises(NonFiniteError, match="style"):
        run(Exploding(), np.zeros((4, 4, 3)))


def test_checked_names_the_gradient_when_only_it_is_non_finite():
    class BadGradient:
        last_terms = {"content": 1.0, "style": 2.0, "tv": 0.0}

        def value_and_grad(self, x):
            return 3.0, np.full_like(x, np.inf)

    with pytest.raises(NonFiniteError, match="the gradient term became non-finite") as exc:
        checked(BadGradient(), np.zeros((2, 2, 3)))
    assert exc.value.term == "gradient"
