"""The hardened image decoder behind ``image.load_image``: only plausible formats, regular files,
a pixel limit against decompression bombs, the first frame, EXIF orientation, ICC profiles to sRGB,
transparency on white, high bit depths rescaled; every failure one ``UserError`` naming the file.
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

import numpy as np
from PIL import Image, ImageOps

from ..errors import UserError

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


def decode_first_frame(path, label: str, max_pixels, notes: list[str]) -> Image.Image:
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
            img: Image.Image = Image.open(f, formats=_read_formats())
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
            detail = pillow_detail(exc)
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
                f"{label} has EXIF data that could not be read ({pillow_detail(exc)}); "
                "its orientation tag was ignored"
            )
    notes.extend(f"{label}: Pillow warned: {pillow_detail(warning.message)}" for warning in caught)
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


def pillow_detail(exc) -> str:
    """Pillow's reason in a few words, without object reprs or trailing punctuation."""
    text = re.sub(r"<[^>]*>", "", str(exc)).strip().rstrip(".") or type(exc).__name__
    return text.splitlines()[0][:120]


def to_rgb(img: Image.Image, label: str, notes: list[str]) -> np.ndarray:
    """Any decoded Pillow image -> (H, W, 3) uint8 sRGB."""
    mode = img.mode
    if mode in _HIGH_DEPTH_MODES:
        return gray_to_rgb(
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
        return gray_to_rgb(arr)
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
        out = ImageCms.profileToProfile(img, source, _srgb_profile(), outputMode=out_mode)
        assert out is not None  # None only when converting in place
        return out
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
        notes.append(
            f"{label} has an embedded colour profile that could not be applied "
            f"({pillow_detail(exc)}); its colours are used as stored"
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


def gray_to_rgb(g: np.ndarray) -> np.ndarray:
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
