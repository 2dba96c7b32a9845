"""The single NumPy/CuPy boundary: the only module that imports cupy.

Ops call ``xp = get_array_module(x)`` and stay backend-agnostic; host<->device moves happen
here (``to_device``/``to_host``) and nowhere else.
"""
from __future__ import annotations

import os

import numpy as np

try:  # a CPU-only install must import cleanly
    import cupy as _cupy  # type: ignore
except Exception:  # ImportError, or a CUDA runtime that fails to load
    _cupy = None


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
            raise ValueError("device 'gpu' was asked for, but CuPy is not installed or sees no CUDA "
                             "device (pip install 'minivgg[gpu]')")
        return _cupy
    raise ValueError(f"unknown device {device!r}: expected 'cpu' or 'gpu'")


# numba.cuda kernels (minivgg._kernels.cuda_ops) for CuPy arrays: loaded on first use; None until
# then, False when unavailable (the reason is kept for ``info``) or disabled by MINIVGG_CUDA_KERNELS=0.
_cuda_kernels = None
_cuda_kernels_error = None


def cuda_kernels_for(*arrays):
    """The numba.cuda kernel module when any argument is a CuPy array and numba-cuda loads, else None.

    Ops call it to hand CuPy arrays to a hand-written kernel; None means the plain ``xp`` code runs
    (NumPy arrays, no numba-cuda, the CUDA simulator switched on, or ``MINIVGG_CUDA_KERNELS=0``).
    """
    global _cuda_kernels, _cuda_kernels_error
    if _cupy is None or not any(isinstance(a, _cupy.ndarray) for a in arrays):
        return None
    if _cuda_kernels is None:
        _cuda_kernels = False
        if os.environ.get("MINIVGG_CUDA_KERNELS", "1") == "0":
            _cuda_kernels_error = "disabled by MINIVGG_CUDA_KERNELS=0"
        else:
            try:
                from numba.core import config
                if config.ENABLE_CUDASIM:  # simulator kernels cannot read device memory
                    raise RuntimeError("NUMBA_ENABLE_CUDASIM=1 is set")
                from ._kernels import cuda_ops
                cuda_ops.relu_forward(_cupy.ones(1, dtype=_cupy.float32))  # compiles: fails here without NVVM
                _cuda_kernels = cuda_ops
            except Exception as exc:  # ImportError, no driver/NVVM for numba-cuda
                _cuda_kernels_error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                import warnings
                warnings.warn(f"minivgg: numba.cuda kernels unavailable ({_cuda_kernels_error}); "
                              "GPU ops run as plain CuPy code", RuntimeWarning, stacklevel=2)
    return _cuda_kernels or None


# Numba CPU kernels (minivgg._kernels.cpu): None until first use, False when unavailable or
# switched off with MINIVGG_CPU_KERNELS=0 (the NumPy reference code then runs).
_cpu_kernels = None


def cpu_kernels_for(*arrays):
    """The numba CPU kernel module when every argument is a C-contiguous float32/float64 NumPy array,
    else None (the plain NumPy code runs)."""
    global _cpu_kernels
    for a in arrays:
        if type(a) is not np.ndarray or a.dtype not in (np.float32, np.float64) or not a.flags.c_contiguous:
            return None
    if _cpu_kernels is None:
        _cpu_kernels = False
        if os.environ.get("MINIVGG_CPU_KERNELS", "1") != "0":
            try:
                from ._kernels import cpu
                _cpu_kernels = cpu
            except Exception:  # numba missing or broken: the NumPy path is complete on its own
                _cpu_kernels = False
    return _cpu_kernels or None


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
        if out["cuda_devices"]:
            cuda_kernels_for(_cupy.empty(0))
            out["cuda_kernels"] = "numba.cuda" if _cuda_kernels else f"plain CuPy ({_cuda_kernels_error})"
    return out
