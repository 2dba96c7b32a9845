"""Colour control (Gatys et al. 2017, "Controlling Perceptual Factors in Neural Style Transfer").

- ``original_colors(result, content)``: the result's luminance with the content's chroma (YCbCr,
  Rec.601 as JPEG uses it; Pillow converts to YCbCr, the way back clamps Y into the gamut).
- ``luminance_image(img)``: Rec.601 luminance in all three channels, the input of ``--luminance-only``;
  ``match_luminance(style_y, content_y)`` shifts *and scales* the style's to the content's mean and std.
- ``match_color(style, content, mode)``: ``x' = A (x − μ_s) + μ_c`` with ``A Σ_s Aᵀ = Σ_c``, three
  square roots to choose A: ``chol`` (Cholesky factors), ``pca`` (symmetric square roots, the
  eigen-decomposition), ``sym`` (the optimal-transport map, symmetric positive definite).
Images are (H, W, 3) RGB, uint8 or float 0..255; results are float64 0..255.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..errors import UserError
from .image import resize_to, to_uint8

MATCH_MODES = ("chol", "pca", "sym")
_REC601 = np.array([0.299, 0.587, 0.114])


def _ycbcr(img) -> np.ndarray:
    """Pillow's YCbCr planes (H, W, 3) uint8 of an RGB image."""
    return np.asarray(Image.fromarray(to_uint8(img)).convert("YCbCr"))


# JPEG's YCbCr -> RGB: R, G, B = Y + _CHROMA_TO_RGB @ (Cb − 128, Cr − 128).
_CHROMA_TO_RGB = np.array([[0.0, 1.402], [-0.344136, -0.714136], [1.772, 0.0]])


def original_colors(result, content) -> np.ndarray:
    """The result's luminance Y with the content's chroma Cb, Cr (YCbCr), as RGB float64 0..255.

    Where that Y is outside the RGB gamut for the content's chroma, Y is clamped into the gamut
    instead of clipping R, G, B afterwards, so the output's chroma is the content's to rounding.
    """
    content = resize_to(to_uint8(content), result.shape[:2])
    y = _ycbcr(result)[:, :, 0].astype(np.float64)
    offsets = (_ycbcr(content)[:, :, 1:].astype(np.float64) - 128.0) @ _CHROMA_TO_RGB.T  # (H, W, 3)
    y = np.clip(y, -offsets.min(axis=2), 255.0 - offsets.max(axis=2))
    return np.clip(y[:, :, None] + offsets, 0, 255)


def luminance_image(img) -> np.ndarray:
    """Rec.601 luminance ``0.299 R + 0.587 G + 0.114 B`` in all three channels (H, W, 3) float64."""
    y = np.asarray(img, dtype=np.float64) @ _REC601
    return np.repeat(y[:, :, None], 3, axis=2)


def match_luminance(style_y, content_y) -> np.ndarray:
    """The style luminance shifted and scaled to the content's mean and standard deviation, clipped to 0..255."""
    s, c = np.asarray(style_y, dtype=np.float64), np.asarray(content_y, dtype=np.float64)
    scale = c.std() / s.std() if s.std() > 0 else 1.0
    return np.clip((s - s.mean()) * scale + c.mean(), 0, 255)


def _sqrt_and_inv(cov):
    """Symmetric square root of an SPD matrix and its inverse (eigen-decomposition, eigenvalues floored)."""
    w, q = np.linalg.eigh(cov)
    w = np.maximum(w, 1e-8 * max(float(w.max()), 1e-12))
    return (q * np.sqrt(w)) @ q.T, (q / np.sqrt(w)) @ q.T


def color_transform(cov_s, cov_c, mode: str = "pca") -> np.ndarray:
    """A (3, 3) with ``A Σ_s Aᵀ = Σ_c``: Cholesky ``L_c L_s⁻¹``, PCA ``Σ_c^½ Σ_s^-½`` or the
    optimal-transport ``Σ_s^-½ (Σ_s^½ Σ_c Σ_s^½)^½ Σ_s^-½``."""
    eye = 1e-5 * np.eye(3)  # a flat channel makes a covariance singular
    cov_s, cov_c = cov_s + eye, cov_c + eye
    if mode == "chol":
        return np.linalg.cholesky(cov_c) @ np.linalg.inv(np.linalg.cholesky(cov_s))
    root_s, inv_root_s = _sqrt_and_inv(cov_s)
    if mode == "pca":
        return _sqrt_and_inv(cov_c)[0] @ inv_root_s
    if mode == "sym":
        return inv_root_s @ _sqrt_and_inv(root_s @ cov_c @ root_s)[0] @ inv_root_s
    raise UserError(f"unknown colour matching mode {mode!r}: expected {', '.join(MATCH_MODES)}")


def match_color(style, content, mode: str = "pca") -> np.ndarray:
    """The style's colours mapped to the content's mean and covariance, clipped to 0..255 (float64)."""
    s = np.asarray(style, dtype=np.float64).reshape(-1, 3)
    c = np.asarray(content, dtype=np.float64).reshape(-1, 3)
    mu_s, mu_c = s.mean(0), c.mean(0)
    A = color_transform(
        np.cov(s, rowvar=False, bias=True), np.cov(c, rowvar=False, bias=True), mode
    )
    return np.clip((s - mu_s) @ A.T + mu_c, 0, 255).reshape(np.shape(style))
