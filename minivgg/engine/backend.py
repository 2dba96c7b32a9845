"""The single NumPy/CuPy boundary: the only module that imports cupy.

Ops call ``xp = get_array_module(x)`` and stay backend-agnostic; host<->device moves happen
here (``to_device``/``to_host``) and nowhere else. Which kernels run on those arrays is
``minivgg.engine.dispatch``'s business; this module imports none of them.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import UserError

try:  # a CPU-only install must import cleanly
    import cupy as _cupy
except Exception:  # ImportError, or a CUDA runtime that fails to load
    _cupy = None


class DeviceError(UserError):
    """A device that does not exist here (``--device gpu`` without CuPy or a CUDA device)."""


def gpu_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    if _cupy is None:
        return False
    try:
        return _cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def get_array_module(*arrays):
    """Return ``cupy`` if any argument is a CuPy array, else ``numpy``."""
    if _cupy is not None:
        return _cupy.get_array_module(*arrays)
    return np


def xp_for(device: str):
    """Array module for a device name: ``"cpu"`` -> numpy, ``"gpu"`` -> cupy (or a ValueError)."""
    if device == "cpu":
        return np
    if device == "gpu":
        if not gpu_available():
            raise DeviceError(
                "device 'gpu' was asked for, but CuPy is not installed or sees no CUDA "
                "device (pip install 'minivgg[gpu]')"
            )
        return _cupy
    raise DeviceError(f"unknown device {device!r}: expected 'cpu' or 'gpu'")


def to_device(a, device: str = "cpu", dtype=None):
    """Move a host array to ``device`` (optionally casting); a no-op for numpy on 'cpu'."""
    xp = xp_for(device)
    return xp.asarray(a, dtype=dtype)


def to_host(a) -> np.ndarray:
    """Return a NumPy array, copying from the GPU when needed."""
    if _cupy is not None and isinstance(a, _cupy.ndarray):
        return _cupy.asnumpy(a)
    return np.asarray(a)


def info() -> dict:
    """Backend facts for ``minivgg doctor`` and bug reports."""
    out = {"numpy": np.__version__, "cupy": None, "cuda_devices": 0, "numba_cuda": None}
    try:
        from importlib.metadata import version

        out["numba_cuda"] = version("numba-cuda")
        out["cuda_simulator"] = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1"
    except Exception:  # PackageNotFoundError: numba-cuda not installed
        pass
    if _cupy is not None:
        out["cupy"] = _cupy.__version__
        try:
            n = _cupy.cuda.runtime.getDeviceCount()
            out["cuda_devices"] = n
            if n:
                props = _cupy.cuda.runtime.getDeviceProperties(0)
                out["device_name"] = props["name"].decode()
                out["device_memory_gb"] = round(props["totalGlobalMem"] / 2**30, 1)
                out["cuda_runtime"] = _cupy.cuda.runtime.runtimeGetVersion()
        except Exception as exc:  # driver missing etc.
            out["cuda_error"] = str(exc).splitlines()[0]
    return out
