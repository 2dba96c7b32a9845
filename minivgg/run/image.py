"""Image input and output: any reasonable image file in, uint8 RGB out; results saved atomically.

Whatever the file, ``load_image`` returns an ``(H, W, 3)`` uint8 RGB array or raises a UserError
whose one sentence names the file and what is wrong with it. Nothing else escapes.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import UserError
from .decode import decode_first_frame, gray_to_rgb, pillow_detail, to_rgb
from .fsutil import atomic_save_bytes, check_output_path

# Pillow's own default guard: about 0.25 GiB of 24-bit pixels, a 9459 x 9459 image.
DEFAULT_MAX_PIXELS = 89_478_485

SAVE_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
_SAVE_OPTIONS = {"JPEG": {"quality": 95, "subsampling": 0}, "WEBP": {"quality": 95}}

# Bundled with scikit-image itself (no download), all RGB.
SAMPLE_IMAGES = (
    "astronaut",
    "chelsea",
    "coffee",
    "hubble_deep_field",
    "rocket",
    "immunohistochemistry",
)


class ImageNote(UserWarning):
    """How an input image was interpreted (first frame only, transparency flattened, ...)."""


def load_image(path, max_pixels=DEFAULT_MAX_PIXELS, what: str = "content") -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 RGB; see ``load_image_with_notes``.

    The notes (first frame of an animation, transparency flattened, ...) are issued as
    ``ImageNote`` warnings.
    """
    img, notes = load_image_with_notes(path, max_pixels=max_pixels, what=what)
    for note in notes:
        warnings.warn(note, ImageNote, stacklevel=2)
    return img


def as_image(source, max_pixels=DEFAULT_MAX_PIXELS, what: str = "content") -> np.ndarray:
    """A path (``load_image``), a PIL image or an (H, W, 3) array (uint8, or float 0..255, rounded
    and clipped) as ``(H, W, 3)`` uint8 RGB; UserError naming ``what`` for anything else."""
    if isinstance(source, (str, os.PathLike)):
        return load_image(source, max_pixels=max_pixels, what=what)
    if isinstance(source, Image.Image):
        source = np.asarray(source.convert("RGB"))
    a = np.asarray(source)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype.kind not in "uif" or min(a.shape[:2]) < 1:
        raise UserError(
            f"the {what} image must be a path, a PIL image or an (H, W, 3) array of 0..255 values; "
            f"got {type(source).__name__} of shape {a.shape} and dtype {a.dtype}"
        )
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise UserError(f"the {what} image array holds NaN or infinite values")
    return to_uint8(a)


def load_image_with_notes(path, max_pixels=DEFAULT_MAX_PIXELS, what: str = "content"):
    """Read an image file as ``(H, W, 3)`` uint8 RGB plus a list of one-sentence notes.

    Fully decodes the first frame with EXIF orientation applied and any embedded ICC profile
    converted to sRGB; transparency is composited on white, CMYK converted, 16-bit/32-bit/float
    images rescaled from their own min..max to 0..255. ``max_pixels`` guards against decompression
    bombs (None: the default, 0: no limit). Raises UserError naming the file (``what``: which input).
    """
    label = f"{what} image '{os.fspath(path)}'"
    # None is what an unset --max-pixels flag passes, so it must mean the default, not "unlimited".
    if max_pixels is None:
        max_pixels = DEFAULT_MAX_PIXELS
    if (
        isinstance(max_pixels, bool)
        or not isinstance(max_pixels, (int, np.integer))
        or max_pixels < 0
    ):
        raise UserError(
            f"--max-pixels must be a whole number of pixels (0 for no limit), got {max_pixels!r}"
        )
    max_pixels = int(max_pixels) or None  # Pillow spells "no limit" as None
    notes: list[str] = []
    frame = decode_first_frame(path, label, max_pixels, notes)
    return to_rgb(frame, label, notes), notes


