"""``load_weights``: detect a file's layout, read it with the matching reader, and finish the ``Raw``
it gives into a ``WeightSet`` (layer count and arch, shapes, dtypes, finite values, kernel
orientation, verification against the manifest).
"""

from __future__ import annotations

import io
from pathlib import Path

import h5py
import numpy as np

from ...errors import WeightsError
from ..arch import BLOCKS, conv_layer_table
from . import verification
from .base import Raw, WeightSet, check_arch_name, error, first_line
from .hdf5 import hdf5_layers, keras_zip_member, sniff
from .onnx import read_onnx


def load_weights(
    path, arch: str | None = None, flip_kernels=None, verify: bool | None = None
) -> WeightSet:
    """Load the conv weights of a VGG16/VGG19 file in any known layout (detected from its content).

    ``arch`` None infers vgg16/vgg19 from the number of conv layers (13/16). ``flip_kernels`` (True/'yes',
    False/'no', None/'auto') matters when the manifest digests cannot tell the orientation (Theano-era files).
    ``verify`` None refuses files that match the manifest only in part (damaged), True requires a full match.
    """
    path = Path(path).expanduser()
    check_arch_name(arch)
    flip = _parse_flip(flip_kernels)
    if not path.exists():
        raise error(path, "does not exist", arch)
    if path.is_dir():
        raise error(path, "is a directory, not a weights file", arch)
    size = path.stat().st_size
    if size == 0:
        raise error(path, "is empty (an interrupted download or copy?)", arch)
    kind = sniff(path)
    if kind == "onnx":
        return finish(path, read_onnx(path, path.read_bytes(), arch), arch, flip, verify)
    if kind not in ("hdf5", "zip"):
        raise error(path, "is not an HDF5, .keras or ONNX weights file", arch)
    source = path if kind == "hdf5" else io.BytesIO(keras_zip_member(path, arch))
    with hdf5_layers(path, source, arch) as raw:  # datasets are read inside finish, file still open
        if kind == "zip":
            raw.provenance["archive"] = ".keras zip (model.weights.h5)"
        return finish(path, raw, arch, flip, verify)


def finish(path, raw: Raw, arch, flip, verify_mode, digests=None) -> WeightSet:
    """The ``WeightSet`` of a layout reader's ``raw``: float32 OIHW arrays checked against the layer table.

    Checks the layer count (inferring ``arch`` when None), shapes, dtypes and finite values; resolves
    the orientation (``flip`` True/False/None); verifies as ``verify_mode`` (see ``load_weights``)
    against ``digests`` (default: the manifest). Every problem is a WeightsError sentence naming ``path``.
    """
    arch = _resolve_arch(path, len(raw.layers), arch)
    params = {}
    for (label, kernel, bias, order), (name, cin, cout) in zip(raw.layers, conv_layer_table(arch)):
        want_k = (3, 3, cin, cout) if order == "HWIO" else (cout, cin, 3, 3)
        k = _read_array(path, arch, name, label, "kernel", kernel, want_k)
        b = _read_array(path, arch, name, label, "bias", bias, (cout,))
        w = k if order == "OIHW" else k.transpose(3, 2, 0, 1)
        params[name] = (
            np.array(w, dtype=np.float32, order="C"),
            np.array(b, dtype=np.float32, order="C"),
        )
    digests = verification.manifest_digests(arch) if digests is None else digests
    orientation, how = _resolve_orientation(path, arch, params, flip, raw.maybe_flipped, digests)
    if orientation == "flipped":
        params = {k: (np.ascontiguousarray(w[:, :, ::-1, ::-1]), b) for k, (w, b) in params.items()}
    prov = dict(raw.provenance, orientation_from=how)
    wset = WeightSet(arch, params, raw.layout, orientation, prov)
    if verify_mode is not False and digests:
        verification.check_verified(path, wset, digests, strict=bool(verify_mode))
    elif verify_mode is not False:
        prov["verified"] = f"not checked: the manifest has no per-layer digests for {arch}"
    return wset


