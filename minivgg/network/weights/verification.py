"""Verification against the manifest of known weights (package data ``minivgg._weights``): per-layer
SHA-256 digests, ``verify``, the verified / damaged / fails-verification decision, and file digests.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import json
from pathlib import Path

import numpy as np

from .base import WeightSet, error


@functools.cache
def manifest() -> dict:
    """The manifest of known weights: ``{'archs': {arch: {'layers', 'sources', 'known_files', …}}}``.

    Read from the package data ``minivgg._weights/manifest.json``, or from the checkout's
    ``weights/manifest.json`` when minivgg runs from a source tree that is not pip-installed.
    """
    try:
        text = (
            importlib.resources.files("minivgg._weights")
            .joinpath("manifest.json")
            .read_text("utf-8")
        )
    except ModuleNotFoundError:  # running from a source checkout that is not pip-installed
        text = (Path(__file__).resolve().parents[3] / "weights" / "manifest.json").read_text(
            "utf-8"
        )
    return json.loads(text)


def manifest_digests(arch: str) -> dict | None:
    """Per-layer ``{name: {'kernel': sha256, 'bias': sha256}}`` of the ImageNet ``arch`` weights.

    None when the manifest has none for ``arch`` (VGG19). Every module looks this up as
    ``verification.manifest_digests`` at call time, so one patch here covers them all.
    """
    return manifest()["archs"][arch].get("layers") or None


def recorded_digests(wset: WeightSet) -> dict | None:
    """The per-layer digests a cache file recorded at fetch (root attribute ``layer_sha256``).

    None when the file has none or they do not parse as JSON.
    """
    try:
        return json.loads(wset.provenance.get("layer_sha256", "")) or None
    except ValueError:
        return None


def reference_digests(wset: WeightSet) -> tuple[dict | None, str]:
    """``(digests, what)`` to verify ``wset`` against: the manifest's, else those recorded at fetch.

    ``what`` names them for messages ('the manifest' or 'the digests recorded at fetch');
    ``digests`` is None when there are neither.
    """
    digests = manifest_digests(wset.arch)
    if digests:
        return digests, "the manifest"
    return recorded_digests(wset), "the digests recorded at fetch"


def sha256_array(a) -> str:
    """Hex SHA-256 of ``a`` as a little-endian float32 C-order array.

    The manifest's convention for every digest; ``a`` of any float dtype is converted first.
    """
    # .data: a memoryview, which the stubs take as a buffer (an ndarray only from Python 3.12)
    return hashlib.sha256(np.ascontiguousarray(a, dtype="<f4").data).hexdigest()


def kernel_sha256(w) -> str:
    """Hex SHA-256 of an OIHW kernel ``(out, in, 3, 3)`` in Keras order ``(H, W, in, out)``.

    This is the manifest's per-layer ``kernel`` digest: ``sha256_array(w.transpose(2, 3, 1, 0))``.
    """
    return sha256_array(w.transpose(2, 3, 1, 0))


def layer_digests(params: dict) -> dict:
    """SHA-256 of every layer: ``{name: {'kernel': hex, 'bias': hex}}``.

    Digests are of little-endian float32 C-order arrays, the kernel in Keras order ``(H, W, in, out)``
    (``w.transpose(2, 3, 1, 0)`` of the OIHW kernel) and the bias as is: the manifest's convention.
    """
    return {
        name: {"kernel": kernel_sha256(w), "bias": sha256_array(b)}
        for name, (w, b) in params.items()
    }


def verify(wset: WeightSet, digests: dict | None = None) -> dict:
    """``{layer: bool}``: whether each layer's kernel and bias match ``digests`` (default: the manifest).

    Only VGG16 has per-layer digests in the manifest; for an arch without them this returns ``{}``
    (VGG19 is verified by the file MD5 at download, and its cache by the digests recorded then).
    """
    digests = manifest_digests(wset.arch) if digests is None else digests
    if not digests:
        return {}
    got = layer_digests(wset.params)
    return {
        name: got.get(name) == {"kernel": want["kernel"], "bias": want["bias"]}
        for name, want in digests.items()
    }


def check_verified(
    path,
    wset: WeightSet,
    digests: dict,
    strict: bool,
    what: str = "the manifest",
    result: dict | None = None,
) -> None:
    """Record in ``wset.provenance['verified']`` how ``wset`` compares with ``digests``, or raise.

    All layers match: recorded. Some but not all: WeightsError 'is damaged'. None: WeightsError
    'fails verification' when ``strict``, else recorded as not the ImageNet weights. ``result`` is a
    ``verify`` result already computed; ``what`` names the digests in the sentences.
    """
    result = verify(wset, digests) if result is None else result
    bad = [k for k, ok in result.items() if not ok]
    n = len(result)
    if not bad:
        wset.provenance["verified"] = f"all {n} layers match {what}"
        return
    if len(bad) < n:
        raise error(
            path,
            f"is damaged: {len(bad)} of its {n} layers (first {bad[0]}) differ from {what} "
            f"of the ImageNet {wset.arch} weights while the others match",
            wset.arch,
        )
    if strict:
        raise error(
            path,
            f"fails verification: none of its {n} layers match {what} of the ImageNet "
            f"{wset.arch} weights",
            wset.arch,
        )
    wset.provenance["verified"] = f"no layer matches {what} (not the ImageNet {wset.arch} weights)"


def _file_digest(path, algorithm: str) -> str:
    """Hex digest of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path) -> str:
    """Hex SHA-256 of the bytes of the file at ``path``.

    Recorded in a cache's provenance as the download's ``source_sha256``.
    """
    return _file_digest(path, "sha256")


def file_md5(path) -> str:
    """Hex MD5 of the bytes of the file at ``path``.

    The manifest's ``known_files`` identify the released weights files by it.
    """
    return _file_digest(path, "md5")
