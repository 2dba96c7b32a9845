"""``bench.parameterize`` (issue 25): the colour and pyramid maps against their adjoints and a
reference resampler, exact round trips, both wrappers' gradients against finite differences (a
quadratic and the real ``Objective`` on a tiny random VGG), and short unbounded L-BFGS runs."""

import doctest
import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from minivgg.gradcheck import assert_grad
from minivgg.network.vgg import random_vgg
from minivgg.optim.drivers import lbfgs
from minivgg.style.objective import Objective

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # bench/ is a folder of the checkout, not an installed package
    sys.path.insert(0, str(REPO))
pz = importlib.import_module("bench.parameterize")
ColorDecorrelated, LaplacianPyramid = pz.ColorDecorrelated, pz.LaplacianPyramid

SHAPES = [(16, 16, 3), (13, 10, 3), (9, 17, 3)]


class Quadratic:
    """``L(x) = ½ Σ w (x - t)²`` with its exact gradient, and ``last_terms`` as an Objective's."""

    def __init__(self, rng, shape):
        self.target = rng.uniform(0, 255, shape)
        self.weight = rng.uniform(0.5, 2.0, shape)
        self.last_terms = None

    def value_and_grad(self, x):
        r = x - self.target
        value = 0.5 * float(np.sum(self.weight * r * r))
        self.last_terms = {"content": value, "style": 0.0, "tv": 0.0, "total": value}
        return value, self.weight * r


def tiny_objective(shape=(16, 16, 3)):
    """The real objective (gatys, two shallow taps) on a float64 random VGG16: no weights needed."""
    rng = np.random.default_rng(7)
    content, style = rng.integers(0, 256, (2, *shape)).astype(np.uint8)
    net = random_vgg("vgg16", seed=0, dtype=np.float64)
    return Objective(net, content, style, "gatys", content_layers="relu2_1", style_layers="relu1_1")


def wrappers(obj, shape):
    """Each parameterisation of ``obj`` by name, the composition included."""
    return {
        "color": ColorDecorrelated(obj, mean=np.array([120.0, 110.0, 100.0])),
        "pyramid": LaplacianPyramid(obj, shape, levels=3),
        "pyramid-scaled": LaplacianPyramid(obj, shape, levels=4, level_scale=2.0),
        "pyramid-of-colors": LaplacianPyramid(ColorDecorrelated(obj), shape, levels=3),
    }


def random_state(wrapper, rng, shape):
    """A random z of the wrapper's state shape."""
    size = getattr(wrapper, "x0_shape", shape)
    return rng.standard_normal(size)


def from_image(wrapper, x):
    """The wrapper's state for picture x, through an inner wrapper when there is one."""
    inner = getattr(wrapper, "obj", None)
    return wrapper.from_image(inner.from_image(x) if hasattr(inner, "from_image") else x)


def image_of(wrapper, z):
    """The picture of state z, through an inner wrapper when there is one."""
    inner = getattr(wrapper, "obj", None)
    x = wrapper.to_image(z)
    return inner.to_image(x) if hasattr(inner, "to_image") else x


# ---------------------------------------------------------------------------- the maps themselves


@pytest.mark.parametrize(("n_out", "n_in"), [(16, 8), (13, 7), (10, 3), (9, 1), (7, 7), (5, 4)])
def test_interpolation_matrix_matches_scipy_zoom(n_out, n_in, rng):
    z = rng.standard_normal((n_in, 4))
    reference = ndimage.zoom(z, (n_out / n_in, 1), order=1, grid_mode=True, mode="nearest")
    A = pz.interpolation_matrix(n_out, n_in)
    np.testing.assert_allclose(A @ z, reference, rtol=0, atol=1e-13)
    np.testing.assert_allclose(A.sum(axis=1), 1.0, rtol=0, atol=1e-15)
    assert np.all(A >= 0)


def test_interpolation_matrix_of_equal_sizes_is_the_identity():
    assert np.array_equal(pz.interpolation_matrix(6, 6), np.eye(6))


