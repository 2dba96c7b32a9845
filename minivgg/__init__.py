"""minivgg: neural style transfer (Gatys, Ecker, Bethge) on a from-scratch NumPy/CuPy engine.

Public surface: ``minivgg.ops`` (forward/backward pairs), ``minivgg.gradcheck``, ``load_vgg``,
``Objective`` and the optimisers. Every gradient is hand-written and checked by finite differences.
"""
from . import gradcheck, ops
from .vgg import VGG, load_vgg

__version__ = "0.1.0"


def __getattr__(name):  # lazy: keep ``import minivgg`` light
    if name == "Objective":
        from .objective import Objective
        return Objective
    if name in ("PRESETS",):
        from .objective import PRESETS
        return PRESETS
    raise AttributeError(name)


__all__ = ["ops", "gradcheck", "VGG", "load_vgg", "Objective", "PRESETS"]
