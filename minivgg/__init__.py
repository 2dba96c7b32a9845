"""minivgg: neural style transfer (Gatys, Ecker, Bethge) on a from-scratch NumPy/CuPy engine.

Public surface: ``minivgg.ops`` (forward/backward pairs), ``minivgg.gradcheck``, ``load_vgg``,
``Objective`` and the optimisers. Every gradient is hand-written and checked by finite differences.
"""

import os as _os

# Thread pools that take turns. Each 3x3 conv alternates OpenBLAS GEMMs with Numba (OpenMP)
# transforms. Both runtimes busy-wait after their work by default: OpenBLAS for about 2^28 cycles
# (~0.1 s), libgomp for a while. The idle pool then spins on the core that the other pool needs;
# on 2 cores that made a conv ~2.5x slower. These defaults make idle threads sleep. They only take
# effect if set before numpy loads OpenBLAS and before Numba starts OpenMP, so they live here, ahead of every
# other import. The CLI always gets them. A library user who imported numpy first keeps numpy's
# OpenBLAS spinning, which costs nothing: the engine's GEMMs use scipy's OpenBLAS, loaded after this
# point (``kernels/blas.py``; both import orders measured within 2 % in bench/results.md).
import sys as _sys

THREAD_DEFAULTS = {"OPENBLAS_THREAD_TIMEOUT": "4", "OMP_WAIT_POLICY": "passive"}
# True when numpy (so OpenBLAS) was loaded before these could take effect (``minivgg doctor`` says so).
NUMPY_FIRST = "numpy" in _sys.modules and "OPENBLAS_THREAD_TIMEOUT" not in _os.environ
# The engine's GEMMs run on scipy's OpenBLAS (``kernels/blas.py``), which loads after this point unless
# scipy.linalg was imported first: only then does numpy-first cost speed (``minivgg doctor`` says so).
SCIPY_BLAS_FIRST = "scipy.linalg" in _sys.modules and "OPENBLAS_THREAD_TIMEOUT" not in _os.environ
for _name, _value in THREAD_DEFAULTS.items():
    _os.environ.setdefault(_name, _value)


def _serve_checkout_kernels() -> None:
    """In a source checkout that is not installed (``python -m minivgg`` from the repository root
    puts the checkout first on sys.path), serve ``kernels/`` as ``minivgg._kernels`` as pip would."""
    import importlib.util

    if importlib.util.find_spec("minivgg._kernels") is not None:
        return
    folder = _os.path.join(
        _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))), "kernels"
    )
    spec = importlib.util.spec_from_file_location(
        "minivgg._kernels",
        _os.path.join(folder, "__init__.py"),
        submodule_search_locations=[folder],
    )
    module = importlib.util.module_from_spec(spec)
    _sys.modules["minivgg._kernels"] = module
    spec.loader.exec_module(module)


_serve_checkout_kernels()
from . import gradcheck
from .engine import ops
from .network.vgg import VGG, load_vgg

__version__ = "0.1.0"


def __getattr__(name):  # lazy: keep ``import minivgg`` light
    if name == "Objective":
        from .style.objective import Objective

        return Objective
    if name == "stylize":
        from .api import stylize

        return stylize
    if name == "PRESETS":
        from .style.presets import PRESETS

        return PRESETS
    raise AttributeError(name)


__all__ = ["ops", "gradcheck", "VGG", "load_vgg", "Objective", "PRESETS", "stylize"]
