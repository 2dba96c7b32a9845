"""The verified weights cache: where it lives (``$MINIVGG_HOME`` or the user cache dir), loading it with
verification, and writing it as a Keras legacy ``.h5`` with the provenance and layer digests in root
attributes (atomically, through ``minivgg.run.fsutil``).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import h5py
import numpy as np

from ...errors import WeightsError
from ...run import fsutil
from . import verification
from .base import WeightSet, check_arch_name, error
from .load import load_weights


def cache_dir() -> Path:
    """The cache directory: ``$MINIVGG_HOME`` if set, else the user cache dir.

    That is ``~/.cache/minivgg`` on Linux (``platformdirs.user_cache_dir('minivgg')``); it may not
    exist yet.
    """
    home = os.environ.get("MINIVGG_HOME")
    if home:
        return Path(home).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("minivgg"))


def cached_path(arch: str = "vgg16") -> Path:
    """Where the verified weights of ``arch`` live: ``<cache_dir>/<arch>_notop.h5``.

    The file is in the Keras legacy layout, so other tools read it too; it may not exist yet.
    """
    check_arch_name(arch)
    return cache_dir() / f"{arch}_notop.h5"


def existing_cache(arch: str) -> Path:
    """``cached_path(arch)`` when that file exists.

    Otherwise a WeightsError sentence naming the cache directory and the fetch command to run.
    """
    path = cached_path(arch)
    if not path.exists():
        raise WeightsError(
            f"no cached {arch} weights in {path.parent}; run `minivgg weights fetch {arch}`."
        )
    return path


def load_cached(arch: str = "vgg16") -> WeightSet:
    """Load and verify the cached weights of ``arch``; a WeightsError sentence if missing or unverified.

    Every layer is checked against the manifest; VGG19, which has no digests there, against the
    digests recorded when its MD5-checked download was cached.
    """
    path = existing_cache(arch)
    wset = load_weights(path, arch=arch, verify=False)
    digests, what = verification.reference_digests(wset)
    if not digests:
        raise error(
            path,
            f"is a cached {arch} file without recorded layer digests, so it cannot be verified",
            arch,
        )
    verification.check_verified(path, wset, digests, strict=True, what=what)
    return wset


def write_cache(target: Path, wset: WeightSet, provenance: dict) -> None:
    """Write ``wset`` to ``target`` as a Keras legacy ``.h5`` (tf.keras names, kernels HWIO little-endian).

    ``provenance`` goes into root attributes (as text), with the per-layer digests as ``layer_sha256``.
    The file is built in memory and saved with ``fsutil.atomic_save_bytes``: an interrupted write
    leaves the old cache or the new one, and the file gets the mode a plain ``open`` would give.
    """
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        names = list(wset.params)
        f.attrs["layer_names"] = np.array([n.encode() for n in names])
        f.attrs["backend"] = b"tensorflow"  # layout markers: Keras 2 then applies no conversion
        f.attrs["keras_version"] = b"2.2.4"
        for key, value in provenance.items():
            f.attrs[key] = str(value)
        f.attrs["layer_sha256"] = json.dumps(
            verification.layer_digests(wset.params), sort_keys=True
        )
        for name, (w, b) in wset.params.items():
            group = f.create_group(name)
            wnames = [f"{name}/kernel:0", f"{name}/bias:0"]
            group.attrs["weight_names"] = np.array([n.encode() for n in wnames])
            group.create_dataset(
                wnames[0], data=np.ascontiguousarray(w.transpose(2, 3, 1, 0), dtype="<f4")
            )
            group.create_dataset(wnames[1], data=np.ascontiguousarray(b, dtype="<f4"))
    fsutil.atomic_save_bytes(target, buffer.getvalue())
