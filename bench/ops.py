"""Where the time goes: per-op timings of minivgg beside torch's equivalents, and a breakdown of one
full objective evaluation by op (minivgg: timers wrapped around ``minivgg.ops``; torch: its profiler)."""

from __future__ import annotations

import contextlib
import functools
import sys
import time
from collections import defaultdict

import numpy as np

from .timing import interleaved

# The ops timed on both sides, in table order.
OP_KINDS = (
    "conv fwd",
    "conv bwd-data",
    "relu fwd",
    "relu bwd",
    "avg pool fwd",
    "avg pool bwd",
    "max pool fwd",
    "max pool bwd",
)


def conv_flops(c: int, o: int, h: int, w: int) -> float:
    """Multiply-adds ×2 of a 3x3/s1/p1 conv (the same count for backward-data)."""
    return 2.0 * c * o * 9 * h * w


def _minivgg_op_fns(c, h, rng):
    """Closures running each minivgg op once on fixed inputs (float32, NCHW, C→C 3x3 conv)."""
    from minivgg import ops

    x = rng.standard_normal((1, c, h, h)).astype(np.float32)
    w = (rng.standard_normal((c, c, 3, 3)) * np.sqrt(2.0 / (9 * c))).astype(np.float32)
    b = (rng.standard_normal(c) * 0.01).astype(np.float32)
    gy = rng.standard_normal((1, c, h, h)).astype(np.float32)
    gp = rng.standard_normal((1, c, h // 2, h // 2)).astype(np.float32)
    fns = {}
    try:
        _, ccache = ops.conv2d_forward(x, w, b, 1, 1, save_input=False)
        fns["conv fwd"] = lambda: ops.conv2d_forward(x, w, b, 1, 1, save_input=False)
        fns["conv bwd-data"] = lambda: ops.conv2d_backward(gy, ccache)
    except Exception as exc:  # the engine's op API may move; say so instead of dying
        fns["conv fwd"] = fns["conv bwd-data"] = exc
    try:
        _, rcache = ops.relu_forward(x)
        fns["relu fwd"] = lambda: ops.relu_forward(x)
        fns["relu bwd"] = lambda: ops.relu_backward(gy, rcache)
    except Exception as exc:
        fns["relu fwd"] = fns["relu bwd"] = exc
    for kind in ("avg", "max"):
        try:
            fwd, bwd = (
                getattr(ops, f"{kind}_pool2d_forward"),
                getattr(ops, f"{kind}_pool2d_backward"),
            )
            _, pcache = fwd(x)
            fns[f"{kind} pool fwd"] = functools.partial(fwd, x)
            fns[f"{kind} pool bwd"] = functools.partial(bwd, gp, pcache)
        except Exception as exc:
            fns[f"{kind} pool fwd"] = fns[f"{kind} pool bwd"] = exc
    return fns


def _torch_op_fns(c, h, rng, channels_last: bool = False):
    """The same ops in torch (aten backward kernels called directly, only the input gradient);
    ``channels_last``: every tensor NHWC, oneDNN's own layout (what ``torch:channels_last`` runs)."""
    import torch
    import torch.nn.functional as F

    layout = torch.channels_last if channels_last else torch.contiguous_format
    t = lambda a: torch.from_numpy(a).contiguous(
        memory_format=layout if a.ndim == 4 else torch.contiguous_format
    )
    x = t(rng.standard_normal((1, c, h, h)).astype(np.float32))
    w = t((rng.standard_normal((c, c, 3, 3)) * np.sqrt(2.0 / (9 * c))).astype(np.float32))
    b = t((rng.standard_normal(c) * 0.01).astype(np.float32))
    gy = t(rng.standard_normal((1, c, h, h)).astype(np.float32))
    gp = t(rng.standard_normal((1, c, h // 2, h // 2)).astype(np.float32))
    aten = torch.ops.aten
    y = torch.relu(x)
    _, idx = F.max_pool2d(x, 2, 2, return_indices=True)
    return {
        "conv fwd": lambda: F.conv2d(x, w, b, padding=1),
        "conv bwd-data": lambda: aten.convolution_backward(
            gy, x, w, [c], [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [True, False, False]
        ),
        "relu fwd": lambda: torch.relu(x),
        "relu bwd": lambda: aten.threshold_backward(gy, y, 0.0),
        "avg pool fwd": lambda: F.avg_pool2d(x, 2, 2),
        "avg pool bwd": lambda: aten.avg_pool2d_backward(
            gp, x, [2, 2], [2, 2], [0, 0], False, True, None
        ),
        "max pool fwd": lambda: F.max_pool2d(x, 2, 2, return_indices=True),
        "max pool bwd": lambda: aten.max_pool2d_with_indices_backward(
            gp, x, [2, 2], [2, 2], [0, 0], [1, 1], False, idx
        ),
    }


def op_fns(engine: str, c: int, h: int, seed: int = 0) -> dict:
    """``{op kind: thunk or the exception that building it raised}`` for one engine ('minivgg', 'torch',
    'torch:channels_last') and shape."""
    rng = np.random.default_rng(seed)
    if engine == "minivgg":
        return _minivgg_op_fns(c, h, rng)
    return _torch_op_fns(c, h, rng, channels_last=engine == "torch:channels_last")


def time_call(engine: str, fn) -> float:
    """Seconds of one call of ``fn`` (torch ops under ``no_grad``)."""
    ctx = contextlib.nullcontext()
    if engine.startswith("torch"):
        import torch

        ctx = torch.no_grad()
    with ctx:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0


def op_timings(
    shapes, repeats: int, workers: dict, warmup: int = 1, cooldown: float = 0.0
) -> list[dict]:
    """Median seconds per op for each ``(channels, side)`` shape, both engines interleaved, each in its
    own worker process (``workers[engine]``, a ``bench.workers.Worker`` without an objective).

    Rows: ``{"shape", "op", "minivgg", "torch", "ratio", "gflops_minivgg", "gflops_torch", "error"}``, and
    with a ``torch:channels_last`` worker also ``"torch:channels_last"``, ``"ratio_channels_last"``.
    """
    rows = []
    for c, h in shapes:
        for op in OP_KINDS:
            row = {
                "shape": f"{c}ch {h}x{h}",
                "op": op,
                "minivgg": None,
                "torch": None,
                "ratio": None,
                "gflops_minivgg": None,
                "gflops_torch": None,
                "error": None,
            }
            if "torch:channels_last" in workers:
                row.update({"torch:channels_last": None, "ratio_channels_last": None})
            fns = {eng: (lambda w=w: w.call(("op", c, h, op))) for eng, w in workers.items()}
            try:
                fns["minivgg"]()
            except Exception as exc:  # the engine's op API may move; say so instead of dying
                row["error"] = str(exc)
                del fns["minivgg"]
            times = interleaved(fns, repeats, warmup, cooldown, self_timed=True)
            for eng in times:
                row[eng] = float(np.median(times[eng]))
            if row["minivgg"]:
                row["ratio"] = row["minivgg"] / row["torch"]
                if row.get("torch:channels_last"):
                    row["ratio_channels_last"] = row["minivgg"] / row["torch:channels_last"]
            if op.startswith("conv"):
                flops = conv_flops(c, c, h, h)
                row["gflops_torch"] = flops / row["torch"] / 1e9
                if row["minivgg"]:
                    row["gflops_minivgg"] = flops / row["minivgg"] / 1e9
            rows.append(row)
    return rows


# ---------------------------------------------------------------------------------- breakdowns


@contextlib.contextmanager
def minivgg_op_timers():
    """Wrap every public function of ``minivgg.ops`` (wherever a minivgg module imported it) with a
    timer; nested calls count once, in the outermost op. Yields ``{name: [seconds, calls]}``."""
    from minivgg import ops

    names = [n for n in getattr(ops, "__all__", []) if callable(getattr(ops, n, None))]
    originals = {n: getattr(ops, n) for n in names}
    totals = defaultdict(lambda: [0.0, 0])
    depth = [0]

    def wrap(name, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            depth[0] += 1
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    totals[name][0] += time.perf_counter() - t0
                    totals[name][1] += 1

        return timed

    wrappers = {n: wrap(n, f) for n, f in originals.items()}
    patched = []
    for mod in [
        m for k, m in list(sys.modules.items()) if k == "minivgg" or k.startswith("minivgg.")
    ]:
        for n, f in originals.items():
            if getattr(mod, n, None) is f:
                setattr(mod, n, wrappers[n])
                patched.append((mod, n, f))
    try:
        yield totals
    finally:
        for mod, n, f in patched:
            setattr(mod, n, f)


def minivgg_breakdown(objective, x) -> tuple[float, dict]:
    """One evaluation with op timers: ``(total seconds, {op name: (seconds, calls)})``; the part spent
    outside ``minivgg.ops`` (losses, preprocessing, Grams, TV, glue) is reported as ``other``."""
    with minivgg_op_timers() as totals:
        t0 = time.perf_counter()
        objective.value_and_grad(x)
        total = time.perf_counter() - t0
    parts = {n: (s, c) for n, (s, c) in sorted(totals.items(), key=lambda kv: -kv[1][0])}
    parts["other (losses, Grams, TV, glue)"] = (total - sum(s for s, _ in parts.values()), 0)
    return total, parts


# torch profiler op names -> the categories of the minivgg breakdown
_TORCH_CATEGORIES = (
    ("convolution_backward", "conv backward"),
    ("conv", "conv forward"),
    ("threshold_backward", "relu backward"),
    ("relu", "relu forward"),
    ("clamp_min", "relu forward"),
    ("pool2d_backward", "pool backward"),
    ("pool", "pool forward"),
    ("mm", "matmul (Grams)"),
)


def torch_breakdown(objective, x) -> tuple[float, dict]:
    """One evaluation under ``torch.profiler``: ``(total seconds, {category: (self seconds, calls)})``."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        objective.value_and_grad(x)
        total = time.perf_counter() - t0
    parts = defaultdict(lambda: [0.0, 0])
    for evt in prof.key_averages():
        if not evt.key.startswith("aten::"):
            continue
        name = evt.key[len("aten::") :]
        cat = next((c for pat, c in _TORCH_CATEGORIES if pat in name), None)
        if cat is None:
            continue
        parts[cat][0] += evt.self_cpu_time_total / 1e6
        # one call shows up at every level (conv2d > convolution > … > mkldnn_convolution): count it once
        parts[cat][1] = max(parts[cat][1], evt.count)
    del torch
    out = {k: tuple(v) for k, v in sorted(parts.items(), key=lambda kv: -kv[1][0])}
    out["other (autograd, elementwise, glue)"] = (total - sum(s for s, _ in out.values()), 0)
    return total, out
