"""Benchmarks of minivgg against PyTorch (``python -m bench.compare``); not part of the installed package.

``torch_objective``: the same objective in PyTorch; ``compare``: the A/B driver; ``ops``: per-op
timings and breakdowns; ``timing``: interleaving and peak RSS; ``environment``: threads, machine,
versions; ``report``: the markdown and the plot. Importing ``bench`` imports neither torch nor the engine.
"""
