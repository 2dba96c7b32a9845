"""Each engine in a process of its own for the A/B runs.

minivgg alternates OpenBLAS with Numba's OpenMP pool and sets both to sleep when idle
(``minivgg.THREAD_DEFAULTS``). torch brings its own OpenMP runtime, and importing it into the same
process made minivgg's evaluation ~25% slower at 512². Neither side's users run both in one
process, so the bench doesn't either: a ``Worker`` is a spawned process holding one engine's
objective at one size, and the parent drives both sides in the interleaved order over a pipe. Times are
measured inside the worker, around ``value_and_grad`` only, after a ``gc.collect()``.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing as mp
import os
import time

from . import USER_ENV, environment
from . import ops as bench_ops
from .evaluation import build, load_images, load_network, start_point


def _serve(conn, engine, size, weights, images, noise, seed, threads):
    environment.pin_threads(threads, torch_too=engine.startswith("torch"))
    objective = None
    if size is not None:
        net, _, _ = load_network(weights)
        content, style = load_images(size, images)
        x = start_point(content, noise, seed)
        objective = build(engine, net, content, style)
        del content, style
    op_fns = {}
    conn.send("ready")
    while True:
        cmd = conn.recv()
        if cmd == "stop":
            break
        try:
            if isinstance(cmd, tuple) and cmd[0] == "op":  # ("op", channels, side, op kind)
                _, c, h, op = cmd
                if (c, h) not in op_fns:
                    op_fns.clear()
                    op_fns[c, h] = bench_ops.op_fns(engine, c, h, seed)
                fn = op_fns[c, h][op]
                if isinstance(fn, Exception):
                    conn.send(fn)
                    continue
                gc.collect()
                conn.send(bench_ops.time_call(engine, fn))
            elif cmd == "outputs":  # the first evaluation (torch.compile compiles here): timed too
                t0 = time.perf_counter()
                loss, grad = objective.value_and_grad(x)
                conn.send((loss, grad, dict(objective.last_terms), time.perf_counter() - t0))
            elif cmd == "eval":
                gc.collect()
                t0 = time.perf_counter()
                objective.value_and_grad(x)
                conn.send(time.perf_counter() - t0)
            elif cmd == "breakdown":
                fn = (
                    bench_ops.minivgg_breakdown
                    if engine == "minivgg"
                    else bench_ops.torch_breakdown
                )
                conn.send(fn(objective, x))
            elif cmd == "threads":
                conn.send(environment.thread_report())
        except Exception as exc:  # report, keep serving
            conn.send(RuntimeError(f"{engine} worker: {type(exc).__name__}: {exc}"))
    conn.close()


@contextlib.contextmanager
def _numpy_first(on: bool):
    """Spawn a child that imports numpy before minivgg, as most scripts do: without minivgg's thread
    defaults in its environment (the parent's ``import minivgg`` set them) and with the flag that
    ``bench/__init__`` reads."""
    if not on:
        yield
        return
    import minivgg

    saved = dict(os.environ)
    for k in minivgg.THREAD_DEFAULTS:
        if k not in USER_ENV:
            os.environ.pop(k, None)
    os.environ["MINIVGG_BENCH_NUMPY_FIRST"] = "1"
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


class Worker:
    """One engine's objective at one size (``size=None``: no objective, per-op timings only), in a
    spawned process; ``call(cmd)`` runs a command there."""

    def __init__(self, engine: str, size, args, weights: str = "random"):
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=_serve,
            args=(child, engine, size, weights, args.images, args.noise, args.seed, args.threads),
            daemon=True,
        )
        with _numpy_first(engine.endswith(":numpy-first")):
            self.proc.start()
        child.close()
        self.engine = engine
        self._expect("ready")

    def _expect(self, what):
        try:
            got = self.conn.recv()
        except EOFError:
            raise RuntimeError(
                f"the {self.engine} worker died (exit status {self.proc.exitcode})"
            ) from None
        if isinstance(got, Exception):
            raise got
        if what is not None and got != what:
            raise RuntimeError(f"the {self.engine} worker answered {got!r}, expected {what!r}")
        return got

    def call(self, cmd: str):
        self.conn.send(cmd)
        return self._expect(None)

    def close(self):
        try:
            self.conn.send("stop")
        except (BrokenPipeError, OSError):
            pass
        self.proc.join(30)
        if self.proc.is_alive():
            self.proc.kill()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
