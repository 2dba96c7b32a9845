"""VGG16/VGG19 weights: loaders for every real file layout, verification against the manifest,
and the verified cache that ``minivgg weights fetch`` fills (``weights/README.md`` has the details).

Every loader returns a ``WeightSet``: ``params[name] = (w, b)`` with ``w`` float32 OIHW
``(out, in, 3, 3)`` in cross-correlation orientation (as Keras and the engine use it) and ``b``
float32 ``(out,)``. Layouts: 'keras-h5' (legacy ``.h5``), 'keras3-weights' (``.weights.h5`` and
``.keras``), 'keras0-theano' (the CNTK tutorial's ``vgg16_weights.bin``) and 'onnx'. Anything wrong
with a file is one ``WeightsError`` sentence naming the file, the problem and what to run instead.

Modules: ``base`` (WeightSet, the error sentence), ``verification`` (manifest, digests), ``hdf5`` and
``onnx`` (the layout readers), ``load`` (``load_weights``), ``cache``, ``fetching`` (``fetch``) and
``info`` (``describe``). The command line is ``minivgg.cli.weights``.
"""
from ..errors import WeightsError
from .base import LAYOUTS, ORIENTATIONS, WeightSet
from .cache import cache_dir, cached_path, load_cached
from .fetching import FETCH_SOURCE_KINDS, fetch
from .info import describe
from .load import load_weights
from .verification import layer_digests, manifest, verify

__all__ = ["FETCH_SOURCE_KINDS", "LAYOUTS", "ORIENTATIONS", "WeightSet", "WeightsError", "cache_dir", "cached_path",
           "describe", "fetch", "layer_digests", "load_cached", "load_weights", "manifest", "verify"]