@pytest.mark.parametrize("shape", SHAPES)
def test_pyramid_levels_are_ceil_halvings_down_to_one_pixel(shape):
    pyramid = LaplacianPyramid(None, shape, levels=6)
    H, W, C = shape
    expect = [(-(-H // 2**k), -(-W // 2**k), C) for k in range(6)]
    assert pyramid.level_shapes == expect
    assert pyramid.x0_shape == (sum(h * w * c for h, w, c in expect),)


@pytest.mark.parametrize("shape", SHAPES)
def test_pyramid_upsampling_matches_scipy_zoom_level_by_level(shape, rng):
    pyramid = LaplacianPyramid(None, shape, levels=4)
    for k, level_shape in enumerate(pyramid.level_shapes):
        levels = [np.zeros(s) for s in pyramid.level_shapes]
        levels[k] = rng.standard_normal(level_shape)
        h, w, _ = level_shape
        zoom = (shape[0] / h, shape[1] / w, 1)
        reference = ndimage.zoom(levels[k], zoom, order=1, grid_mode=True, mode="nearest")
        x = pyramid.to_image(pyramid.pack(levels))
        np.testing.assert_allclose(x, reference, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["color", "pyramid", "pyramid-scaled"])
@pytest.mark.parametrize("shape", SHAPES)
def test_pullback_is_the_exact_adjoint(name, shape, rng):
    """<T z - T 0, g> == <z, Tᵀ g>: the dot-product test of each map's linear part."""
    wrapper = wrappers(None, shape)[name]
    z = random_state(wrapper, rng, shape)
    g = rng.standard_normal(shape)
    image = wrapper.to_image(z) - wrapper.to_image(np.zeros_like(z))
    lhs = float(np.sum(image * g))
    rhs = float(np.sum(z * wrapper.pullback(g)))
    assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-14 * float(np.abs(image * g).sum()))


# ---------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("shape", SHAPES)
def test_pyramid_from_image_is_exact_and_pack_unpack_round_trip(shape, rng):
    pyramid = LaplacianPyramid(None, shape, levels=4, level_scale=2.0)
    x = rng.uniform(0, 255, shape)
    assert np.array_equal(pyramid.to_image(pyramid.from_image(x)), x)
    levels = [rng.standard_normal(s) for s in pyramid.level_shapes]
    v = pyramid.pack(levels)
    assert v.shape == pyramid.x0_shape and v.dtype == np.float64
    for a, b in zip(pyramid.unpack(v), levels):
        assert np.array_equal(a, b)
    assert np.array_equal(pyramid.pack(pyramid.unpack(v)), v)
    with pytest.raises(ValueError, match="pyramid state has"):
        pyramid.unpack(v[:-1])


@pytest.mark.parametrize("mean", [127.5, (120.0, 110.0, 100.0)])
def test_color_from_image_and_to_image_are_inverses(mean, rng):
    color = ColorDecorrelated(None, mean=mean)
    x = rng.uniform(0, 255, (6, 5, 3))
    np.testing.assert_allclose(color.to_image(color.from_image(x)), x, rtol=0, atol=1e-11)
    z = rng.standard_normal((6, 5, 3))
    np.testing.assert_allclose(color.from_image(color.to_image(z)), z, rtol=0, atol=1e-13)
    assert np.array_equal(color.to_image(np.zeros((1, 1, 3)))[0, 0], color.mean)


def test_default_color_matrix_gives_unit_z_imagenet_colour_statistics():
    """C = 255 · Lucid's covariance square root: unit z has per-channel std ~70 in 0..255 pixels."""
    C = ColorDecorrelated(None).matrix
    np.testing.assert_allclose(C, 255 * np.array(pz.COLOR_CORRELATION_SVD_SQRT))
    assert np.all((65 < np.sqrt(np.diag(C @ C.T))) & (np.sqrt(np.diag(C @ C.T)) < 75))


# ---------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("name", ["color", "pyramid", "pyramid-scaled", "pyramid-of-colors"])
@pytest.mark.parametrize("shape", SHAPES[1:])
def test_wrapper_gradient_on_a_quadratic(name, shape, rng):
    wrapper = wrappers(Quadratic(rng, shape), shape)[name]
    z = 0.1 * random_state(wrapper, rng, shape)
    value, grad = wrapper.value_and_grad(z)
    assert grad.shape == z.shape and grad.dtype == np.float64
    assert wrapper.last_terms["total"] == value
    assert assert_grad(wrapper.value_and_grad, z, seed=1).passed


@pytest.fixture(scope="module")
def objective():
    return tiny_objective()


@pytest.mark.parametrize("name", ["color", "pyramid", "pyramid-of-colors"])
def test_wrapper_gradient_on_the_objective(name, objective):
    shape = objective.shape
    wrapper = wrappers(objective, shape)[name]
    x = objective.content + np.random.default_rng(1).uniform(-10, 10, shape)
    z = from_image(wrapper, x)
    assert assert_grad(wrapper.value_and_grad, z, seed=2).passed
    assert set(wrapper.last_terms) == {"content", "style", "tv", "total"}


# ---------------------------------------------------------------------------- L-BFGS


@pytest.mark.parametrize(
    ("name", "in_house"),
    [("color", False), ("pyramid", False), ("pyramid", True), ("pyramid-of-colors", False)],
)
def test_a_short_unbounded_lbfgs_run_lowers_the_loss(name, in_house, objective):
    """scipy's L-BFGS-B and the in-house L-BFGS (``in_house=True``) both take the 1-D state."""
    shape = objective.shape
    wrapper = wrappers(objective, shape)[name]
    x0 = np.random.default_rng(3).uniform(0, 255, shape)
    start = objective.value_and_grad(x0)[0]
    z0 = from_image(wrapper, x0)
    seen = []
    z = lbfgs(
        wrapper,
        z0,
        iters=5,
        bounds=None,
        in_house=in_house,
        callback=lambda it, zk, terms: seen.append((zk.shape, terms["total"])) and False,
    )
    assert z.shape == z0.shape
    end = objective.value_and_grad(image_of(wrapper, z))[0]
    assert end < 0.9 * start
    assert len(seen) == 5 and all(s == z0.shape for s, _ in seen)
    assert seen[-1][1] < start


def test_doctests_of_the_module():
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    tests = [t for t in finder.find(pz) if t.examples]
    assert len(tests) >= 3
    for t in tests:
        runner.run(t)
    assert runner.summarize(verbose=False).failed == 0
