"""The CUDA backend (numba.cuda kernels for CuPy arrays): the ops of ``OPS`` (ReLU with bool or
bit-packed masks, 2x2 pools) and the TV loss with its gradient.

Every kernel is one thread per output element and gathers (no atomics), so results are
deterministic, and follows its reference (``reference.py``, ``minivgg.style.losses.tv_loss``)
operation by operation, so float32 results agree to the last bit or nearly.
Arguments are CuPy arrays on a GPU (read through ``__cuda_array_interface__``) or NumPy arrays under
the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, how CI runs them). Wrappers allocate their outputs
with the input's array module and return what the reference returns (same value, same cache).

Scalar constants enter kernels as arguments of the array's dtype: a Python literal would promote
float32 arithmetic to float64 in compiled code (not in the simulator, which would hide it).
Numba waits for the stream a CuPy array names before using it and launches on the default stream,
so kernels and CuPy work stay in order (at the price of a host wait per launch).
"""

from __future__ import annotations

from numba import cuda

from minivgg.engine.backend import get_array_module
from minivgg.engine.masks import PackedMask

from . import tv

_THREADS = 256


def _launch(kernel, n: int, *args) -> None:
    """Run ``kernel`` on a 1-D grid of at least ``n`` threads (no launch when n == 0)."""
    if n <= 0:
        return
    threads = min(_THREADS, n)
    kernel[(n + threads - 1) // threads, threads](*args)


# ------------------------------------------------------------------------------ indexing and pooling


@cuda.jit(device=True)
def _nchw(t, c, ho, wo):
    """Flat output index t -> (batch, channel, row, column) of an (n, c, ho, wo) array."""
    q = t % wo
    r = t // wo
    p = r % ho
    r = r // ho
    return r // c, r % c, p, q


@cuda.jit(device=True)
def _beats(v, best):
    """A later corner wins only when strictly larger (so a NaN wins only as the first corner)."""
    return v > best


@cuda.jit
def _max_pool_fwd(x, y, idx):
    t = cuda.grid(1)
    n, c, ho, wo = y.shape
    if t >= n * c * ho * wo:
        return
    b, ch, p, q = _nchw(t, c, ho, wo)
    i = 2 * p
    j = 2 * q
    best = x[b, ch, i, j]
    k = 0
    v = x[b, ch, i, j + 1]
    if _beats(v, best):
        best = v
        k = 1
    v = x[b, ch, i + 1, j]
    if _beats(v, best):
        best = v
        k = 2
    v = x[b, ch, i + 1, j + 1]
    if _beats(v, best):
        best = v
        k = 3
    y[b, ch, p, q] = best
    idx[b, ch, p, q] = k


@cuda.jit
def _max_pool_bwd(gy, idx, gx, zero):
    t = cuda.grid(1)
    n, c, ho, wo = gy.shape
    if t >= n * c * ho * wo:
        return
    b, ch, p, q = _nchw(t, c, ho, wo)
    g = gy[b, ch, p, q]
    z = g * zero  # the reference multiplies by a one-hot mask: 0·gy, not a literal 0
    k = idx[b, ch, p, q]
    gx[b, ch, 2 * p, 2 * q] = g if k == 0 else z
    gx[b, ch, 2 * p, 2 * q + 1] = g if k == 1 else z
    gx[b, ch, 2 * p + 1, 2 * q] = g if k == 2 else z
    gx[b, ch, 2 * p + 1, 2 * q + 1] = g if k == 3 else z


@cuda.jit
def _avg_pool_fwd(x, y, quarter):
    t = cuda.grid(1)
    n, c, ho, wo = y.shape
    if t >= n * c * ho * wo:
        return
    b, ch, p, q = _nchw(t, c, ho, wo)
    i = 2 * p
    j = 2 * q
    s = (x[b, ch, i, j] + x[b, ch, i, j + 1]) + (x[b, ch, i + 1, j] + x[b, ch, i + 1, j + 1])
    y[b, ch, p, q] = s * quarter


@cuda.jit
def _avg_pool_bwd(gy, gx, quarter):
    t = cuda.grid(1)
    n, c, ho, wo = gy.shape
    if t >= n * c * ho * wo:
        return
    b, ch, p, q = _nchw(t, c, ho, wo)
    g = gy[b, ch, p, q] * quarter
    gx[b, ch, 2 * p, 2 * q] = g
    gx[b, ch, 2 * p, 2 * q + 1] = g
    gx[b, ch, 2 * p + 1, 2 * q] = g
    gx[b, ch, 2 * p + 1, 2 * q + 1] = g


def _pool_grad_buffer(xp, xshape, dtype):
    # An odd last row/column is dropped by the forward: its gradient must be 0, not garbage.
    odd = xshape[2] % 2 or xshape[3] % 2
    return (xp.zeros if odd else xp.empty)(tuple(xshape), dtype=dtype)


def max_pool2d_forward(x):
    """``reference.max_pool2d_forward`` (2x2/s2, floor, first-max ties): x (N, C, H, W) ->
    (y (N, C, H//2, W//2), (argmax uint8 (N, C, H//2, W//2), x.shape))."""
    xp = get_array_module(x)
    shape = (x.shape[0], x.shape[1], x.shape[2] // 2, x.shape[3] // 2)
    y = xp.empty(shape, dtype=x.dtype)
    idx = xp.empty(shape, dtype=xp.uint8)
    _launch(_max_pool_fwd, y.size, x, y, idx)
    return y, (idx, x.shape)


def max_pool2d_backward(gy, cache):
    """``reference.max_pool2d_backward``: each ``gy`` goes to its window's argmax, everything else gets 0."""
    idx, xshape = cache
    xp = get_array_module(gy)
    gx = _pool_grad_buffer(xp, xshape, gy.dtype)
    _launch(_max_pool_bwd, gy.size, gy, idx, gx, gy.dtype.type(0))
    return gx


def avg_pool2d_forward(x):
    """``reference.avg_pool2d_forward`` (2x2/s2 mean, floor): x (N, C, H, W) -> (y, x.shape)."""
    xp = get_array_module(x)
    y = xp.empty((x.shape[0], x.shape[1], x.shape[2] // 2, x.shape[3] // 2), dtype=x.dtype)
    _launch(_avg_pool_fwd, y.size, x, y, x.dtype.type(0.25))
    return y, x.shape


def avg_pool2d_backward(gy, xshape):
    """``reference.avg_pool2d_backward``: every input of a window gets ``gy/4``; dropped rows/columns 0."""
    xp = get_array_module(gy)
    gx = _pool_grad_buffer(xp, xshape, gy.dtype)
    _launch(_avg_pool_bwd, gy.size, gy, gx, gy.dtype.type(0.25))
    return gx


# ----------------------------------------------------------------------------------------- relu


@cuda.jit
def _relu(x, y, mask):
    t = cuda.grid(1)
    if t >= x.size:
        return
    v = x[t]
    if v > 0:  # xp.where(v > 0, v, 0): NaN gives 0 and a False mask
        y[t] = v
        mask[t] = True
    else:
        y[t] = 0
        mask[t] = False


@cuda.jit
def _relu_packed(x, y, bits):
    byte = cuda.grid(1)
    if byte >= bits.size:
        return
    acc = 0
    for k in range(8):  # xp.packbits order: the first element is the most significant bit
        t = 8 * byte + k
        if t < x.size:
            v = x[t]
            if v > 0:
                y[t] = v
                acc |= 1 << (7 - k)
            else:
                y[t] = 0
    bits[byte] = acc


@cuda.jit
def _relu_bwd(gy, mask, gx, zero):
    t = cuda.grid(1)
    if t >= gy.size:
        return
    g = gy[t]
    gx[t] = g if mask[t] else g * zero  # gy · [x > 0] as the reference's product (0·NaN stays NaN)


@cuda.jit
def _relu_bwd_packed(gy, bits, gx, zero):
    t = cuda.grid(1)
    if t >= gy.size:
        return
    g = gy[t]
    gx[t] = g if (bits[t >> 3] >> (7 - (t & 7))) & 1 else g * zero


def relu_forward(x, inplace: bool = False, pack: bool = False):
    """``reference.relu_forward``: ``(max(x, 0), x > 0)``, the mask bool or a ``PackedMask``
    (``xp.packbits`` order); ``inplace`` writes y over a contiguous x."""
    xp = get_array_module(x)
    xc = xp.ascontiguousarray(x)
    y = xc if inplace else xp.empty_like(xc)
    if pack:
        bits = xp.empty((x.size + 7) // 8, dtype=xp.uint8)
        _launch(_relu_packed, bits.size, xc.reshape(-1), y.reshape(-1), bits)
        return y, PackedMask(bits, tuple(x.shape))
    mask = xp.empty(x.shape, dtype=xp.bool_)
    _launch(_relu, x.size, xc.reshape(-1), y.reshape(-1), mask.reshape(-1))
    return y, mask


def relu_backward(gy, mask, inplace: bool = False):
    """``reference.relu_backward``: ``gx = gy · [x > 0]`` from a bool or packed mask (read in place,
    never unpacked); ``inplace`` writes gx over a contiguous gy."""
    packed = isinstance(mask, PackedMask)
    xp = get_array_module(gy)
    gyc = xp.ascontiguousarray(gy)
    gx = gyc if inplace else xp.empty_like(gyc)
    bits = mask.bits if packed else xp.ascontiguousarray(mask).reshape(-1)
    _launch(
        _relu_bwd_packed if packed else _relu_bwd,
        gy.size,
        gyc.reshape(-1),
        bits,
        gx.reshape(-1),
        gy.dtype.type(0),
    )
    return gx


# ------------------------------------------------------------------------------------------- tv

TV_CODES = tv.TV_CODES


@cuda.jit(device=True)
def _phi(d, code):
    """Per-difference penalty of the neighbour kinds: d² or |d|."""
    return d * d if code <= 1 else abs(d)


_dphi = cuda.jit(device=True)(tv.dphi)
_corner_grads = cuda.jit(device=True)(tv.corner)


@cuda.jit
def _tv(x, g, contrib, code, kv, kh, kv64, kh64, one, c125, p25):
    t = cuda.grid(1)
    h, w, nc = x.shape
    if t >= h * w * nc:
        return
    c = t % nc
    r = t // nc
    j = r % w
    i = r // w
    acc = one - one
    val = 0.0
    if code <= 3:
        # g[1:] += gv; g[:-1] -= gv; g[:, 1:] += gh; g[:, :-1] -= gh, in the reference's order.
        if i > 0:
            acc += _dphi(x[i, j, c] - x[i - 1, j, c], code, one) * kv
        if i < h - 1:
            dv = x[i + 1, j, c] - x[i, j, c]
            acc -= _dphi(dv, code, one) * kv
            val += kv64 * float(_phi(dv, code))
        if j > 0:
            acc += _dphi(x[i, j, c] - x[i, j - 1, c], code, one) * kh
        if j < w - 1:
            dh = x[i, j + 1, c] - x[i, j, c]
            acc -= _dphi(dh, code, one) * kh
            val += kh64 * float(_phi(dh, code))
    else:
        # g[:-1, :-1] += gv + gh; g[1:, :-1] -= gv; g[:-1, 1:] -= gh.
        if i < h - 1 and j < w - 1:
            gv, gh, s = _corner_grads(x, i, j, c, code, c125, p25)
            acc += gv + gh
            sd = float(s)
            val = sd if code == 4 else sd**1.25
        if i > 0 and j < w - 1:
            gv, gh, s = _corner_grads(x, i - 1, j, c, code, c125, p25)
            acc -= gv
        if i < h - 1 and j > 0:
            gv, gh, s = _corner_grads(x, i, j - 1, c, code, c125, p25)
            acc -= gh
    g[i, j, c] = acc
    contrib[i, j, c] = val


def tv_loss(x, kind: str = "squared"):
    """``losses.tv_loss`` on the GPU: x (H, W, C) -> (value float, gradient (H, W, C) in x's dtype).

    One thread per pixel gathers the gradient from its (up to four) neighbour differences and writes
    its share of the loss in float64; the shares are summed with ``xp.sum`` (one scalar to the host).
    """
    if kind not in TV_CODES:
        raise ValueError(f"tv_loss: unknown kind {kind!r}: expected one of {tuple(TV_CODES)}")
    xp = get_array_module(x)
    x = xp.ascontiguousarray(x)
    h, w, c = x.shape
    dt = x.dtype.type
    kv, kh = tv.weights(kind, h, w, c)
    g = xp.empty_like(x)
    contrib = xp.empty(x.shape, dtype=xp.float64)
    _launch(
        _tv,
        x.size,
        x,
        g,
        contrib,
        TV_CODES[kind],
        dt(kv),
        dt(kh),
        float(kv),
        float(kh),
        dt(1),
        dt(1.25),
        dt(0.25),
    )
    return float(xp.sum(contrib)), g


__all__ = [
    "relu_forward",
    "relu_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "tv_loss",
    "TV_CODES",
]
