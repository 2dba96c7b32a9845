"""Tools built on runs: ``reconstruct`` and ``inspection`` (what each layer keeps), ``sweep`` with
``cluster`` and ``sheet`` (parameter sweeps and batches on Dask), ``demo`` and ``checks`` (the engine's
gradient-check cases behind ``minivgg gradcheck``).
"""
