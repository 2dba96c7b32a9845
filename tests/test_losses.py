"""Loss terms: the AC 209B homework's published values, gradients by finite differences, TV formulas
against loop references."""

import numpy as np
import pytest

from minivgg.gradcheck import assert_grad, numerical_grad
from minivgg.style import losses


def hwc_to_f(a):
    return a.transpose(2, 0, 1)[None]


def test_homework_content_loss():
    np.random.seed(1)
    base, output = np.random.randn(10, 10, 3), np.random.randn(10, 10, 3)
    assert losses.content_loss(hwc_to_f(output), hwc_to_f(base), "sum")[0] == pytest.approx(
        605.62195, rel=1e-6
    )


def test_homework_gram():
    np.random.seed(1)
    x = np.random.randn(10, 10, 3)
    expected = np.array(
        [
            [99.757225, -9.961859, -1.4740529],
            [-9.961859, 86.854355, -4.1411047],
            [-1.4740529, -4.1411047, 82.30109],
        ]
    )
    np.testing.assert_allclose(losses.gram(hwc_to_f(x)), expected, rtol=1e-6, atol=1e-5)


def test_homework_style_loss():
    np.random.seed(1)
    x, y = np.random.randn(10, 10, 3), np.random.randn(10, 10, 3)
    value, _ = losses.style_loss(
        hwc_to_f(y), losses.gram(hwc_to_f(x)), "plain", 1 / (4 * (10 * 10) ** 2)
    )
    assert value == pytest.approx(0.09799164, rel=1e-6)


def test_homework_tv_loss():
    np.random.seed(1)
    x = np.random.randn(1, 10, 10, 3)
    assert losses.tv_loss(x[0], "harvard")[0] == pytest.approx(937.0538, rel=1e-6)


def tv_reference(x, kind):
    H, W, C = x.shape
    total = 0.0
    if kind in ("keras", "harvard"):
        for i in range(H - 1):
            for j in range(W - 1):
                for c in range(C):
                    s = (x[i, j, c] - x[i + 1, j, c]) ** 2 + (x[i, j, c] - x[i, j + 1, c]) ** 2
                    total += s**1.25 if kind == "keras" else s
        return total
    dv = [x[i + 1, j, c] - x[i, j, c] for i in range(H - 1) for j in range(W) for c in range(C)]
    dh = [x[i, j + 1, c] - x[i, j, c] for i in range(H) for j in range(W - 1) for c in range(C)]
    dv, dh = np.array(dv), np.array(dh)
    return {
        "squared": np.sum(dv**2) + np.sum(dh**2),
        "mean_squared": 0.5 * (np.mean(dv**2) + np.mean(dh**2)),
        "mean_abs": 0.5 * (np.mean(np.abs(dv)) + np.mean(np.abs(dh))),
        "abs255": (np.sum(np.abs(dv)) + np.sum(np.abs(dh))) / 255,
    }[kind]


@pytest.mark.parametrize("kind", losses.TV_KINDS)
@pytest.mark.parametrize("shape", [(5, 4, 3), (2, 7, 1)])
def test_tv_value_and_gradient(kind, shape):
    rng = np.random.default_rng(0)
    x = rng.permutation(int(np.prod(shape))).reshape(shape) * 0.7 + 0.1  # distinct: no |0| kinks
    value, grad = losses.tv_loss(x, kind)
    assert value == pytest.approx(tv_reference(x, kind), rel=1e-12)
    np.testing.assert_allclose(
        grad, numerical_grad(lambda z: losses.tv_loss(z, kind)[0], x), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("kind", list(losses.GRAMS))
@pytest.mark.parametrize("shape", [(1, 3, 4, 5), (1, 6, 2, 2)])
def test_style_loss_gradients(kind, shape):
    rng = np.random.default_rng(1)
    A = losses.gram_variant(rng.standard_normal(shape), kind)
    assert_grad(lambda F: losses.style_loss(F, A, kind, 0.7), rng.standard_normal(shape))


def test_centered_gram_uses_one_scalar_mean():
    F = np.random.default_rng(2).standard_normal((1, 3, 4, 4)) + 5
    Fm = F.reshape(3, -1) - F.mean()
    np.testing.assert_allclose(losses.gram_variant(F, "centered"), Fm @ Fm.T)
    np.testing.assert_allclose(
        losses.gram_variant(F, "per_cm"), F.reshape(3, -1) @ F.reshape(3, -1).T / 48
    )


@pytest.mark.parametrize("norm,k", [("half_sum", 0.5), ("sum", 1.0), ("mean", 1 / 60)])
def test_content_loss_norms(norm, k):
    rng = np.random.default_rng(3)
    F, P = rng.standard_normal((1, 3, 4, 5)), rng.standard_normal((1, 3, 4, 5))
    v, g = losses.content_loss(F, P, norm)
    assert v == pytest.approx(k * np.sum((F - P) ** 2))
    assert assert_grad(lambda z: losses.content_loss(z, P, norm), F).passed


@pytest.mark.parametrize("kind", list(losses.GRAMS))
@pytest.mark.parametrize("block_elements", [None, 5, 10, 11, 37, 10**6])
def test_gram_backward_in_place_column_blocks_match_the_eager_gradient(kind, block_elements, rng):
    F = rng.standard_normal((1, 5, 4, 3)) + 0.5
    gG = rng.standard_normal((5, 5))
    scale, center = losses.GRAMS[kind][0](5, 12), losses.GRAMS[kind][1]
    eager = losses.gram_backward(gG, F, scale, center)
    F2 = F.copy()
    out = losses.gram_backward(gG, F2, scale, center, overwrite=True, block_elements=block_elements)
    assert out is F2  # written into F's own memory
    np.testing.assert_allclose(out, eager, rtol=1e-12, atol=1e-12)


def test_gram_backward_default_block_is_overwrite_block(rng, monkeypatch):
    F = rng.standard_normal((1, 3, 4, 4))
    gG = rng.standard_normal((3, 3))
    eager = losses.gram_backward(gG, F)
    seen = []
    monkeypatch.setattr(losses, "OVERWRITE_BLOCK", 6)  # 2 columns at a time for C = 3
    real_matmul = np.ndarray.__matmul__

    class Spy(np.ndarray):
        def __matmul__(self, other):
            seen.append(other.shape)
            return real_matmul(self, other)

    S = gG.view(Spy)
    np.testing.assert_allclose(losses.gram_backward(S, F.copy(), overwrite=True), eager, rtol=1e-12)
    assert seen and all(shape == (3, 2) for shape in seen)


@pytest.mark.parametrize("kind", list(losses.GRAMS))
def test_deferred_style_gradient_is_the_style_gradient(kind, rng):
    F = rng.standard_normal((1, 4, 3, 5))
    A = losses.gram_variant(rng.standard_normal(F.shape), kind)
    value, grad = losses.style_loss(F, A, kind, 0.3)
    dvalue, later = losses.style_loss_deferred(F, A, kind, 0.3)
    assert dvalue == value
    np.testing.assert_allclose(later(F), grad, rtol=1e-12)
    np.testing.assert_allclose(later(F.copy(), overwrite=True), grad, rtol=1e-12, atol=1e-12)
