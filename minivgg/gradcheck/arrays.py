"""Array helpers of the checker: the array module of an array (CuPy only when the caller already
imported it), host copies, float casts, and fingerprints that tell whether a call changed its
inputs."""

from __future__ import annotations

import dataclasses
import hashlib
import sys

import numpy as np


def array_module(a):
    """The array module of ``a``: CuPy for a CuPy array (never imported here), else NumPy."""
    cupy = sys.modules.get("cupy")
    return cupy if cupy is not None and isinstance(a, cupy.ndarray) else np


def host(a) -> np.ndarray:
    """``a`` as a NumPy array (CuPy arrays copied to the host)."""
    return a.get() if array_module(a) is not np else np.asarray(a)


def is_float_array(a) -> bool:
    return getattr(getattr(a, "dtype", None), "kind", "") == "f" and hasattr(a, "shape")


def cast(a, dtype):
    """A float array cast to ``dtype`` (a new array: the caller's is never touched); others as
    they are."""
    if not is_float_array(a):
        return a
    return array_module(a).array(a, dtype=dtype, copy=True)


def to64(a) -> np.ndarray:
    """A float64 host copy (the checker does its own sums in float64)."""
    return np.asarray(host(a), dtype=np.float64)


def dot64(a, b) -> float:
    """``Σ a·b`` accumulated in float64 on the host."""
    return float(np.sum(to64(a) * to64(b)))


def norm64(a) -> float:
    return float(np.sqrt(np.sum(np.square(to64(a)))))


def fingerprint(obj, depth: int = 0, seen=None):
    """A hashable summary of ``obj``'s contents: arrays by shape, dtype and a digest of their bytes;
    tuples, lists, dicts, dataclasses and plain objects recursively; anything else by value or
    type."""
    seen = set() if seen is None else seen
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes)):
        return obj
    if hasattr(obj, "shape") and hasattr(obj, "dtype") and not isinstance(obj, np.generic):
        a = np.ascontiguousarray(host(obj))
        return (
            "array",
            a.shape,
            str(a.dtype),
            hashlib.blake2b(a.view(np.uint8).data, digest_size=16).hexdigest(),
        )
    if isinstance(obj, np.generic):
        return ("scalar", str(obj.dtype), obj.item())
    if depth > 8 or id(obj) in seen:
        return ("…", type(obj).__name__)
    seen.add(id(obj))
    if isinstance(obj, (tuple, list)):
        return (type(obj).__name__, tuple(fingerprint(o, depth + 1, seen) for o in obj))
    if isinstance(obj, dict):
        return ("dict", tuple((repr(k), fingerprint(v, depth + 1, seen)) for k, v in obj.items()))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return (
            type(obj).__name__,
            tuple(
                (f.name, fingerprint(getattr(obj, f.name), depth + 1, seen))
                for f in dataclasses.fields(obj)
            ),
        )
    if callable(obj):
        return ("callable", id(obj))
    state = getattr(obj, "__dict__", None)
    if state is None and hasattr(obj, "__slots__"):
        state = {s: getattr(obj, s, None) for s in obj.__slots__}
    return (
        type(obj).__name__,
        fingerprint(state, depth + 1, seen) if state is not None else id(obj),
    )


def changed_elements(before: np.ndarray, after) -> np.ndarray:
    """Boolean mask of the elements that differ between two same-shaped arrays (NaN equals NaN)."""
    a, b = np.asarray(before), np.asarray(host(after))
    return ~((a == b) | (np.isnan(a) & np.isnan(b)) if a.dtype.kind == "f" else (a == b))
