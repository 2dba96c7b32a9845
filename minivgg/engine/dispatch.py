"""Which backend runs an op: the registry between ``minivgg.ops`` and ``minivgg._kernels``.

``backend_for(*arrays)`` returns a module implementing ``minivgg._kernels.OPS``: ``cuda_ops`` for
CuPy arrays when numba-cuda loads, ``cpu`` (Numba) for C-contiguous float32/float64 NumPy arrays,
``reference`` otherwise. Kernel modules load on first use and a failure to load is remembered (the
reason goes to ``minivgg doctor``): the reference is complete on its own. ``MINIVGG_CPU_KERNELS=0``
and ``MINIVGG_CUDA_KERNELS=0`` switch a backend off; ``reference_only()`` does so for a block (tests).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
import warnings
from types import ModuleType

import numpy as np

from .._kernels import reference
from .backend import get_array_module, gpu_available, to_device

_loaded: dict[str, ModuleType | None] = {}  # "cpu" / "cuda" -> the kernel module, or None
_errors: dict[str, str] = {}  # why a backend is unavailable
_local = threading.local()


def _load(kind: str) -> ModuleType | None:
    """The kernel module of ``kind``, loaded once; None when switched off or unavailable."""
    if kind in _loaded:
        return _loaded[kind]
    module: ModuleType | None = None
    if os.environ.get(f"MINIVGG_{kind.upper()}_KERNELS", "1") == "0":
        _errors[kind] = f"disabled by MINIVGG_{kind.upper()}_KERNELS=0"
    elif kind == "cpu":
        try:
            module = importlib.import_module(".._kernels.cpu", __package__)
        except Exception as exc:  # numba missing or broken
            _errors[kind] = f"{type(exc).__name__}: {exc}"
    else:
        try:
            from numba.core import config

            # simulator kernels cannot read device memory; numba sets the flag from the environment
            if config.ENABLE_CUDASIM:  # type: ignore[attr-defined]
                raise RuntimeError("NUMBA_ENABLE_CUDASIM=1 is set")
            module = importlib.import_module(".._kernels.cuda_ops", __package__)

            xp = get_array_module(_device_probe())
            module.relu_forward(xp.ones(1, dtype=xp.float32))  # compiles: fails here without NVVM
        except Exception as exc:  # ImportError, no driver/NVVM for numba-cuda
            module = None
            _errors[kind] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            warnings.warn(
                f"minivgg: numba.cuda kernels unavailable ({_errors[kind]}); GPU ops run as plain "
                "CuPy code",
                RuntimeWarning,
                stacklevel=3,
            )
    _loaded[kind] = module
    return module


def _device_probe():
    return to_device(np.zeros(1, np.float32), "gpu")


def _on_device(arrays) -> bool:
    return any(get_array_module(a) is not np for a in arrays)


def cpu_kernels(*arrays):
    """The Numba module when every argument is a C-contiguous float32/float64 NumPy array, else None."""
    if getattr(_local, "reference", False):
        return None
    for a in arrays:
        if (
            type(a) is not np.ndarray
            or a.dtype not in (np.float32, np.float64)
            or not a.flags.c_contiguous
        ):
            return None
    return _load("cpu")


def cuda_kernels(*arrays):
    """The numba.cuda module when any argument is a CuPy array and numba-cuda works, else None."""
    if getattr(_local, "reference", False) or not _on_device(arrays):
        return None
    return _load("cuda")


def backend_for(*arrays):
    """The backend module (``OPS`` names and signatures) for an op on ``arrays``."""
    return cuda_kernels(*arrays) or cpu_kernels(*arrays) or reference


@contextlib.contextmanager
def reference_only():
    """Inside the block (this thread), every op runs the reference backend."""
    before = getattr(_local, "reference", False)
    _local.reference = True
    try:
        yield
    finally:
        _local.reference = before


def kernel_info() -> dict:
    """Which kernels would run, for ``minivgg doctor``: ``{"cpu": ..., "cuda": ...}`` in words."""
    cpu = (
        "numba"
        if cpu_kernels(np.zeros(1, np.float32)) is not None
        else f"NumPy reference ({_errors.get('cpu')})"
    )
    out = {"cpu": cpu}
    if gpu_available():
        cuda = cuda_kernels(_device_probe())
        out["cuda"] = "numba.cuda" if cuda is not None else f"plain CuPy ({_errors.get('cuda')})"
    return out