def _parse_flip(value):
    """``flip_kernels`` as True, False or None (auto); anything else is a WeightsError."""
    if value is None or value == "auto":
        return None
    if value in (True, "yes"):
        return True
    if value in (False, "no"):
        return False
    raise WeightsError(
        f"flip_kernels must be yes, no or auto (True, False or None), not {value!r}."
    )


def _resolve_arch(path, n: int, arch):
    """The arch ``n`` conv layers make (13: vgg16, 16: vgg19), or refuse a count ``arch`` does not have."""
    counts = {len(conv_layer_table(a)): a for a in BLOCKS}
    if arch is None:
        if n in counts:
            return counts[n]
        raise error(path, f"has {n} conv layers, but VGG16 has 13 and VGG19 16", None)
    want = len(conv_layer_table(arch))
    if n != want:
        other = (
            (
                f" (it looks like {counts[n]}: pass arch='{counts[n]}' or --arch {counts[n]}, or to `minivgg transfer` "
                f"a --preset that runs on {counts[n]}, listed by `minivgg presets`)"
            )
            if n in counts
            else ""
        )
        raise error(path, f"has {n} conv layers but {arch} has {want}{other}", arch, hint=not other)
    return arch


def _read_array(path, arch, name, label, what, src, want_shape) -> np.ndarray:
    """Shape, dtype and finiteness checks of one kernel/bias (an h5py dataset or an ndarray)."""
    where = name if label == name else f"{name} (stored as {label})"
    try:
        shape, dtype = tuple(src.shape), np.dtype(src.dtype)
    except (
        OSError,
        RuntimeError,
        ValueError,
        TypeError,
    ) as exc:  # h5py on a damaged datatype message
        raise error(
            path,
            f"is corrupt: layer {where} {what} has an unreadable shape or data type "
            f"({first_line(exc)})",
            arch,
        ) from None
    if shape != tuple(want_shape):
        raise error(
            path,
            f"has the wrong shape for layer {where} {what}: {shape}, but {arch} needs {tuple(want_shape)}",
            arch,
        )
    if dtype.kind != "f":
        raise error(path, f"stores layer {where} {what} as {dtype}, not floating point", arch)
    if isinstance(src, h5py.Dataset):
        try:
            src = src[()]
        except (OSError, RuntimeError, ValueError, TypeError) as exc:
            raise error(
                path, f"is corrupt: layer {where} {what} cannot be read ({first_line(exc)})", arch
            ) from None
    arr = np.asarray(src).astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise error(path, f"has non-finite values (NaN or Inf) in layer {where} {what}", arch)
    return arr


def _resolve_orientation(path, arch, params, flip, maybe_flipped, digests):
    """('as-is'|'flipped', how it was decided): the digests decide when they can, then the flag."""
    if not maybe_flipped and flip is None:
        return "as-is", "layout"
    detected = None
    if digests:
        names = [k for k in params if k in digests]
        asis = sum(verification.kernel_sha256(params[k][0]) == digests[k]["kernel"] for k in names)
        flipped = 0
        if asis == 0 and (maybe_flipped or flip):
            flipped = sum(
                verification.kernel_sha256(params[k][0][:, :, ::-1, ::-1]) == digests[k]["kernel"]
                for k in names
            )
        if asis or flipped:
            detected = flipped > asis
    if detected is not None:
        if flip is not None and flip != detected:
            said, found = ("yes", "as stored") if flip else ("no", "flipped")
            raise error(
                path,
                f"matches the ImageNet {arch} digests with its kernels {found}, contradicting "
                f"--flip-kernels {said}; drop the flag or pass --flip-kernels auto",
                arch,
                hint=False,
            )
        return ("flipped" if detected else "as-is"), "manifest digests"
    if flip is not None:
        return ("flipped" if flip else "as-is"), "--flip-kernels"
    if maybe_flipped:
        raise error(
            path,
            "is a Theano-era file whose kernel orientation cannot be told from the manifest "
            "digests; pass --flip-kernels yes (Theano-flipped kernels) or --flip-kernels no "
            "(flip_kernels=True/False)",
            arch,
            hint=False,
        )
    return "as-is", "layout"
