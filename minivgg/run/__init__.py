"""A run, from files to a picture: ``transfer`` (prepare -> optimise -> finish; ``execute`` and
``stylize``), ``options`` (``RunOptions``, ``Run``), ``optimize`` (the optimiser loop, progress,
snapshots, ``finish``), ``controls`` (colour, regions, the convergence stop), ``color``, ``schedule``
(coarse to fine), ``checkpoint``, ``image`` (load, resize, save) over ``decode`` (the hardened
decoder), ``samples`` (the shipped paintings), ``report`` (loss curves) and ``fsutil`` (atomic
writes, output checks).
"""
