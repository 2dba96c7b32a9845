"""The engine's GEMMs on scipy's OpenBLAS, whatever the user imported first.

numpy loads its own OpenBLAS when it is imported and reads ``OPENBLAS_THREAD_TIMEOUT`` then: a
script that imports numpy before minivgg gets a BLAS pool that spins on both cores after every GEMM
(about 0.1 s), exactly when the Numba transforms that follow need them (+24–35 % per evaluation at
512²). scipy's wheels ship a second OpenBLAS that loads only with ``scipy.linalg``, which minivgg
imports after its thread defaults are set (``minivgg.THREAD_DEFAULTS``). Every GEMM of a conv and of a
Gram matrix goes through here, so numpy's pool stays asleep and the two pools that take turns are this
one and Numba's, both set to sleep when idle. ``minivgg doctor`` reports when even scipy's was loaded
first (``minivgg.SCIPY_BLAS_FIRST``).

Arrays are C-contiguous float32/float64 NumPy arrays; BLAS is column-major, so ``A @ B`` is asked for
as ``Cᵀ = Bᵀ Aᵀ`` on the same memory (no copies), and the result is written into ``out``.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import blas as _blas

_GEMM = {np.dtype(np.float32): _blas.sgemm, np.dtype(np.float64): _blas.dgemm}
_SYRK = {np.dtype(np.float32): _blas.ssyrk, np.dtype(np.float64): _blas.dsyrk}


def _fits(*arrays) -> bool:
    dt = arrays[0].dtype
    return dt in _GEMM and all(
        a.dtype == dt and a.flags.c_contiguous and a.ndim == 2 for a in arrays
    )


def gemm(a, b, out=None, trans_a: bool = False):
    """``out = a @ b`` (``aᵀ @ b`` when ``trans_a``, with no transposed copy) for 2-D arrays (``out``
    allocated when None); ``np.matmul`` when the layout does not fit BLAS."""
    m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
    if out is None:
        out = np.empty((m, b.shape[1]), dtype=np.result_type(a, b))
    if not (_fits(a, b, out) and out.shape == (m, b.shape[1]) and k == b.shape[0]) or a.size == 0:
        return np.matmul(a.T if trans_a else a, b, out=out)
    # out.T (F-order, n x m) = b.T (n x k) @ a.T (k x m), or @ (a.T)ᵀ; overwrite_c writes into out's memory.
    res = _GEMM[a.dtype](1.0, b.T, a.T, 0.0, out.T, trans_b=int(trans_a), overwrite_c=1)
    if not np.shares_memory(res, out):  # f2py had to copy: keep the contract anyway
        out[...] = res.T
    return out


def matmul(a, b, out=None, trans_a: bool = False):
    """``np.matmul(a, b, out=out)`` for 2-D or stacked 3-D arrays (``a[k]ᵀ @ b[k]`` when ``trans_a``), every
    product through ``gemm``."""
    if a.ndim == 2:
        return gemm(a, b, out, trans_a)
    if out is None:
        out = np.empty(
            (a.shape[0], a.shape[2 if trans_a else 1], b.shape[2]), dtype=np.result_type(a, b)
        )
    for k in range(a.shape[0]):
        gemm(a[k], b[k], out[k], trans_a)
    return out


def gram(Fm, scale: float = 1.0):
    """``scale · Fm Fmᵀ`` (C, C) of a C-contiguous (C, M) matrix by SYRK: half the GEMM's work, since only
    one triangle is computed; the other is mirrored."""
    if not _fits(Fm) or Fm.size == 0:
        return (Fm @ Fm.T) * Fm.dtype.type(scale)
    # Fm.T is F-order (M x C): trans=1 gives (Fm.T)ᵀ (Fm.T) = Fm Fmᵀ, upper triangle, column-major.
    upper = _SYRK[Fm.dtype](scale, Fm.T, trans=1)  # F-order (C, C); its transpose is C-order lower
    G = np.ascontiguousarray(upper)
    i, j = np.tril_indices(G.shape[0], -1)
    G[i, j] = G[j, i]
    return G
