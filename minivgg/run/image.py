"""Image input and output: any reasonable image file in, uint8 RGB out; results saved atomically.

Whatever the file, ``load_image`` returns an ``(H, W, 3)`` uint8 RGB array or raises a UserError
whose one sentence names the file and what is wrong with it. Nothing else escapes.
"""

from __future__ import annotations

import functools
import io
import os
import re
import stat
import struct
import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..errors import UserError
from .fsutil import atomic_save_bytes, check_output_path

# Pillow's own default guard: about 0.25 GiB of 24-bit pixels, a 9459 x 9459 image.
DEFAULT_MAX_PIXELS = 89_478_485

# The formats handed to Pillow. It knows more, but some run external programs (EPS runs Ghostscript)
# and none of the rest is a plausible photo or painting.
_READ_FORMATS = (
    "PNG",
    "JPEG",
    "JPEG2000",
    "WEBP",
    "AVIF",
    "GIF",
    "BMP",
    "DIB",
    "TIFF",
    "PPM",
    "TGA",
    "ICO",
    "QOI",
)

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

_HIGH_DEPTH_MODES = {
    "I;16": "16-bit",
    "I;16L": "16-bit",
    "I;16B": "16-bit",
    "I;16N": "16-bit",
    "I": "32-bit integer",
    "F": "floating-point",
}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Magic numbers of the common formats: a file that has one but fails to open is damaged, not foreign.
_SIGNATURES = (
    ("PNG", _PNG_SIGNATURE),
    ("JPEG", b"\xff\xd8\xff"),
    ("GIF", b"GIF8"),
    ("BMP", b"BM"),
    ("TIFF", b"II*\x00"),
    ("TIFF", b"MM\x00*"),
    ("WebP", b"RIFF"),
)

# Decoding changes two process-wide settings (Pillow's pixel limit, the warning filters).
_DECODE_LOCK = threading.Lock()


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
    frame = _decode(path, label, max_pixels, notes)
    return _to_rgb(frame, label, notes), notes


