"""Benchmarks of minivgg against PyTorch (``python -m bench.compare``); not part of the installed
package. Each study writes its own page into ``bench/results/`` and ``bench.index`` embeds them all
in ``bench/results.md`` (see ``bench/README.md``).

Imports run one way, down this list (``tests/test_bench_layout.py`` checks there is no circle):
the studies ``compare``, ``tiling``, ``transfer``, ``faults``, ``sweep_throughput``; ``peers`` (the
peer rows of ``compare``); ``workers`` (an engine in a process of its own); ``evaluation`` (images,
network, objectives, agreement, one evaluation in a fresh process); ``torch_objective`` (the same
objective in PyTorch); ``ops`` (per-op timings and breakdowns); ``report`` (the two-engine page and
its plot); ``index`` (where pages go, the index page); ``timing`` (interleaving and peak RSS);
``environment`` (threads, machine, versions); this package (``USER_ENV``, ``REPO``).

Importing ``bench`` imports ``minivgg`` first, as the ``minivgg`` command does: its thread defaults
(``minivgg.THREAD_DEFAULTS``) must be in the environment before numpy loads OpenBLAS. ``USER_ENV`` keeps the
environment as it was before that, and torch is imported under it (``environment.import_torch``), so each
side runs under its own library's defaults. Child processes also start from ``USER_ENV``. torch is
only imported when asked for. ``MINIVGG_BENCH_NUMPY_FIRST=1`` imports numpy before minivgg instead (the
bench's import-order rows: what a script that starts with ``import numpy`` gets).
"""

import os as _os
from pathlib import Path as _Path

USER_ENV = dict(_os.environ)
REPO = _Path(__file__).resolve().parents[1]
if (
    _os.environ.get("MINIVGG_BENCH_NUMPY_FIRST") == "1"
):  # the import-order rows: numpy first, as most scripts
    import numpy  # noqa: F401
import minivgg

assert minivgg.THREAD_DEFAULTS  # the import is for its side effect on the environment
