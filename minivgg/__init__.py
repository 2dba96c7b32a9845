"""minivgg: neural style transfer (Gatys, Ecker, Bethge) on a from-scratch NumPy/CuPy engine.

Every gradient is hand-written and checked by finite differences. The public surface:

``stylize(content, style, ...)``
    A whole style transfer on arrays, PIL images or paths, returning the (H, W, 3) uint8
    picture: ``minivgg transfer`` from Python (``minivgg.api``).
``Objective(net, content, style, preset, ...)``
    The loss of one preset on one network; ``value_and_grad(x)`` feeds any optimiser.
``PRESETS``
    The six reference formulations by name (``minivgg.style.presets.Preset`` records).
``VGG``, ``load_vgg(arch, weights=None, ...)``
    The frozen feature network and its loader (a weights file or the verified cache);
    ``minivgg.network.vgg.random_vgg`` builds one with random weights.
``ops``
    The engine's forward/backward pairs: conv2d, relu, avg and max pooling.
``gradcheck``
    Finite-difference gradient checks (``check_vjp``, ``check_grad``, ``assert_*``).
``THREAD_DEFAULTS``, ``NUMPY_FIRST``, ``SCIPY_BLAS_FIRST``, ``__version__``
    The idle-thread settings applied on import, and whether numpy or scipy.linalg was loaded
    before them (``minivgg doctor`` reports it).

``Objective``, ``PRESETS`` and ``stylize`` load on first use, which keeps ``import minivgg`` light.

Examples
--------
>>> import numpy as np
>>> import minivgg
>>> minivgg.PRESETS["gatys"].arch, minivgg.THREAD_DEFAULTS["OMP_WAIT_POLICY"]
('vgg16', 'passive')
>>> minivgg.ops.relu_forward(np.array([-1.0, 2.0]))[0]
array([0., 2.])
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
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load minivgg's kernels from {folder}")
    module = importlib.util.module_from_spec(spec)
    _sys.modules["minivgg._kernels"] = module
    spec.loader.exec_module(module)


_serve_checkout_kernels()
from typing import TYPE_CHECKING, Any

from . import gradcheck
from .engine import ops
from .network.vgg import VGG, load_vgg

# ``minivgg.ops`` is the public name of the engine's op list: ``import minivgg.ops`` works too.
_sys.modules.setdefault(f"{__name__}.ops", ops)

if TYPE_CHECKING:  # the lazy names, for type checkers
    from .api import stylize
    from .style.objective import Objective
    from .style.presets import PRESETS

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:  # lazy: keep ``import minivgg`` light
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