def _open_regular_file(path, label: str):
    """Open ``path`` for reading or raise the UserError that says why it cannot be."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise UserError(f"{label} does not exist") from None
    except OSError as exc:
        raise UserError(f"{label} cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise UserError(f"{label} is a directory, not an image file")
    if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end
        raise UserError(f"{label} is not a regular file")
    if st.st_size == 0:
        raise UserError(f"{label} is empty (0 bytes)")
    try:
        return open(path, "rb")
    except PermissionError:
        raise UserError(f"{label} cannot be read (permission denied)") from None
    except OSError as exc:
        raise UserError(f"{label} cannot be read ({exc.strerror or exc})") from None


@functools.lru_cache(maxsize=1)
def _read_formats() -> list[str]:
    """The allowed formats this Pillow build can open."""
    Image.init()
    return [f for f in _READ_FORMATS if f in Image.OPEN]


def _decode(path, label: str, max_pixels, notes: list[str]) -> Image.Image:
    """Open, check and fully decode the first frame (EXIF orientation applied)."""
    with (
        _open_regular_file(path, label) as f,
        _DECODE_LOCK,
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        saved_limit = Image.MAX_IMAGE_PIXELS
        try:
            # Opening reads only the header; checking its size here lets the message give the dimensions.
            Image.MAX_IMAGE_PIXELS = None
            img = Image.open(f, formats=_read_formats())
            # From here Pillow enforces the limit wherever it learns a size (later frames, icon entries).
            Image.MAX_IMAGE_PIXELS = max_pixels
            w, h = img.size
            if w < 1 or h < 1:
                raise UserError(f"{label} has zero size ({w}x{h} pixels)")
            if max_pixels is not None and w * h > max_pixels:
                raise UserError(_too_large_message(label, w * h, max_pixels, (w, h)))
            frames = _frame_count(img)
            # MPO is a phone JPEG with a preview or depth map as its second picture, not an animation.
            if frames != 1 and img.format != "MPO":
                count = f"{frames} frames" if frames > 1 else "several frames"
                notes.append(f"{label} has {count} (animated or multi-page); using the first frame")
            img.seek(0)
            img.load()  # decode everything now: a truncated file fails here, not halfway through a run
        except UserError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            found = re.search(r"\((\d+) pixels\)", str(exc))
            raise UserError(
                _too_large_message(label, int(found.group(1)) if found else None, max_pixels)
            ) from None
        except Image.UnidentifiedImageError:
            raise UserError(_unidentified_message(label, f)) from None
        except MemoryError:
            raise UserError(
                f"{label} is too large to decode in the available memory; "
                "use a smaller image or a lower --max-pixels"
            ) from None
        except Exception as exc:  # a damaged file makes Pillow raise almost anything (OSError, SyntaxError, struct.error, ...)
            detail = _pillow_detail(exc)
            if "unsupported" in detail.lower() or "not yet supported" in detail:
                raise UserError(
                    f"{label} uses a variant of its format that Pillow cannot decode ({detail})"
                ) from exc
            raise UserError(f"{label} is truncated or corrupt ({detail})") from exc
        finally:
            Image.MAX_IMAGE_PIXELS = saved_limit
        try:
            img = ImageOps.exif_transpose(img)
        except Exception as exc:  # bad EXIF should not cost the user a readable picture
            notes.append(
                f"{label} has EXIF data that could not be read ({_pillow_detail(exc)}); "
                "its orientation tag was ignored"
            )
    notes.extend(f"{label}: Pillow warned: {_pillow_detail(warning.message)}" for warning in caught)
    return img


def _frame_count(img: Image.Image) -> int:
    """Number of frames, 1 for stills, 0 when the count cannot be read (a damaged later frame)."""
    try:
        return int(getattr(img, "n_frames", 1))
    except Exception:
        return 0


def _too_large_message(label: str, pixels, max_pixels, size=None) -> str:
    """The one-sentence decompression-bomb error."""
    dims = f"{size[0]}x{size[1]} = " if size else ""
    count = f"{dims}{pixels:,} pixels" if pixels else "more pixels than allowed"
    need = pixels if pixels else 2 * max_pixels
    return (
        f"{label} has {count}, more than the limit of {max_pixels:,} that guards against decompression "
        f"bombs; pass --max-pixels {need} (or more) if you trust the file"
    )


def _unidentified_message(label: str, f) -> str:
    """Pillow recognised no format: say zero size for a PNG that says so, else not an image."""
    try:
        f.seek(0)
        head = f.read(24)
    except OSError:
        head = b""
    if len(head) == 24 and head[:8] == _PNG_SIGNATURE and head[12:16] == b"IHDR":
        w, h = struct.unpack(">II", head[16:24])
        if w == 0 or h == 0:
            return f"{label} has zero size ({w}x{h} pixels)"
    for fmt, magic in _SIGNATURES:
        if head.startswith(magic) and (fmt != "WebP" or head[8:12] == b"WEBP"):
            return f"{label} starts like a {fmt} file but is truncated or corrupt (its header cannot be read)"
    return (
        f"{label} is not an image minivgg can read (unknown format or damaged header; "
        "PNG, JPEG, WebP, GIF, BMP and TIFF work)"
    )


def _pillow_detail(exc) -> str:
    """Pillow's reason in a few words, without object reprs or trailing punctuation."""
    text = re.sub(r"<[^>]*>", "", str(exc)).strip().rstrip(".") or type(exc).__name__
    return text.splitlines()[0][:120]


