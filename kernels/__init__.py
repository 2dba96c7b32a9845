"""Hand-written kernels (Numba on the CPU; CUDA via numba.cuda for CuPy arrays). Installed as
``minivgg._kernels``; each kernel has a NumPy reference in ``minivgg.ops`` that tests compare against."""
