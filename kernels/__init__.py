"""Hand-written kernels (Numba on the CPU; CUDA via numba.cuda for CuPy arrays). Installed as
``minivgg._kernels``; each kernel has a NumPy reference in ``minivgg.ops`` that tests compare against.

``cuda_ops``: numba.cuda kernels for CuPy arrays (pooling, fused bias+ReLU+mask, ReLU backward, TV,
im2col/col2im, Winograd transforms), reached through ``minivgg.backend.cuda_kernels_for``; CI runs
them in the CUDA simulator and compiles them to PTX (``tests/test_cuda_kernels.py``)."""
