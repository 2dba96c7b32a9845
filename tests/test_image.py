"""Image loading: a generated corpus of bad files (each one UserError sentence naming the file), every
colour mode, EXIF/ICC handling, Hypothesis fuzzing of the decoder, resizing and atomic saving."""

import io
import os
import struct
import sys
import warnings
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms

from minivgg.errors import UserError
from minivgg.run import decode, fsutil
from minivgg.run import image as mi
from minivgg.run.image import (
    ImageNote,
    center_crop_square,
    check_min_size,
    load_image,
    load_image_with_notes,
    resize_longest,
    resize_to,
    sample_images,
    save_image,
)


def _noise(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _encode(img, fmt, **kw):
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _user_error(path, **kw):
    """Load ``path`` expecting a UserError; return its message after checking it is one line naming the file."""
    with pytest.raises(UserError) as e:
        load_image_with_notes(path, **kw)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg, msg
    return msg


# The corpus of bad files -------------------------------------------------------------------------------

_JPEG = _encode(Image.fromarray(_noise(64, 64)), "JPEG")
_PNG = _encode(Image.fromarray(_noise(64, 64)), "PNG")

BAD_FILES = {
    "empty.png": (b"", "is empty (0 bytes)"),
    "random.png": (
        np.random.default_rng(1).integers(0, 256, 500, dtype=np.uint8).tobytes(),
        "is not an image",
    ),
    "notes.txt": (b"this is a text file, not a picture\n", "is not an image"),
    "truncated.jpg": (_JPEG[: len(_JPEG) // 2], "is truncated or corrupt"),
    "truncated.png": (_PNG[: len(_PNG) // 2], "is truncated or corrupt"),
    "header_only.png": (_PNG[:40], "is truncated or corrupt"),
    "zero_width.png": (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 5, 8, 2, 0, 0, 0))
        + _png_chunk(b"IEND", b""),
        "has zero size (0x5 pixels)",
    ),
    # A format Pillow knows but minivgg refuses (opening it would run Ghostscript).
    "drawing.eps": (
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n",
        "is not an image",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_corpus(tmp_path, name):
    data, expected = BAD_FILES[name]
    msg = _user_error(_write(tmp_path, name, data))
    assert expected in msg
    assert msg.startswith("content image '")


def test_missing_file(tmp_path):
    assert "does not exist" in _user_error(tmp_path / "nope.jpg")
    assert "does not exist" in _user_error(tmp_path / "nope" / "deeper.jpg")


def test_directory(tmp_path):
    assert "is a directory, not an image file" in _user_error(tmp_path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    assert "is not a regular file" in _user_error(fifo)


def test_unreadable_file(tmp_path, monkeypatch):
    path = _write(tmp_path, "secret.png", _PNG)
    if os.geteuid() == 0:  # root reads any file: make open() fail the way it does for a normal user

        def denied(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(decode, "open", denied, raising=False)
    else:
        path.chmod(0)
    try:
        assert "cannot be read (permission denied)" in _user_error(path)
    finally:
        path.chmod(0o644)


def test_what_names_the_input(tmp_path):
    with pytest.raises(UserError, match=r"^style image '.*' does not exist$"):
        load_image(tmp_path / "x.png", what="style")


def test_too_small_for_the_layers(tmp_path):
    path = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (9, 9, 9)).save(path)
    img = load_image(path)
    assert img.shape == (1, 1, 3)
    with pytest.raises(UserError) as e:
        check_min_size(img, 16, what="style", path=path)
    msg = str(e.value)
    assert "at least 16 pixels" in msg and "1x1" in msg and str(path) in msg and "\n" not in msg
    check_min_size(np.zeros((16, 40, 3), np.uint8), 16)  # exactly the minimum is fine


# Pixel limit -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "limit", [100, 150, 399]
)  # far over, within Pillow's warning band, just over
def test_over_pixel_limit(tmp_path, limit):
    path = tmp_path / "big.png"
    Image.new("RGB", (20, 20)).save(path)
    msg = _user_error(path, max_pixels=limit)
    assert "20x20 = 400 pixels" in msg and "--max-pixels 400" in msg


def test_pixel_limit_is_inclusive_and_pillow_state_restored(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (20, 20)).save(path)
    before = Image.MAX_IMAGE_PIXELS
    assert load_image(path, max_pixels=400).shape == (20, 20, 3)
    assert load_image(path, max_pixels=0).shape == (20, 20, 3)  # 0: no limit
    _user_error(path, max_pixels=10)
    assert Image.MAX_IMAGE_PIXELS == before


def test_max_pixels_none_means_default_not_unlimited(tmp_path, monkeypatch):
    # An unset --max-pixels flag arrives as None: the guard must stay on.
    monkeypatch.setattr(mi, "DEFAULT_MAX_PIXELS", 399)
    path = tmp_path / "big.png"
    Image.new("RGB", (20, 20)).save(path)
    assert "--max-pixels 400" in _user_error(path, max_pixels=None)


@pytest.mark.parametrize("bad", [-5, 2.5, True, "big"])
def test_max_pixels_must_be_positive_int(tmp_path, bad):
    with pytest.raises(UserError, match="--max-pixels"):
        load_image(tmp_path / "x.png", max_pixels=bad)


# Frames, modes, orientation, colour profiles ---------------------------------------------------------


def test_animated_gif_first_frame_with_note(tmp_path):
    path = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (5, 4), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50)
    img, notes = load_image_with_notes(path)
    assert img.shape == (4, 5, 3)
    assert (img == [255, 0, 0]).all()
    assert any("3 frames" in n and "first frame" in n for n in notes)
    with pytest.warns(ImageNote, match="first frame"):
        load_image(path)


def _load(tmp_path, img, name, **save_kw):
    path = tmp_path / name
    img.save(path, **save_kw)
    arr, notes = load_image_with_notes(path)
    assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3 and arr.flags.c_contiguous
    return arr, notes


def test_palette_with_transparency_composited_on_white(tmp_path):
    pal = Image.new("P", (4, 3))
    pal.putpalette([0, 0, 0, 200, 30, 40] + [0] * 762)
    pal.putpixel((1, 0), 1)
    for name in ("p.png", "p.gif"):
        arr, notes = _load(tmp_path, pal, name, transparency=0)
        assert (arr[0, 0] == 255).all()  # transparent index 0 (black) -> white
        assert arr[0, 1].tolist() == [200, 30, 40]
        assert any("composited on white" in n for n in notes)


def test_la_and_rgba_composited_on_white(tmp_path):
    gray = np.full((3, 4), 10, np.uint8)
    alpha = np.array([[0, 128, 255, 255]] * 3, np.uint8)
    arr, _ = _load(tmp_path, Image.fromarray(np.dstack([gray, alpha]), "LA"), "la.png")
    assert arr[0, :, 0].tolist() == [255, round(10 * 128 / 255 + 255 * 127 / 255), 10, 10]
    rgba = np.dstack([np.full((3, 4, 3), (250, 0, 0), np.uint8), alpha])
    arr, notes = _load(tmp_path, Image.fromarray(rgba, "RGBA"), "rgba.png")
    assert arr[0, 0].tolist() == [255, 255, 255]
    assert arr[0, 2].tolist() == [250, 0, 0]
    assert any("transparency" in n for n in notes)


def test_opaque_rgba_gives_no_note(tmp_path):
    arr, notes = _load(tmp_path, Image.new("RGBA", (3, 3), (1, 2, 3, 255)), "o.png")
    assert arr[1, 1].tolist() == [1, 2, 3] and notes == []


def test_pa_composited_on_white():
    # No common format stores PA, so convert the decoded Pillow image directly.
    pal = Image.new("P", (2, 1))
    pal.putpalette([10, 20, 30, 40, 50, 60] + [0] * 762)
    pal.putpixel((1, 0), 1)
    pa = pal.convert("PA")
    pa.putpixel((0, 0), (0, 0))
    notes = []
    arr = decode.to_rgb(pa, "content image 'x'", notes)
    assert arr.tolist() == [[[255, 255, 255], [40, 50, 60]]] and notes


def test_gray_and_rgb_with_transparent_colour(tmp_path):
    arr, _ = _load(tmp_path, Image.new("L", (3, 2), 77), "t.png", transparency=77)
    assert (arr == 255).all()
    arr, _ = _load(tmp_path, Image.new("RGB", (3, 2), (1, 2, 3)), "t2.png", transparency=(1, 2, 3))
    assert (arr == 255).all()


def test_cmyk_converted(tmp_path):
    arr, notes = _load(tmp_path, Image.new("CMYK", (4, 3), (0, 255, 0, 0)), "cmyk.tif")
    assert (arr == [255, 0, 255]).all()  # full magenta ink
    assert any("CMYK" in n for n in notes)
    arr, _ = _load(tmp_path, Image.new("CMYK", (4, 3), (0, 255, 0, 0)), "cmyk.jpg")
    assert np.abs(arr.astype(int) - [255, 0, 255]).max() <= 3


def test_16_bit_rescaled_not_clamped(tmp_path):
    values = np.linspace(1000, 3000, 12 * 10).reshape(10, 12).astype(np.uint16)
    img16 = Image.fromarray(values)
    assert img16.mode == "I;16"
    arr, notes = _load(tmp_path, img16, "deep.png")
    gray = arr[:, :, 0].astype(int)
    assert gray.min() == 0 and gray.max() == 255  # a clamp would give all 255
    assert (np.diff(gray.ravel()) >= 0).all()
    np.testing.assert_array_equal(gray, np.rint((values - 1000.0) * 255 / 2000))
    assert any("16-bit" in n and "1000..3000" in n for n in notes)


@pytest.mark.parametrize(
    "values",
    [
        np.arange(12, dtype=np.int32).reshape(3, 4) * 1000 - 3000,
        np.linspace(-1, 2, 12, dtype=np.float32).reshape(3, 4),
    ],
)
def test_int32_and_float_rescaled(tmp_path, values):
    arr, _ = _load(tmp_path, Image.fromarray(values), "deep.tif")
    assert arr[0, 0].tolist() == [0, 0, 0] and arr[-1, -1].tolist() == [255, 255, 255]


def test_float_with_nan_and_constant_16_bit(tmp_path):
    values = np.array([[np.nan, 0.0], [np.inf, 1.0]], np.float32)
    arr, _ = _load(tmp_path, Image.fromarray(values), "nan.tif")
    assert arr[:, :, 0].tolist() == [[0, 0], [255, 255]]
    arr, _ = _load(tmp_path, Image.fromarray(np.full((2, 2), 65535, np.uint16)), "flat.png")
    assert (arr == 255).all()


def test_bilevel_and_gray(tmp_path):
    one = Image.new("1", (4, 3), 0)
    one.putpixel((2, 1), 1)
    arr, _ = _load(tmp_path, one, "bw.png")
    assert arr[1, 2].tolist() == [255] * 3 and arr[0, 0].tolist() == [0] * 3
    arr, notes = _load(tmp_path, Image.new("L", (4, 3), 77), "g.png")
    assert (arr == 77).all() and notes == []


def test_exif_orientation_applied(tmp_path):
    stored = np.zeros((4, 6, 3), np.uint8)  # 6 wide, 4 high as stored
    stored[0, 0] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    arr, _ = _load(tmp_path, Image.fromarray(stored), "phone.png", exif=exif.tobytes())
    assert arr.shape == (6, 4, 3)
    assert arr[0, -1].tolist() == [255, 0, 0]  # the stored top-left lands top-right
    arr, _ = _load(tmp_path, Image.fromarray(stored), "phone.jpg", exif=exif.tobytes(), quality=95)
    assert arr.shape == (6, 4, 3)


def test_embedded_srgb_profile(tmp_path):
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    src = _noise(8, 10)
    arr, notes = _load(tmp_path, Image.fromarray(src), "icc.png", icc_profile=srgb)
    assert notes == []
    assert np.abs(arr.astype(int) - src).max() <= 1


@pytest.mark.parametrize(
    "profile",
    [b"not a profile" * 20, ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()],
)
def test_unusable_profile_keeps_pixels_with_note(tmp_path, profile):
    arr, notes = _load(
        tmp_path, Image.new("RGB", (4, 4), (200, 100, 50)), "p.png", icc_profile=profile
    )
    assert (arr == [200, 100, 50]).all()
    assert any("colour profile" in n for n in notes)


def test_profile_skipped_without_imagecms(tmp_path, monkeypatch):
    import PIL

    monkeypatch.delattr(PIL, "ImageCms", raising=False)
    monkeypatch.setitem(sys.modules, "PIL.ImageCms", None)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    arr, notes = _load(
        tmp_path, Image.new("RGB", (4, 4), (200, 100, 50)), "p.png", icc_profile=srgb
    )
    assert (arr == [200, 100, 50]).all()
    assert any("no ImageCms" in n for n in notes)


# Fuzzing: whatever the bytes, the loader returns RGB uint8 or raises UserError -----------------------


def _seed_files():
    rgb = Image.fromarray(_noise(8, 8, seed=3))
    frames = [Image.new("P", (6, 6), i) for i in range(2)]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:])
    return [
        _encode(rgb, "PNG"),
        _encode(rgb.convert("RGBA"), "PNG"),
        _encode(rgb, "JPEG"),
        _encode(rgb, "BMP"),
        _encode(rgb, "TIFF"),
        _encode(rgb, "WEBP"),
        gif.getvalue(),
        _encode(Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 900), "PNG"),
    ]


SEEDS = _seed_files()
FUZZ = settings(
    max_examples=int(os.environ.get("MINIVGG_FUZZ_EXAMPLES", 200)),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def _accepts_only_user_error(path, data):
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # libraries' own chatter about odd files is not under test
        try:
            arr, _ = load_image_with_notes(path, max_pixels=1 << 20)
        except UserError as exc:
            assert str(exc) and "\n" not in str(exc)
            return
    assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3 and min(arr.shape[:2]) >= 1


@FUZZ
@given(data=st.binary(min_size=1, max_size=1024))
def test_fuzz_random_bytes(tmp_path, data):
    _accepts_only_user_error(tmp_path / "fuzz.png", data)


@FUZZ
@given(
    seed=st.sampled_from(range(len(SEEDS))),
    edits=st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=6),
    keep=st.floats(0.0, 1.0),
)
def test_fuzz_mutated_and_truncated_images(tmp_path, seed, edits, keep):
    data = bytearray(SEEDS[seed])
    for pos, byte in edits:
        data[pos % len(data)] = byte
    data = bytes(data[: max(1, int(len(data) * keep))])
    _accepts_only_user_error(tmp_path / "fuzz.img", data)


def test_seed_files_load():
    for data in SEEDS:
        assert Image.open(io.BytesIO(data)).size in ((8, 8), (6, 6))


# Resizing ------------------------------------------------------------------------------------------


def test_resize_longest_keeps_aspect():
    assert resize_longest(_noise(300, 451), 128).shape == (85, 128, 3)
    assert resize_longest(_noise(451, 300), 128).shape == (128, 85, 3)
    assert resize_longest(_noise(20, 30), 60).shape == (40, 60, 3)  # upscaling too
    assert resize_longest(_noise(1, 1000), 10).shape == (1, 10, 3)  # never a zero side
    assert resize_longest(_noise(2, 500), 100).shape == (1, 100, 3)


def test_resize_dtypes():
    u8 = _noise(10, 20)
    assert resize_to(u8, (5, 7)).dtype == np.uint8
    x = np.full((10, 20, 3), -50.0)
    y = resize_to(x, (5, 7))
    assert y.dtype == np.float64 and y.shape == (5, 7, 3)
    np.testing.assert_allclose(y, -50.0, atol=1e-3)  # floats are not clipped to 0..255
    assert resize_to(u8, (10, 20)) is u8
    assert resize_to(u8[:, :, 0], (5, 7)).shape == (5, 7)


@pytest.mark.parametrize("size", [0, -1, 2.5])
def test_resize_bad_size(size):
    with pytest.raises(UserError, match="positive"):
        resize_longest(_noise(4, 4), size)


def test_center_crop_square():
    img = np.arange(5 * 9).reshape(5, 9)
    crop = center_crop_square(img)
    assert crop.shape == (5, 5) and crop[0, 0] == 2
    assert center_crop_square(_noise(8, 3)).shape == (3, 3, 3)


# Saving --------------------------------------------------------------------------------------------


def test_save_float_clips_and_rounds(tmp_path):
    x = np.array([[[-10.0, 127.6, 300.0], [0.4, 254.5, 255.0]]])
    save_image(tmp_path / "out.png", x)
    back = load_image(tmp_path / "out.png")
    assert back.tolist() == [[[0, 128, 255], [0, 254, 255]]]  # rint: 254.5 -> 254 (half to even)


@pytest.mark.parametrize("ext", sorted(mi.SAVE_FORMATS))
def test_save_round_trip_every_format(tmp_path, ext):
    src = np.zeros((16, 24, 3), np.uint8)
    src[:, :12] = (200, 40, 90)
    path = tmp_path / f"out{ext}"
    save_image(path, src)
    back = load_image(path)
    assert back.shape == src.shape
    err = np.abs(back.astype(int) - src)
    if ext in (".jpg", ".jpeg", ".webp"):  # lossy; WebP subsamples chroma, so edges blur a little
        assert err.mean() <= 3
    else:
        assert err.max() == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_save_unknown_or_missing_extension(tmp_path):
    for name in ("out.xyz", "out"):
        with pytest.raises(UserError, match="not an image format minivgg writes") as e:
            save_image(tmp_path / name, np.zeros((2, 2, 3)))
        assert ".png" in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_save_to_directory_refused(tmp_path):
    (tmp_path / "d.png").mkdir()
    with pytest.raises(UserError, match="is a directory"):
        save_image(tmp_path / "d.png", np.zeros((2, 2, 3)))


def test_save_rejects_non_finite_and_bad_shape(tmp_path):
    with pytest.raises(ValueError, match="NaN"):
        save_image(tmp_path / "o.png", np.full((2, 2, 3), np.nan))
    with pytest.raises(ValueError, match="shape"):
        save_image(tmp_path / "o.png", np.zeros((2, 2)))


def test_failing_save_leaves_old_output_intact(tmp_path, monkeypatch):
    path = tmp_path / "out.png"
    save_image(path, np.full((4, 4, 3), 7.0))
    old = path.read_bytes()

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fsutil.os, "fsync", full_disk)
    with pytest.raises(UserError, match="No space left on device"):
        save_image(path, np.full((4, 4, 3), 200.0))
    assert path.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


# Sample images ---------------------------------------------------------------------------------------


def test_sample_images():
    pytest.importorskip("skimage")
    imgs = sample_images(["chelsea", "astronaut"])
    assert imgs["chelsea"].shape == (300, 451, 3) and imgs["chelsea"].dtype == np.uint8
    assert imgs["astronaut"].shape == (512, 512, 3)
    with pytest.raises(UserError, match="choose from"):
        sample_images(["mona_lisa"])


def test_sample_images_without_scikit_image(monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage", None)
    with pytest.raises(UserError, match=r"pip install 'minivgg\[demo\]'"):
        sample_images()
