"""The array engine: every op's forward and backward, and the machinery under them.

``ops`` (validation and dispatch; public as ``minivgg.ops``), ``winograd`` and ``im2col`` (the two
conv algorithms), ``masks`` (bit-packed ReLU masks), ``dispatch`` (CPU/CUDA kernels), ``backend``
(the one place that imports CuPy) and ``arena`` (memory reused across evaluations).
"""
