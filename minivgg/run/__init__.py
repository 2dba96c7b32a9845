"""A run, from files to a picture: ``transfer`` (prepare -> optimise -> finish), ``controls`` (colour,
regions, the convergence stop), ``color``, ``schedule`` (coarse to fine), ``checkpoint``, ``image``
(load, resize, save), ``report`` (loss curves) and ``fsutil`` (atomic writes, output checks).
"""