def _to_rgb(img: Image.Image, label: str, notes: list[str]) -> np.ndarray:
    """Any decoded Pillow image -> (H, W, 3) uint8 sRGB."""
    mode = img.mode
    if mode in _HIGH_DEPTH_MODES:
        return _gray_to_rgb(
            _rescale_to_uint8(np.asarray(img), _HIGH_DEPTH_MODES[mode], label, notes)
        )
    icc = img.info.get("icc_profile")
    if mode == "1":
        img = img.convert("L")
    elif mode == "P" or (mode in ("L", "RGB") and "transparency" in img.info):
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode in ("PA", "LA", "La", "RGBa"):
        img = img.convert("RGBA")
    elif mode not in ("L", "RGB", "RGBA", "CMYK"):
        try:
            img = img.convert("RGB")
        except (ValueError, OSError):
            raise UserError(
                f"{label} has a colour mode ({mode}) that cannot be converted to RGB"
            ) from None
    if icc and img.mode in ("RGB", "RGBA", "CMYK"):
        img = _to_srgb(img, icc, label, notes)
    if img.mode == "CMYK":
        notes.append(
            f"{label} is CMYK without a usable colour profile; its colours are approximate"
        )
        img = img.convert("RGB")
    arr = np.asarray(img)
    if img.mode == "L":
        return _gray_to_rgb(arr)
    if img.mode == "RGBA":
        return _composite_on_white(arr, label, notes)
    return np.ascontiguousarray(arr, dtype=np.uint8)


@functools.lru_cache(maxsize=1)
def _srgb_profile():
    """The built-in sRGB profile (built once)."""
    from PIL import ImageCms

    return ImageCms.createProfile("sRGB")


def _to_srgb(img: Image.Image, icc: bytes, label: str, notes: list[str]) -> Image.Image:
    """Convert from the embedded ICC profile to sRGB; on any failure keep the pixels and say so."""
    try:
        from PIL import ImageCms
    except ImportError:  # Pillow built without LittleCMS
        notes.append(
            f"{label} has an embedded colour profile, but this Pillow has no ImageCms to apply it"
        )
        return img
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        out_mode = "RGBA" if img.mode == "RGBA" else "RGB"
        return ImageCms.profileToProfile(img, source, _srgb_profile(), outputMode=out_mode)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
        notes.append(
            f"{label} has an embedded colour profile that could not be applied "
            f"({_pillow_detail(exc)}); its colours are used as stored"
        )
        return img


def _rescale_to_uint8(a: np.ndarray, depth: str, label: str, notes: list[str]) -> np.ndarray:
    """(H, W) high-depth values -> uint8 by the image's own min..max (a clamp would flatten them)."""
    a = a.astype(np.float64)
    finite = np.isfinite(a)
    if not finite.any():
        raise UserError(f"{label} has no finite pixel values")
    lo, hi = float(a[finite].min()), float(a[finite].max())
    a = np.nan_to_num(a, nan=lo, posinf=hi, neginf=lo)
    if hi > lo:
        notes.append(f"{label} is {depth} with values {lo:g}..{hi:g}; rescaled to 0..255")
        out = (a - lo) * (255.0 / (hi - lo))
    else:  # one value: no range to stretch, so keep its level within the format's nominal range
        out = np.full(a.shape, lo / 257.0 if depth == "16-bit" else lo)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _gray_to_rgb(g: np.ndarray) -> np.ndarray:
    """(H, W) uint8 -> (H, W, 3) uint8."""
    return np.ascontiguousarray(np.repeat(g[:, :, None], 3, axis=2), dtype=np.uint8)


def _composite_on_white(rgba: np.ndarray, label: str, notes: list[str]) -> np.ndarray:
    """(H, W, 4) uint8 -> (H, W, 3) uint8 over a white background, rounded; exact in uint16."""
    alpha = rgba[..., 3:4]
    if alpha.min() == 255:
        return np.ascontiguousarray(rgba[..., :3])
    notes.append(f"{label} has transparency; it was composited on white")
    a = alpha.astype(np.uint16)
    # rgb*a + 255*(255-a) <= 255*255, so the sum and the +127 rounding term fit in uint16.
    out = (rgba[..., :3].astype(np.uint16) * a + 255 * (255 - a) + 127) // 255
    return out.astype(np.uint8)


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
            f"cannot save '{path}' as {fmt} ({_pillow_detail(exc)}); "
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
            arr = _gray_to_rgb(arr)
        out[name] = np.ascontiguousarray(arr[:, :, :3], dtype=np.uint8)
    return out
