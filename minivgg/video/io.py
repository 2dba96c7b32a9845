"""Reading and writing videos: a file through ffmpeg (``imageio-ffmpeg``, whose wheel ships the
binary) or a folder of numbered frames; the frame rate and the sound kept, the output written
atomically (a temporary file beside it, renamed at the end).

``imageio_ffmpeg`` is imported inside the functions: ``import minivgg.video`` does not need it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..run.fsutil import check_output_path, same_file
from ..run.image import DEFAULT_MAX_PIXELS, load_image, longest_side_shape, resize_to

# Containers minivgg writes, with their video and audio codecs (None: no sound in that format).
VIDEO_FORMATS = {
    ".mp4": ("libx264", "aac"),
    ".mov": ("libx264", "aac"),
    ".mkv": ("libx264", "aac"),
    ".webm": ("libvpx-vp9", "libopus"),
    ".gif": ("gif", None),
}
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
FOLDER_FPS = 24.0  # a folder of frames has no frame rate of its own
_INSTALL = "pip install 'minivgg[video]'"


def require_ffmpeg():
    """The ``imageio_ffmpeg`` module, or a UserError saying how to install it."""
    try:
        import imageio_ffmpeg
    except ImportError:
        raise UserError(
            f"minivgg video reads and writes videos with imageio-ffmpeg, which is not installed here; {_INSTALL}"
        ) from None
    return imageio_ffmpeg


@dataclasses.dataclass
class Clip:
    """Decoded frames at working size and what the output needs to match the input."""

    frames: list  # (h, w, 3) uint8 RGB, in order
    fps: float
    first: int  # index in the input of frames[0] (``--frames A:B``)
    audio: bool  # the input is a file with a sound track
    source: Path
    source_size: tuple  # (width, height) of the input's frames


def _natural_key(path: Path):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def frame_files(folder: Path) -> list:
    """The image files of a folder of frames, in natural order (``f2.png`` before ``f10.png``)."""
    return sorted(
        (p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES and p.is_file()),
        key=_natural_key,
    )


def _check_pixels(path, w, h, max_pixels) -> None:
    if w * h > max_pixels:
        raise UserError(
            f"the frames of {path} are {w}x{h} = {w * h} pixels, more than --max-pixels "
            f"{max_pixels}; give a larger --max-pixels if this is intended"
        )


def read_clip(
    source,
    size: int,
    frames=(None, None),
    fps=None,
    square: bool = False,
    max_pixels=None,
) -> Clip:
    """Decode ``source`` (a video file or a folder of frames) into frames whose longest side is ``size``.

    Parameters
    ----------
    source : str or Path
        A video file ffmpeg reads (mp4, mov, webm, gif, …) or a folder of same-sized images.
    size : int
        Longest side of the working frames (pixels).
    frames : (int or None, int or None)
        ``[A, B)``: the frame indices kept (counted at ``fps`` when given).
    fps : float or None
        Resample a video to this frame rate (ffmpeg's ``fps`` filter: the duration and sound stay in
        step); a folder's frame rate (default 24).
    square : bool
        Crop each frame to its central square first (presets that do).
    max_pixels : int or None
        The largest input frame accepted (default: the image loader's limit).

    Returns
    -------
    Clip

    Raises
    ------
    UserError
        Not a video, a corrupt file, no frames (in the range), frames too large, frames of
        different sizes in a folder.

    Examples
    --------
    >>> import tempfile
    >>> from PIL import Image
    >>> folder = Path(tempfile.mkdtemp())
    >>> for k in range(3):
    ...     Image.fromarray(np.full((20, 30, 3), 50 * k, np.uint8)).save(folder / f"f{k}.png")
    >>> clip = read_clip(folder, 15, frames=(1, None))
    >>> len(clip.frames), clip.frames[0].shape, clip.fps, clip.first
    (2, (10, 15, 3), 24.0, 1)
    """
    path = Path(source)
    max_pixels = max_pixels or DEFAULT_MAX_PIXELS
    start, stop = frames
    start = start or 0
    if not path.exists():
        raise UserError(f"input video {path} does not exist")
    if path.is_dir():
        return _read_folder(path, size, start, stop, fps, square, max_pixels)
    return _read_file(path, size, start, stop, fps, square, max_pixels)


def _working(frame, size, square):
    if square:
        h, w = frame.shape[:2]
        s = min(h, w)
        frame = frame[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    return resize_to(np.ascontiguousarray(frame), longest_side_shape(frame.shape, size))


def _read_folder(path, size, start, stop, fps, square, max_pixels) -> Clip:
    files = frame_files(path)
    if not files:
        raise UserError(
            f"the folder {path} holds no frames (image files: {', '.join(FRAME_SUFFIXES)})"
        )
    chosen = files[start:stop]
    if not chosen:
        raise UserError(
            f"--frames {start}:{stop if stop is not None else ''} selects none of the {len(files)} frames in {path}"
        )
    out, shape0 = [], None
    for f in chosen:
        img = load_image(f, max_pixels=max_pixels, what="frame")
        if shape0 is None:
            shape0 = img.shape
        elif img.shape != shape0:
            raise UserError(
                f"frame {f.name} is {img.shape[1]}x{img.shape[0]} but {chosen[0].name} is "
                f"{shape0[1]}x{shape0[0]}; all frames of a folder must have one size"
            )
        out.append(_working(img, size, square))
    assert shape0 is not None
    return Clip(out, float(fps or FOLDER_FPS), start, False, path, (shape0[1], shape0[0]))


def _ffmpeg_detail(exc) -> str:
    lines = [
        ln.strip() for ln in str(exc).splitlines() if ln.strip() and "ffmpeg version" not in ln
    ]
    useful = [ln for ln in lines if "Invalid" in ln or "rror" in ln or "not" in ln]
    return (useful or lines or [type(exc).__name__])[-1][:160]


def _read_file(path, size, start, stop, fps, square, max_pixels) -> Clip:
    ffmpeg = require_ffmpeg()
    params = ["-vf", f"fps={fps:g}"] if fps else None
    reader = ffmpeg.read_frames(str(path), output_params=params)
    out = []
    try:
        try:
            meta = next(reader)
        except (OSError, RuntimeError, StopIteration) as exc:
            raise UserError(
                f"{path} is not a video ffmpeg can read ({_ffmpeg_detail(exc)})"
            ) from None
        w, h = meta["size"]
        _check_pixels(path, w, h, max_pixels)
        rate = float(fps or meta.get("fps") or 0)
        if not rate > 0:
            raise UserError(f"{path} has no frame rate; give one with --fps")
        k = -1
        try:
            for k, raw in enumerate(reader):
                if stop is not None and k >= stop:
                    break
                if k >= start:
                    frame = np.frombuffer(raw, np.uint8).reshape(h, w, 3)
                    out.append(_working(frame, size, square))
        except (OSError, RuntimeError, ValueError) as exc:
            raise UserError(
                f"{path} is corrupt after frame {k + 1} ({_ffmpeg_detail(exc)})"
            ) from None
    finally:
        with contextlib.suppress(Exception):
            reader.close()
    if not out:
        what = (
            "no frames" if k < 0 else f"only {k + 1} frames, none in --frames {start}:{stop or ''}"
        )
        raise UserError(f"{path} has {what}")
    return Clip(out, rate, start, "audio_codec" in meta, path, (w, h))


def check_video_output(path, inputs=()) -> str:
    """``"file"`` or ``"folder"``: what ``path`` will be; UserError when it cannot be written.

    A name with a video suffix (``VIDEO_FORMATS``) is a file; a name without a suffix, or an
    existing folder, is a folder of frames, which must be empty or missing.

    Examples
    --------
    >>> import tempfile
    >>> check_video_output(Path(tempfile.mkdtemp()) / "out.mp4")
    'file'
    """
    path = Path(path)
    for inp in inputs:
        if inp is not None and same_file(path, inp):
            raise UserError(f"output {path} is the input {inp}; choose another output name")
    if path.is_dir() or not path.suffix:
        if path.is_dir() and any(path.iterdir()):
            raise UserError(
                f"output folder {path} is not empty; give a new or empty folder (nothing in it is overwritten)"
            )
        check_output_path(Path(str(path) + ".frames"), inputs)  # its parent must be writable
        if path.exists() and not path.is_dir():
            raise UserError(f"output {path} is a file, not a folder")
        return "folder"
    if path.suffix.lower() not in VIDEO_FORMATS:
        raise UserError(
            f"cannot write {path}: use one of {', '.join(VIDEO_FORMATS)} for a video, "
            "or a name without a suffix for a folder of frames"
        )
    check_output_path(path, inputs)
    return "file"


def _audio_segment(src: Path, start_s: float, seconds: float, into: Path) -> Path | None:
    """The sound of ``src`` from ``start_s`` for ``seconds`` as a WAV file in ``into`` (None: no sound)."""
    exe = require_ffmpeg().get_ffmpeg_exe()
    wav = into / "audio.wav"
    cmd = [
        exe,
        "-nostdin",
        "-y",
        "-loglevel",
        "error",
        "-ss",
        f"{start_s:.6f}",
        "-t",
        f"{seconds:.6f}",
    ]
    cmd += ["-i", str(src), "-vn", "-acodec", "pcm_s16le", str(wav)]
    done = subprocess.run(cmd, capture_output=True, check=False)
    return wav if done.returncode == 0 and wav.exists() and wav.stat().st_size > 44 else None


def write_video(path, frames, fps: float, audio_from: tuple | None = None) -> None:
    """Encode ``frames`` into the video file ``path`` atomically: a temporary file beside it, renamed
    when complete (an interrupted or failed write leaves any old ``path`` as it was).

    Parameters
    ----------
    path : str or Path
        ``.mp4``, ``.mov``, ``.mkv`` (H.264), ``.webm`` (VP9) or ``.gif``.
    frames : iterable of ndarray, shape (H, W, 3) uint8
        All the same size; odd sides are padded by one pixel for H.264/VP9.
    fps : float
        Frame rate.
    audio_from : (source file, start seconds, duration seconds) or None
        The sound to mux in (formats with sound only).

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "clip.gif"
    >>> write_video(out, [np.zeros((8, 8, 3), np.uint8)] * 2, fps=10)
    >>> out.exists()
    True
    """
    ffmpeg = require_ffmpeg()
    path = Path(path)
    codec, audio_codec = VIDEO_FORMATS[path.suffix.lower()]
    frames = iter(frames)
    first = next(frames)
    h, w = first.shape[:2]
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    with tempfile.TemporaryDirectory(prefix="minivgg-video-") as scratch:
        wav = None
        if audio_from is not None and audio_codec is not None:
            wav = _audio_segment(Path(audio_from[0]), audio_from[1], audio_from[2], Path(scratch))
        extra = ["-an"] if wav is None else ["-shortest"]
        kwargs: dict = {"pix_fmt_out": "yuv420p"}
        if codec == "gif":
            kwargs = {"pix_fmt_out": "rgb8"}
        else:
            extra = ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", *extra]
        writer = ffmpeg.write_frames(
            str(tmp),
            (w, h),
            fps=fps,
            codec=codec,
            macro_block_size=1,
            quality=None if codec != "libx264" else 5,
            output_params=extra,
            audio_path=None if wav is None else str(wav),
            audio_codec=audio_codec if wav is not None else None,
            ffmpeg_log_level="error",
            **kwargs,
        )
        try:
            writer.send(None)
            writer.send(np.ascontiguousarray(first))
            for frame in frames:
                writer.send(np.ascontiguousarray(frame))
            writer.close()
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(Exception):
                writer.close()
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise


def publish_folder(frames_dir: Path, output: Path) -> None:
    """Move the finished frames of ``frames_dir`` to the (missing or empty) folder ``output`` in one
    rename, so the folder appears complete or not at all."""
    if output.is_dir():
        output.rmdir()  # empty (checked before the run): rename replaces no files
    shutil.move(str(frames_dir), str(output))
