"""The work folder of ``minivgg video``: finished frames written atomically as they come, the last
optimised image for the next warm start, and the fingerprint of the run that owns them, so that a
re-run of the same command continues at the first unfinished frame and another run never mixes in.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..run.fsutil import atomic_save_bytes, atomic_write
from ..run.image import load_image, save_image

MANIFEST = "video.json"
STATE = "state.npz"


def work_folder(output) -> Path:
    """Where the frames of a run writing ``output`` wait: ``OUTPUT.work`` beside it.

    Examples
    --------
    >>> work_folder("clips/out.mp4").as_posix()
    'clips/out.mp4.work'
    """
    return Path(f"{os.fspath(output)}.work")


def _stamp(path) -> list:
    p = Path(path)
    if p.is_dir():
        return [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in sorted(p.iterdir())]
    try:
        st = p.stat()
        return [str(p.resolve()), st.st_size, st.st_mtime_ns]
    except OSError:
        return [str(p)]


def fingerprint(source, styles, settings: dict) -> str:
    """A hash of the inputs (paths, sizes, modification times) and every setting that changes a frame.

    Examples
    --------
    >>> fingerprint("a.mp4", ["s.jpg"], {"size": 256}) == fingerprint("a.mp4", ["s.jpg"], {"size": 128})
    False
    """
    what = {
        "input": _stamp(source),
        "styles": [_stamp(s) if isinstance(s, (str, os.PathLike)) else repr(s) for s in styles],
        "settings": settings,
    }
    text = json.dumps(what, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def frame_path(work: Path, k: int) -> Path:
    """The finished frame ``k`` (0-based, in the clip) of a work folder."""
    return work / f"frame_{k + 1:05d}.png"


class WorkFolder:
    """Open (creating it) the work folder of a run with fingerprint ``key``; UserError when it holds
    another run's frames.

    Examples
    --------
    >>> import tempfile
    >>> work = WorkFolder(Path(tempfile.mkdtemp()) / "out.mp4.work", "abc", 3)
    >>> work.resume_point()
    (0, None)
    """

    def __init__(self, path: Path, key: str, n_frames: int):
        self.path, self.key, self.n = Path(path), key, n_frames
        manifest = self.path / MANIFEST
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"the work folder {self.path} is a file; move it away")
        if manifest.exists():
            try:
                old = json.loads(manifest.read_text()).get("key")
            except (OSError, ValueError, AttributeError):
                old = None
            if old != key:
                raise UserError(
                    f"the work folder {self.path} holds frames of another run (other input or "
                    f"settings); delete it or choose another -o"
                )
        elif self.path.is_dir() and any(self.path.iterdir()):
            raise UserError(
                f"{self.path} exists and is not a minivgg work folder; move it away or choose another -o"
            )
        try:
            self.path.mkdir(exist_ok=True)
            with atomic_write(manifest, "w") as fh:
                json.dump({"key": key, "frames": n_frames}, fh)
        except OSError as exc:
            raise UserError(
                f"cannot write the work folder {self.path} ({exc.strerror or exc})"
            ) from None

    def resume_point(self):
        """``(first frame to compute, the previous frame's optimised image or None)``."""
        try:
            with np.load(self.path / STATE) as z:
                k, x = int(z["index"]), np.asarray(z["image"], dtype=np.float64)
        except (OSError, KeyError, ValueError):
            return 0, None
        if not all(frame_path(self.path, j).exists() for j in range(k + 1)) or k >= self.n:
            return 0, None
        return k + 1, x

    def finished(self, k: int, picture, x) -> None:
        """Record frame ``k``: its picture (uint8 PNG), then the optimised image for the next warm start."""
        save_image(frame_path(self.path, k), picture)
        buf = io.BytesIO()
        np.savez(buf, index=np.int64(k), image=np.asarray(x, dtype=np.float32))
        atomic_save_bytes(self.path / STATE, buf.getvalue())

    def frames(self):
        """The finished frames in order, read back as uint8 (H, W, 3)."""
        for k in range(self.n):
            yield load_image(frame_path(self.path, k), what="frame")

    def done(self) -> int:
        """How many frames are finished."""
        return self.resume_point()[0]
