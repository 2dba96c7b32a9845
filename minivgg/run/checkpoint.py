"""Ctrl-C checkpoints of ``minivgg transfer``: ``OUT.ckpt.npz`` holds the best image so far, the
iteration it was reached at and the run's settings; ``--resume`` reads it back, and
``resume_command`` is the command line printed for the user to continue.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import UserError
from .fsutil import atomic_write


def checkpoint_path(output) -> Path:
    """The checkpoint written beside ``output``: ``OUT.ckpt.npz``."""
    return Path(f"{output}.ckpt.npz")


def save(path, image, iteration: int, settings: dict, seed: int, scale: int = 0) -> Path:
    """Write the checkpoint atomically: image (H, W, 3) float64, iteration and scale (0-based) it was
    reached at, settings (JSON), the seed's RNG state."""
    with atomic_write(path) as fh:
        np.savez(
            fh,
            image=image,
            iteration=iteration,
            scale=scale,
            settings=json.dumps(settings, default=float),
            rng=json.dumps(np.random.default_rng(seed).bit_generator.state),
        )
    return Path(path)


def scale_of(path) -> int:
    """The scale (0-based) a checkpoint was written at; 0 for single-scale checkpoints. UserError if unreadable."""
    try:
        with np.load(path, allow_pickle=False) as ck:
            return int(ck["scale"]) if "scale" in ck.files else 0
    except Exception as exc:  # missing, not an npz, damaged: the same sentence as load
        raise UserError(
            f"cannot read checkpoint {path}: {str(exc).strip() or type(exc).__name__}"
        ) from None


def load(path, shape) -> tuple[np.ndarray, int]:
    """``(image float64, iteration)`` from a checkpoint of a run at ``shape`` (H, W, 3); UserError otherwise."""
    try:
        with np.load(path, allow_pickle=False) as ck:
            image, iteration = ck["image"].astype(np.float64), int(ck["iteration"])
    except Exception as exc:  # missing, not an npz, keys missing, damaged zip: all one sentence
        raise UserError(
            f"cannot read checkpoint {path}: {str(exc).strip() or type(exc).__name__}"
        ) from None
    if image.shape != tuple(shape):
        raise UserError(
            f"checkpoint {path} holds a {_wxh(image.shape)} image but this run works at "
            f"{_wxh(shape)}; resume with the same --size"
        )
    if iteration < 0 or not np.isfinite(image).all():
        raise UserError(
            f"checkpoint {path} is damaged (iteration {iteration}, or non-finite pixels)"
        )
    return image, iteration


def _wxh(shape) -> str:
    return f"{shape[1]}x{shape[0]}" if len(shape) >= 2 else str(tuple(shape))


def resume_command(argv, ckpt) -> list[str]:
    """``argv`` (the ``minivgg`` arguments of the interrupted run) with any ``--resume`` replaced by ``ckpt``."""
    out, skip = [], False
    for a in (a for a in argv or [] if a):
        if skip:
            skip = False
        elif a == "--resume":
            skip = True
        elif not a.startswith("--resume="):
            out.append(a)
    return out + ["--resume", str(ckpt)]
