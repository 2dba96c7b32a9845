"""``minivgg doctor``: what to paste into a bug report — versions, backends, BLAS threads, weights cache."""

from __future__ import annotations

import os
import platform
import sys


def add_cli(sub) -> None:
    p = sub.add_parser(
        "doctor", help="print backend availability, BLAS threads and the weights cache state"
    )
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np
    import scipy

    from .. import __version__
    from ..engine import backend, dispatch

    print(
        f"minivgg {__version__} on Python {sys.version.split()[0]}, {platform.platform()}, {os.cpu_count()} CPUs"
    )
    print(f"numpy {np.__version__}, scipy {scipy.__version__}")
    try:
        import numba

        print(f"numba {numba.__version__}")
    except ImportError:
        print("numba: not installed")
    try:
        from threadpoolctl import threadpool_info

        for pool in threadpool_info():
            print(
                f"BLAS: {pool.get('internal_api')} {pool.get('version')} threads={pool.get('num_threads')} "
                f"({pool.get('threading_layer', '')})"
            )
    except ImportError:
        print("BLAS: threadpoolctl not installed (cannot read thread counts)")
    for var in (
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_CORETYPE",
        "MINIVGG_HOME",
    ):
        if os.environ.get(var):
            print(f"{var}={os.environ[var]}")
    import minivgg

    print(
        "idle threads: "
        + ", ".join(f"{k}={os.environ.get(k, '(unset)')}" for k in minivgg.THREAD_DEFAULTS)
        + (
            " (scipy.linalg was imported before minivgg here, so the BLAS the engine uses still spins: "
            "import minivgg first)"
            if minivgg.SCIPY_BLAS_FIRST
            else " (numpy came first: harmless, the engine's GEMMs use scipy's BLAS)"
            if minivgg.NUMPY_FIRST
            else ""
        )
    )
    info = backend.info()
    kernels = dispatch.kernel_info()
    print(f"CPU kernels: {kernels['cpu']}")
    if info["cupy"] is None:
        print("GPU: CuPy not installed (pip install 'minivgg[gpu]')")
    else:
        print(
            f"GPU: CuPy {info['cupy']}, {info['cuda_devices']} CUDA device(s)"
            + (
                f", {info.get('device_name')} {info.get('device_memory_gb')} GiB, runtime {info.get('cuda_runtime')}"
                if info["cuda_devices"]
                else f" ({info.get('cuda_error', 'no device')})"
            )
        )
    if info["numba_cuda"] is None:
        print(
            "numba-cuda: not installed (GPU ops run as plain CuPy code; pip install 'minivgg[gpu]')"
        )
    else:
        print(
            f"numba-cuda {info['numba_cuda']}"
            + (" (CUDA simulator on)" if info.get("cuda_simulator") else "")
            + (f"; GPU kernels: {kernels['cuda']}" if "cuda" in kernels else "")
        )
    from ..network import weights

    for arch in ("vgg16", "vgg19"):
        path = weights.cached_path(arch)
        if not path.exists():
            print(f"weights {arch}: not cached (minivgg weights fetch {arch})")
            continue
        try:
            weights.load_cached(arch)
            print(f"weights {arch}: {path} verified")
        except Exception as exc:  # report, never crash the doctor
            print(f"weights {arch}: {path} FAILS: {exc}")
    return 0
