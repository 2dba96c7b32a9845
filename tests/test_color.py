"""Colour control: the content's chroma kept to rounding, luminance images, colour matching by three
square roots (each maps the style's mean and covariance onto the content's)."""

import numpy as np
import pytest
from PIL import Image

from minivgg.errors import UserError
from minivgg.run.color import (
    MATCH_MODES,
    color_transform,
    luminance_image,
    match_color,
    match_luminance,
    original_colors,
)


def _ycbcr(img):
    return np.asarray(
        Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8)).convert("YCbCr")
    ).astype(int)


def _photo(rng, h=40, w=52):
    """A smooth, saturated image (gradients in three directions) plus a little noise."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([255 * xx, 255 * yy, 255 * (1 - xx) * (1 - yy)], -1) + rng.normal(
        0, 8, (h, w, 3)
    )
    return np.clip(img, 0, 255).astype(np.uint8)


def test_original_colors_keeps_the_content_chroma_and_the_result_luminance(rng):
    content = _photo(rng)
    result = rng.uniform(
        0, 255, (40, 52, 3)
    )  # any result, even out of gamut for the content's chroma
    out = original_colors(result, content)
    assert out.shape == content.shape and out.min() >= 0 and out.max() <= 255
    assert (
        np.abs(_ycbcr(out)[:, :, 1:] - _ycbcr(content)[:, :, 1:]).max() <= 1
    )  # chroma to rounding
    inside = _ycbcr(out)[:, :, 0] - _ycbcr(result)[:, :, 0]
    assert np.median(np.abs(inside)) <= 1  # luminance kept wherever the gamut allows


def test_original_colors_resizes_the_content_to_the_result(rng):
    out = original_colors(rng.uniform(0, 255, (20, 26, 3)), _photo(rng))
    assert out.shape == (20, 26, 3)


def test_luminance_image_and_matching(rng):
    img = _photo(rng).astype(float)
    y = luminance_image(img)
    np.testing.assert_allclose(y[:, :, 0], img @ [0.299, 0.587, 0.114])
    assert np.array_equal(y[:, :, 0], y[:, :, 2])
    style_y = luminance_image(rng.uniform(100, 140, (30, 30, 3)))
    matched = match_luminance(style_y, y)
    assert matched.mean() == pytest.approx(y.mean(), rel=1e-2)
    assert matched.std() == pytest.approx(
        y.std(), rel=5e-2
    )  # clipping at 0..255 may shave a little


@pytest.mark.parametrize("mode", MATCH_MODES)
def test_match_color_maps_mean_and_covariance(rng, mode):
    # correlated colours well inside 0..255 (the clip does not move the statistics)
    content = 120 + rng.standard_normal((50, 40, 3)) @ np.array(
        [[12, 4, 0], [0, 20, 6], [3, 0, 16]]
    )
    style = 140 + rng.standard_normal((44, 36, 3)) @ np.array([[18, 0, 5], [6, 10, 0], [0, 7, 9]])
    out = match_color(style, content, mode)
    flat, ref = out.reshape(-1, 3), content.reshape(-1, 3)
    np.testing.assert_allclose(flat.mean(0), ref.mean(0), atol=0.05)
    np.testing.assert_allclose(
        np.cov(flat, rowvar=False), np.cov(ref, rowvar=False), rtol=1e-3, atol=0.05
    )
    cs, cc = (
        np.cov(style.reshape(-1, 3), rowvar=False, bias=True),
        np.cov(ref, rowvar=False, bias=True),
    )
    A = color_transform(cs, cc, mode)
    np.testing.assert_allclose(
        A @ (cs + 1e-5 * np.eye(3)) @ A.T, cc + 1e-5 * np.eye(3), rtol=1e-6, atol=1e-6
    )
    if mode == "sym":  # the optimal-transport map is symmetric positive definite
        np.testing.assert_allclose(A, A.T, atol=1e-8)
        assert np.linalg.eigvalsh(A).min() > 0


def test_match_color_clips_and_refuses_unknown_modes(rng):
    out = match_color(rng.uniform(0, 255, (10, 10, 3)), rng.uniform(250, 255, (10, 10, 3)), "pca")
    assert out.min() >= 0 and out.max() <= 255
    with pytest.raises(UserError, match="unknown colour matching mode 'lab'"):
        color_transform(np.eye(3), np.eye(3), "lab")