def _positive_size(value, name: str) -> int:
    """A side length from a flag: a positive int, else UserError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise UserError(f"{name} must be a positive whole number of pixels, got {value!r}")
    return int(value)


def resize_to(img: np.ndarray, shape, bicubic: bool = False) -> np.ndarray:
    """Resize ``img`` (H, W) or (H, W, C) to ``shape = (h, w)`` with Pillow's Lanczos (or bicubic) filter.

    uint8 in, uint8 out; float in, the same float dtype out (resampled in float32, no clipping).
    Returns ``img`` itself when it already has that size.
    """
    h, w = (_positive_size(s, "image size") for s in shape)
    filt = Image.Resampling.BICUBIC if bicubic else Image.Resampling.LANCZOS
    if img.shape[:2] == (h, w):
        return img
    if img.dtype == np.uint8 and (img.ndim == 2 or img.shape[2] in (3, 4)):
        return np.asarray(Image.fromarray(np.ascontiguousarray(img)).resize((w, h), filt))
    # Per channel in Pillow's float mode: keeps values outside 0..255 (pre-processed images) intact.
    planes = img[:, :, None] if img.ndim == 2 else img
    out = np.stack(
        [
            np.asarray(
                Image.fromarray(np.ascontiguousarray(planes[:, :, c], dtype=np.float32)).resize(
                    (w, h), filt
                )
            )
            for c in range(planes.shape[2])
        ],
        axis=2,
    )
    if np.issubdtype(img.dtype, np.integer):
        info = np.iinfo(img.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    out = out.astype(img.dtype, copy=False)
    return out[:, :, 0] if img.ndim == 2 else out


def longest_side_shape(hw, size) -> tuple[int, int]:
    """``(h, w)`` of an image of shape ``hw`` resized so its longest side is ``size`` (aspect kept,
    each side at least 1): what ``resize_longest`` makes, known before any pixel is allocated."""
    size = _positive_size(size, "--size")
    h, w = hw[:2]
    scale = size / max(h, w)
    return max(1, int(h * scale + 0.5)), max(1, int(w * scale + 0.5))


def resize_longest(img: np.ndarray, size) -> np.ndarray:
    """Resize so the longest side is ``size`` pixels, keeping the aspect ratio (Lanczos).

    img: (H, W[, C]); each side of the result is at least 1 pixel.
    """
    return resize_to(img, longest_side_shape(img.shape, size))


def center_crop_square(img: np.ndarray) -> np.ndarray:
    """The central ``s x s`` square of an (H, W[, C]) image, ``s = min(H, W)`` (a view)."""
    h, w = img.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return img[top : top + s, left : left + s]


def check_min_size(img: np.ndarray, min_side: int, what: str = "content", path=None) -> None:
    """Raise UserError when either side of (H, W[, C]) ``img`` is below ``min_side`` pixels."""
    h, w = img.shape[:2]
    if min(h, w) < min_side:
        name = f"{what} image" + (f" '{os.fspath(path)}'" if path is not None else "")
        raise UserError(
            f"{name} is {w}x{h} pixels, but the chosen layers need at least {min_side} pixels "
            f"on each side; use a larger image or a larger --size"
        )


def to_uint8(x) -> np.ndarray:
    """(H, W, 3) array of any range -> uint8: clipped to 0..255 and rounded (uint8 passes through)."""
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {x.shape}")
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    if not np.isfinite(x).all():  # the caller must keep the last finite image, not save garbage
        raise ValueError("image to save contains NaN or infinite values")
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def save_image(path, x) -> None:
    """Save an (H, W, 3) image (float of any range, clipped and rounded; or uint8) atomically.

    The format follows the extension (.png .jpg .jpeg .webp .bmp .tif .tiff). The file is encoded
    in memory first and then written with ``atomic_save_bytes``: on failure the old file stays.
    """
    path = Path(path)
    fmt = SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        what = f"extension '{path.suffix}'" if path.suffix else "missing extension"
        raise UserError(
            f"cannot save '{path}': the {what} is not an image format minivgg writes "
            f"(use {', '.join(SAVE_FORMATS)})"
        )
    arr = to_uint8(x)
    check_output_path(path)
    buf = io.BytesIO()
    try:
        Image.fromarray(arr).save(buf, format=fmt, **_SAVE_OPTIONS.get(fmt, {}))
    except (OSError, KeyError, ValueError) as exc:  # e.g. a Pillow built without WebP
        raise UserError(
            f"cannot save '{path}' as {fmt} ({pillow_detail(exc)}); "
            "use another extension such as .png"
        ) from exc
    try:
        atomic_save_bytes(path, buf.getvalue())
    except OSError as exc:
        raise UserError(f"cannot write '{path}' ({exc.strerror or exc})") from exc


def sample_images(names=None) -> dict[str, np.ndarray]:
    """Sample pictures from scikit-image's bundled data: name -> (H, W, 3) uint8 RGB.

    ``names`` picks some of ``SAMPLE_IMAGES`` (default: all). Needs the ``demo`` extra.
    """
    try:
        from skimage import data
    except ImportError:
        raise UserError(
            "the sample images need scikit-image; install it with: pip install 'minivgg[demo]'"
        ) from None
    names = SAMPLE_IMAGES if names is None else tuple(names)
    for name in names:
        if name not in SAMPLE_IMAGES:
            raise UserError(
                f"unknown sample image '{name}' (choose from: {', '.join(SAMPLE_IMAGES)})"
            )
    out = {}
    for name in names:
        try:
            arr = np.asarray(getattr(data, name)())
        except (OSError, ValueError, ImportError, AttributeError) as exc:
            raise UserError(
                f"sample image '{name}' could not be loaded from scikit-image ({exc})"
            ) from exc
        if arr.ndim == 2:
            arr = gray_to_rgb(arr)
        out[name] = np.ascontiguousarray(arr[:, :, :3], dtype=np.uint8)
    return out
