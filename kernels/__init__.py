"""Hand-written kernels, one module per backend, installed as ``minivgg._kernels``.

Every backend implements the same closed op list ``OPS`` with the same names and signatures:

    relu_forward(x, inplace=False, pack=False) -> (y, mask)    mask: bool array or masks.PackedMask
    relu_backward(gy, mask, inplace=False) -> gx
    avg_pool2d_forward(x) -> (y, x.shape)                       2x2 windows, stride 2, floor
    avg_pool2d_backward(gy, xshape) -> gx
    max_pool2d_forward(x) -> (y, (argmax uint8, x.shape))       ties: first maximum
    max_pool2d_backward(gy, (argmax, xshape)) -> gx

``reference`` (NumPy or CuPy array code, the definition the others are tested against), ``cpu``
(Numba, parallel loops) and ``cuda_ops`` (numba.cuda, one thread per output). ``minivgg.engine.dispatch``
picks one per call; ``minivgg.ops`` validates and calls it. Beyond the list, ``cpu`` has the Winograd
tile transforms that ``minivgg.engine.winograd`` uses, and ``cpu`` and ``cuda_ops`` the one-pass TV loss that
``minivgg.style.losses`` uses.
``blas`` holds the engine's CPU GEMMs (conv and Gram), on scipy's OpenBLAS (why: see its docstring).
"""

OPS = (
    "relu_forward",
    "relu_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
    "max_pool2d_forward",
    "max_pool2d_backward",
)
