"""Benchmarks of minivgg against PyTorch (``python -m bench.compare``); not part of the installed package.

``torch_objective``: the same objective in PyTorch; ``compare``: the A/B driver; ``ops``: per-op
timings and breakdowns; ``timing``: interleaving and peak RSS; ``environment``: threads, machine,
versions; ``report``: the markdown and the plot.

Importing ``bench`` imports ``minivgg`` first, as the ``minivgg`` command does: its thread defaults
(``minivgg.THREAD_DEFAULTS``) must be in the environment before numpy loads OpenBLAS. ``USER_ENV`` keeps the
environment as it was before that, and torch is imported under it (``environment.import_torch``), so each
side runs under its own library's defaults. Child processes also start from ``USER_ENV``. torch is
only imported when asked for. ``MINIVGG_BENCH_NUMPY_FIRST=1`` imports numpy before minivgg instead (the
bench's import-order rows: what a script that starts with ``import numpy`` gets).
"""
import os as _os

USER_ENV = dict(_os.environ)
if _os.environ.get("MINIVGG_BENCH_NUMPY_FIRST") == "1":  # the import-order rows: numpy first, as most scripts
    import numpy  # noqa: F401
import minivgg  # noqa: E402,F401  (before numpy: see above)

assert minivgg.THREAD_DEFAULTS  # the import is for its side effect on the environment
