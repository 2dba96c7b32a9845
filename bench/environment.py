"""Thread pinning and the facts a benchmark result must carry: machine, versions, BLAS, env settings."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

# Environment settings that change BLAS/OpenMP behaviour; reported whenever they are set.
REPORTED_ENV = (
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "OMP_WAIT_POLICY",
    "GOMP_SPINCOUNT",
    "KMP_BLOCKTIME",
    "DNNL_MAX_CPU_ISA",
    "ONEDNN_MAX_CPU_ISA",
    "MINIVGG_HOME",
    "OPENBLAS_THREAD_TIMEOUT",
)
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")

_LIMITER = []  # keeps the threadpoolctl limits alive for the life of the process


def usable_cores() -> int:
    """Cores this process may run on (affinity mask), falling back to ``os.cpu_count()``."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def thread_env(threads: int) -> dict:
    """The user's environment (``bench.USER_ENV``, without minivgg's thread defaults, which the child's own
    ``import minivgg`` sets) with every thread-count variable set to ``threads`` (for child processes)."""
    from . import USER_ENV

    env = dict(USER_ENV)
    env.update({k: str(threads) for k in THREAD_ENV})
    return env


def import_torch():
    """``import torch`` under the user's environment: minivgg's thread defaults (``OMP_WAIT_POLICY=passive``
    and the rest) are taken out while torch's OpenMP runtime reads the environment, then put back."""
    if "torch" in sys.modules:
        return sys.modules["torch"]
    import minivgg

    from . import USER_ENV

    ours = {
        k: os.environ.pop(k)
        for k in minivgg.THREAD_DEFAULTS
        if k in os.environ and k not in USER_ENV
    }
    try:
        import torch
    finally:
        os.environ.update(ours)
    return torch


def pin_threads(threads: int, torch_too: bool = True) -> None:
    """Set every thread pool in this process to ``threads``: numpy's BLAS and OpenMP (threadpoolctl),
    torch's intra-op pool (torch is imported only if asked), Numba (through ``NUMBA_NUM_THREADS``,
    read when minivgg first imports numba; calling ``numba.set_num_threads`` here would start a
    second OpenMP runtime that the engine may never use). Call before the first measurement."""
    for k in THREAD_ENV:
        os.environ[k] = str(threads)
    from threadpoolctl import threadpool_limits

    if torch_too:
        import_torch().set_num_threads(threads)
    _LIMITER.append(threadpool_limits(limits=threads))
    numba = sys.modules.get("numba")
    if numba is not None and numba.config.NUMBA_NUM_THREADS != threads:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def thread_report() -> dict:
    """Threads in effect now, per pool (threadpoolctl, torch if imported, numba if imported)."""
    from threadpoolctl import threadpool_info

    out = {}
    for lib in threadpool_info():
        out[f"{lib['internal_api']} ({Path(lib['filepath']).name})"] = lib["num_threads"]
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        out["torch intra-op"] = torch.get_num_threads()
    if "numba" in sys.modules:
        out["numba (NUMBA_NUM_THREADS)"] = sys.modules["numba"].config.NUMBA_NUM_THREADS
    return out


def blas_report() -> list[str]:
    """One line per BLAS library loaded in this process (which one numpy uses, its version and kernel arch)."""
    from threadpoolctl import threadpool_info

    lines = []
    for lib in threadpool_info():
        if lib["user_api"] != "blas":
            continue
        owner = (
            "numpy"
            if "numpy" in lib["filepath"]
            else "scipy"
            if "scipy" in lib["filepath"]
            else "other"
        )
        lines.append(
            f"{owner}: {lib['internal_api']} {lib.get('version')} ({Path(lib['filepath']).name}), "
            f"arch {lib.get('architecture')}, threading {lib.get('threading_layer')}, "
            f"{lib['num_threads']} threads"
        )
    return lines


def torch_backend_report() -> list[str]:
    """torch's math libraries (MKL, oneDNN) and parallel backend, from ``torch.__config__``."""
    import torch

    keep = ("Math Kernel Library", "MKL-DNN", "oneDNN", "ATen parallel backend", "OpenMP")
    lines = [
        ln.strip()
        for ln in torch.__config__.parallel_info().splitlines()
        if any(k in ln for k in keep)
    ]
    lines.append(f"torch.backends.mkldnn.is_available() = {torch.backends.mkldnn.is_available()}")
    return lines


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> str:
    """The SIMD level the CPU offers (what the BLAS and oneDNN kernels can use)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")
    return ", ".join(f for f in wanted if f in flags) or "none"


def machine_report() -> dict:
    """CPU model, cores, memory, OS and load average."""
    import psutil

    return {
        "cpu": cpu_model(),
        "simd": cpu_flags(),
        "cores": f"{psutil.cpu_count(logical=False)} physical, {os.cpu_count()} logical, {usable_cores()} usable",
        "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "load average at the start (1/5/15 min)": " / ".join(f"{v:.2f}" for v in os.getloadavg()),
    }


def git_revision(repo: Path) -> str:
    """``<short hash>`` of the checkout, with ``+ uncommitted changes in minivgg/`` when the engine differs from it."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "minivgg", "kernels"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return rev + (" + uncommitted changes in minivgg/ or kernels/" if dirty else "")


def versions(torch_too: bool = True) -> dict:
    """Versions of Python and every library on either side of the comparison."""
    import numpy

    import minivgg

    checkout = Path(minivgg.__file__).resolve().parents[1]
    out = {
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "minivgg": f"{getattr(minivgg, '__version__', '?')} @ {git_revision(checkout)}",
    }
    try:
        import numba

        out["numba"] = numba.__version__
    except ImportError:
        pass
    if torch_too:
        import torch

        out["torch"] = torch.__version__
    return out


def env_settings() -> dict:
    """The BLAS/OpenMP-related environment variables the user set (unset ones are omitted; minivgg's
    own defaults are reported by ``minivgg_thread_defaults``)."""
    from . import USER_ENV

    return {k: USER_ENV[k] for k in REPORTED_ENV if k in USER_ENV}


def minivgg_thread_defaults() -> dict:
    """The thread settings minivgg put in its environment because the user had not set them."""
    import minivgg

    from . import USER_ENV

    return {k: v for k, v in minivgg.THREAD_DEFAULTS.items() if k not in USER_ENV}


def now() -> str:
    return datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
