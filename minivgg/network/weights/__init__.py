"""VGG16/VGG19 weights: a loader for every real file layout (``LAYOUTS``) returning a ``WeightSet``,
verification against the manifest, and the verified cache ``minivgg weights fetch`` fills (see
``weights/README.md``). Anything wrong with a file is one ``WeightsError`` sentence naming the file,
the problem and what to run instead. This module re-exports the public API of the modules below it.
"""

from ...errors import WeightsError
from .base import LAYOUTS, ORIENTATIONS, WeightSet
from .cache import cache_dir, cached_path, load_cached
from .fetching import FETCH_SOURCE_KINDS, fetch
from .info import describe
from .load import load_weights
from .verification import layer_digests, manifest, verify

__all__ = [
    "FETCH_SOURCE_KINDS",
    "LAYOUTS",
    "ORIENTATIONS",
    "WeightSet",
    "WeightsError",
    "cache_dir",
    "cached_path",
    "describe",
    "fetch",
    "layer_digests",
    "load_cached",
    "load_weights",
    "manifest",
    "verify",
]
