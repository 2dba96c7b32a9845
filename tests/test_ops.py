"""``minivgg.ops``: every op's forward against a naive loop reference, backward through assert_vjp (the
checker's own step and tolerance) over a grid of shapes, strides and pads (odd sizes included),
im2col/col2im adjointness, clear errors (the validation ``ops`` does before it dispatches to a backend)."""

import numpy as np
import pytest

from minivgg import ops
from minivgg.engine import im2col as im2col_module
from minivgg.engine import winograd
from minivgg.engine.im2col import col2im, im2col
from minivgg.engine.masks import PackedMask
from minivgg.gradcheck import assert_vjp


def conv_naive(x, w, b, stride, pad):
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho, wo = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    y = np.zeros((n, o, ho, wo))
    for i in range(n):
        for k in range(o):
            for p in range(ho):
                for q in range(wo):
                    y[i, k, p, q] = (
                        np.sum(
                            xp[i, :, p * stride : p * stride + kh, q * stride : q * stride + kw]
                            * w[k]
                        )
                        + b[k]
                    )
    return y


def pool_naive(x, reduce):
    n, c, h, w = x.shape
    y = np.zeros((n, c, h // 2, w // 2))
    for p in range(h // 2):
        for q in range(w // 2):
            y[:, :, p, q] = reduce(
                x[:, :, 2 * p : 2 * p + 2, 2 * q : 2 * q + 2].reshape(n, c, 4), axis=-1
            )
    return y


CONV_GRID = [
    ((1, 3, 5, 5), (2, 3, 3, 3), 1, 1),
    ((2, 2, 7, 6), (3, 2, 3, 3), 1, 1),
    ((1, 2, 8, 9), (4, 2, 3, 3), 2, 1),
    ((1, 3, 6, 7), (2, 3, 2, 2), 1, 0),
    ((2, 1, 9, 7), (2, 1, 5, 3), 3, 2),
    ((1, 4, 4, 4), (2, 4, 1, 1), 1, 0),
    ((1, 2, 5, 6), (3, 2, 3, 3), 2, 0),
]


@pytest.mark.parametrize("xs,ws,stride,pad", CONV_GRID)
def test_conv_forward_matches_naive(xs, ws, stride, pad, rng):
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    y, _ = ops.conv2d_forward(x, w, b, stride, pad)
    np.testing.assert_allclose(y, conv_naive(x, w, b, stride, pad), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("xs,ws,stride,pad", CONV_GRID)
@pytest.mark.parametrize("wrt", [0, 1, 2])
def test_conv_backward(xs, ws, stride, pad, wrt, rng):
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    assert_vjp(
        ops.conv2d_forward,
        lambda g, c: ops.conv2d_backward(g, c, need_params=True),
        (x, w, b),
        wrt=wrt,
        kwargs={"stride": stride, "pad": pad},
    )


def test_conv_float32_dtype_kept_and_banded_winograd(monkeypatch, rng):
    # Force the Winograd path to use many tile-row bands: the result must not change.
    x = rng.standard_normal((1, 3, 11, 9)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    y_full, _ = ops.conv2d_forward(x, w, b)
    monkeypatch.setattr(winograd, "_BAND_ELEMENTS", 16 * 4 * 5 * 2)
    y_band, _ = ops.conv2d_forward(x, w, b)
    assert y_full.dtype == np.float32
    np.testing.assert_allclose(y_band, y_full, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(
        y_full,
        conv_naive(x.astype(float), w.astype(float), b.astype(float), 1, 1),
        rtol=1e-4,
        atol=1e-4,
    )


def test_conv_backward_without_params_returns_none_and_needs_input_for_params(rng):
    x, w, b = (
        rng.standard_normal((1, 2, 5, 5)),
        rng.standard_normal((3, 2, 3, 3)),
        rng.standard_normal(3),
    )
    y, cache = ops.conv2d_forward(x, w, b, save_input=False)
    gx, gw, gb = ops.conv2d_backward(np.ones_like(y), cache)
    assert gx.shape == x.shape and gw is None and gb is None
    with pytest.raises(ValueError, match="save_input"):
        ops.conv2d_backward(np.ones_like(y), cache, need_params=True)


@pytest.mark.parametrize("shape", [(1, 1, 4, 4), (2, 3, 5, 7), (1, 2, 7, 6), (1, 1, 3, 2)])
def test_pools_forward_match_naive(shape, rng):
    x = rng.standard_normal(shape)
    np.testing.assert_allclose(ops.avg_pool2d_forward(x)[0], pool_naive(x, np.mean), rtol=1e-12)
    np.testing.assert_allclose(ops.max_pool2d_forward(x)[0], pool_naive(x, np.max), rtol=1e-12)


@pytest.mark.parametrize("shape", [(1, 1, 4, 4), (2, 3, 5, 7), (1, 2, 7, 6), (1, 1, 3, 2)])
def test_pools_backward(shape, rng):
    x = rng.standard_normal(shape)
    assert assert_vjp(ops.avg_pool2d_forward, ops.avg_pool2d_backward, (x,)).passed
    assert assert_vjp(ops.max_pool2d_forward, ops.max_pool2d_backward, (x,)).passed


def test_max_pool_ties_go_to_first_maximum():
    x = np.array([[[[1.0, 5.0], [5.0, 5.0]]]])
    y, cache = ops.max_pool2d_forward(x)
    gx = ops.max_pool2d_backward(np.ones_like(y), cache)
    assert y[0, 0, 0, 0] == 5.0
    np.testing.assert_array_equal(gx[0, 0], [[0, 1], [0, 0]])


def test_pool_odd_edges_get_zero_gradient(rng):
    x = rng.standard_normal((1, 1, 5, 3))
    y, cache = ops.avg_pool2d_forward(x)
    assert y.shape == (1, 1, 2, 1)
    gx = ops.avg_pool2d_backward(np.ones_like(y), cache)
    assert np.all(gx[0, 0, 4, :] == 0) and np.all(gx[0, 0, :, 2] == 0)


@pytest.mark.parametrize("shape", [(1, 3, 4, 5), (2, 2, 3, 3)])
def test_relu(shape, rng):
    x = rng.standard_normal(shape)
    y, mask = ops.relu_forward(x)
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    assert mask.dtype == bool
    assert assert_vjp(ops.relu_forward, ops.relu_backward, (x,)).passed


@pytest.mark.parametrize("inplace", [False, True])
def test_relu_packed_mask_same_gradient_as_bool_mask(inplace, rng):
    x = rng.standard_normal((1, 2, 3, 7))  # 42 elements: a partial last byte
    y, mask = ops.relu_forward(x.copy())
    yp, packed = ops.relu_forward(x.copy(), inplace=inplace, pack=True)
    assert (
        isinstance(packed, PackedMask) and packed.shape == x.shape and packed.bits.dtype == np.uint8
    )
    np.testing.assert_array_equal(yp, y)
    np.testing.assert_array_equal(packed.unpack(), mask)
    g = rng.standard_normal(x.shape)
    np.testing.assert_array_equal(
        ops.relu_backward(g.copy(), packed, inplace=inplace), ops.relu_backward(g, mask)
    )


@pytest.mark.parametrize("pack", [False, True])
def test_relu_backward_checks_the_forward_shape(pack):
    _, mask = ops.relu_forward(np.ones((1, 1, 3, 7)), pack=pack)
    with pytest.raises(
        ValueError,
        match=r"relu_backward: gy shape \(1, 1, 3, 6\) does not match the forward "
        r"shape \(1, 1, 3, 7\)",
    ):
        ops.relu_backward(np.ones((1, 1, 3, 6)), mask)


@pytest.mark.parametrize(
    "xs,k,stride,pad",
    [
        ((1, 2, 5, 5), 3, 1, 1),
        ((2, 3, 7, 6), 3, 2, 1),
        ((1, 1, 6, 7), 2, 2, 0),
        ((1, 2, 9, 8), 5, 3, 2),
    ],
)
def test_im2col_col2im_adjoint(xs, k, stride, pad, rng):
    x = rng.standard_normal(xs)
    cols = im2col(x, k, k, stride, pad)
    c = rng.standard_normal(cols.shape)
    lhs = np.sum(cols * c)
    rhs = np.sum(x * col2im(c, xs[2], xs[3], stride, pad))
    assert abs(lhs - rhs) <= 1e-10 * max(abs(lhs), 1)


@pytest.mark.parametrize(
    "call,match",
    [
        (
            lambda: ops.conv2d_forward(np.zeros((3, 5, 5)), np.zeros((2, 3, 3, 3)), None),
            r"conv2d_forward: x must be NCHW.*\(3, 5, 5\)",
        ),
        (
            lambda: ops.conv2d_forward(np.zeros((1, 4, 5, 5)), np.zeros((2, 3, 3, 3)), None),
            r"conv2d_forward: x has 4 channels but w expects 3",
        ),
        (
            lambda: ops.conv2d_forward(
                np.zeros((1, 3, 5, 5), dtype=np.int64), np.zeros((2, 3, 3, 3)), None
            ),
            r"conv2d_forward: x must be a float",
        ),
        (
            lambda: ops.conv2d_forward(np.zeros((1, 3, 5, 5)), np.zeros((2, 3, 3)), None),
            r"conv2d_forward: w must be OIHW",
        ),
        (
            lambda: ops.conv2d_forward(np.zeros((1, 3, 5, 5)), np.zeros((2, 3, 3, 3)), np.zeros(3)),
            r"conv2d_forward: b must have shape \(2,\)",
        ),
        (
            lambda: ops.conv2d_forward(np.zeros((1, 3, 2, 2)), np.zeros((2, 3, 5, 5)), None, 1, 0),
            r"smaller than the kernel",
        ),
        (
            lambda: ops.relu_forward(np.zeros((2, 2), dtype=np.int32)),
            r"relu_forward: x must be a float",
        ),
        (lambda: ops.max_pool2d_forward(np.zeros((4, 4))), r"max_pool2d_forward: x must be NCHW"),
        (
            lambda: ops.avg_pool2d_forward(np.zeros((1, 1, 1, 4))),
            r"avg_pool2d_forward: input \(1, 1, 1, 4\) is smaller",
        ),
        (
            lambda: ops.avg_pool2d_forward(np.zeros((1, 1, 4, 4)), size=3, stride=3),
            r"only 2x2 windows",
        ),
    ],
)
def test_bad_arguments_raise_value_error_naming_op_and_shapes(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(
    "shape", [(1, 3, 5, 7), (2, 4, 6, 6), (1, 2, 1, 1), (1, 5, 9, 4), (1, 1, 2, 3)]
)
def test_winograd_matches_naive_and_its_adjoint(shape, rng):
    x = rng.standard_normal(shape)
    w = rng.standard_normal((3, shape[1], 3, 3))
    y = winograd.conv3x3_same(x, w)
    np.testing.assert_allclose(y, conv_naive(x, w, np.zeros(3), 1, 1), rtol=1e-10, atol=1e-10)
    u = rng.standard_normal(y.shape)
    lhs, rhs = np.sum(y * u), np.sum(x * winograd.conv3x3_same(u, w, adjoint=True))
    assert abs(lhs - rhs) <= 1e-10 * max(1.0, abs(lhs))


def test_winograd_memo_only_for_frozen_weights(rng):
    w = rng.standard_normal((2, 2, 3, 3))
    x = rng.standard_normal((1, 2, 4, 4))
    y1 = winograd.conv3x3_same(x, w)
    w *= 2  # a writable array may change: never served from the memo
    np.testing.assert_allclose(winograd.conv3x3_same(x, w), 2 * y1, rtol=1e-12)
    w.flags.writeable = False
    assert winograd.kernel_transform(w) is winograd.kernel_transform(w)


# ------------------------------------------------------------------------ conv algorithms


@pytest.mark.parametrize(
    "xs,ws",
    [((1, 3, 5, 5), (2, 3, 3, 3)), ((2, 2, 7, 6), (3, 2, 3, 3)), ((1, 1, 1, 4), (2, 1, 3, 3))],
)
def test_both_conv_algorithms_match_naive_and_record_themselves_in_the_cache(xs, ws, rng):
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    gy = rng.standard_normal((xs[0], ws[0], xs[2], xs[3]))
    grads = {}
    for algorithm in ("im2col", "winograd"):
        y, cache = ops.conv2d_forward(x, w, b, algorithm=algorithm)
        assert cache[-1] == algorithm
        np.testing.assert_allclose(y, conv_naive(x, w, b, 1, 1), rtol=1e-10, atol=1e-10)
        grads[algorithm] = ops.conv2d_backward(gy, cache, need_params=True)
    for a, b_ in zip(grads["im2col"], grads["winograd"]):
        np.testing.assert_allclose(a, b_, rtol=1e-10, atol=1e-10)
    assert ops.conv2d_forward(x, w, b)[1][-1] == "winograd"  # auto: Winograd for 3x3/s1/p1
    assert ops.conv2d_forward(x, w, b, pad=2)[1][-1] == "im2col"  # and im2col elsewhere


def test_conv_algorithm_errors(rng):
    x, w = rng.standard_normal((1, 2, 6, 6)), rng.standard_normal((3, 2, 5, 3))
    with pytest.raises(
        ValueError,
        match=r"conv2d_forward: algorithm='winograd' needs a 3x3 kernel with stride 1 and pad 1, got 5x3",
    ):
        ops.conv2d_forward(x, w, None, algorithm="winograd")
    with pytest.raises(
        ValueError,
        match=r"conv2d_forward: unknown algorithm 'fft': expected one of auto, im2col, winograd",
    ):
        ops.conv2d_forward(x, w, None, algorithm="fft")


@pytest.mark.parametrize(
    "xs,ws,stride,pad",
    [
        ((1, 3, 9, 7), (4, 3, 3, 3), 1, 1),
        ((2, 2, 11, 8), (3, 2, 5, 3), 2, 2),
        ((1, 2, 8, 9), (2, 2, 2, 2), 3, 0),
    ],
)
def test_im2col_bands_change_nothing_and_bound_the_patch_matrix(
    xs, ws, stride, pad, rng, monkeypatch
):
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    y, cache = ops.conv2d_forward(x, w, b, stride, pad, algorithm="im2col")
    gy = rng.standard_normal(y.shape)
    whole = ops.conv2d_backward(gy, cache, need_params=True)
    sizes = []
    patches = im2col_module.im2col

    def spy(*args, **kwargs):
        cols = patches(*args, **kwargs)
        sizes.append(cols.size)
        return cols

    row = ws[1] * ws[2] * ws[3] * y.shape[3]
    monkeypatch.setattr(im2col_module, "_BAND_ELEMENTS", 2 * row)  # two output rows per band
    monkeypatch.setattr(im2col_module, "im2col", spy)
    y2, cache2 = ops.conv2d_forward(x, w, b, stride, pad, algorithm="im2col")
    np.testing.assert_allclose(y2, y, rtol=1e-12, atol=1e-12)
    for got, want in zip(ops.conv2d_backward(gy, cache2, need_params=True), whole):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert max(sizes) <= 2 * row and len(sizes) >= 2 * xs[0] * (y.shape[2] // 2)
    assert_vjp(
        ops.conv2d_forward,
        lambda g, c: ops.conv2d_backward(g, c, need_params=True),
        (x, w, b),
        kwargs={"stride": stride, "pad": pad, "algorithm": "im2col"},
    )
