"""Jobs as tasks on Dask distributed: a ``LocalCluster`` sized to this machine (``local_size``) or an
existing scheduler (``session``), results handed back as they finish (``run_all``), Ctrl-C cancelling
what is left.

The only module that imports dask, lazily inside functions: ``import minivgg`` never loads it, and
without the ``dask`` extra the commands that need it get one UserError sentence (``require``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import logging
import os
import re
import signal
import threading
from typing import TYPE_CHECKING

from ..errors import UserError

if TYPE_CHECKING:
    from distributed import Client, LocalCluster

# The thread pools of one worker's engine: OpenBLAS/MKL GEMMs and Numba's (OpenMP) transforms.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
CONNECT_TIMEOUT_S = 10
_INSTALL = "pip install 'minivgg[dask]'"


def require():
    """The ``distributed`` module, or a UserError saying how to install it."""
    try:
        import distributed
    except ImportError:
        raise UserError(
            f"sweep and batch run their jobs on Dask distributed, which is not installed here; "
            f"{_INSTALL}"
        ) from None
    return distributed


def cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def local_size(
    n_jobs: int,
    workers: int | None = None,
    n_cores: int | None = None,
    job_bytes: int | None = None,
    free_bytes: int | None = None,
) -> tuple:
    """``(workers, threads per worker)`` of the default LocalCluster: one job at a time per worker
    process, as many workers as cores, jobs and memory allow (``workers × job_bytes ≤ 0.9 free_bytes``),
    the cores split evenly so that ``workers × threads ≤ cores``; ``workers`` given: that many (at most
    ``n_jobs``), threads = cores // workers, at least 1."""
    n_cores = max(1, n_cores or cores())
    if workers is None:
        by_memory = (
            n_cores
            if not (job_bytes and free_bytes)
            else max(1, int(0.9 * free_bytes) // job_bytes)
        )
        workers = min(n_cores, by_memory)
    workers = max(1, min(workers, n_jobs))
    return workers, max(1, n_cores // workers)


@dataclasses.dataclass
class Session:
    """A connected client: ``cluster`` is the LocalCluster started here (None for ``--scheduler``)."""

    client: Client
    cluster: LocalCluster | None
    address: str
    workers: int
    threads: (
        int | None
    )  # BLAS/Numba threads per worker of a local cluster; None: the remote one's own
    dashboard: str | None = None

    def describe(self) -> str:
        """One phrase: where the jobs ran."""
        if self.cluster is None:
            return f"the Dask cluster at {self.address} ({self.workers} workers)"
        assert self.threads is not None  # a local cluster sets it
        return (
            f"a local Dask cluster of {self.workers} worker process{'es' if self.workers > 1 else ''}, "
            f"{self.threads} thread{'s' if self.threads > 1 else ''} each"
        )


@contextlib.contextmanager
def _quiet_logs(level=logging.ERROR):
    """Dask logs to stderr; keep it to errors for the session (the commands report jobs themselves)."""
    logger = logging.getLogger("distributed")
    old = logger.level
    logger.setLevel(level)
    try:
        yield logger
    finally:
        logger.setLevel(old)


@contextlib.contextmanager
def _spawn_environment(threads: int):
    """Worker processes spawned in this block get ``threads`` BLAS/Numba threads and ignore SIGINT.

    The nanny reads ``distributed.nanny.pre-spawn-environ`` (where the process environment wins)
    and sets it before spawning, so both are set here and restored after. An ignored SIGINT stays
    ignored across exec, so a Ctrl-C reaches only this process, which cancels the tasks itself.
    """
    import dask

    env = {var: str(threads) for var in THREAD_VARS}
    saved = dict(os.environ)  # the nanny also sets the pre-spawn variables here, in this process
    main = threading.current_thread() is threading.main_thread()
    old_int = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    os.environ.update(env)
    try:
        with dask.config.set(
            {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in env.items()}
        ):
            yield env
    finally:
        for var in set(os.environ) - set(saved):
            del os.environ[var]
        os.environ.update({k: v for k, v in saved.items() if os.environ.get(k) != v})
        if main:
            signal.signal(signal.SIGINT, old_int)


def _warmup_plugin(setup):
    """A WorkerPlugin calling ``setup()`` once in every worker process as it starts (or joins)."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class Warmup(WorkerPlugin):
        def __init__(self, fn):
            self.fn = fn

        def setup(self, worker):
            self.fn()

    return Warmup(setup)


def _dashboard(client, local: bool) -> str | None:
    """The scheduler's dashboard link; a local one only when bokeh (which draws it) is installed."""
    if local and importlib.util.find_spec("bokeh") is None:
        return None
    try:
        return (
            client.dashboard_link
            if "dashboard" in client.scheduler_info().get("services", {})
            else None
        )
    except Exception:
        return None


def check_address(scheduler: str | None) -> None:
    """UserError unless ``scheduler`` (when given) looks like a scheduler address, ``PROTOCOL://HOST[:PORT]``."""
    if scheduler is not None and not re.fullmatch(
        r"[a-z][a-z0-9+.-]*://[^\s/:]+(:\d+)?/?", scheduler
    ):
        raise UserError(
            f"--scheduler must be an address such as tcp://HOST:8786, got {scheduler!r}"
        )


def _connect(distributed, scheduler: str):
    """A client of the scheduler at ``scheduler``; UserError (one sentence) when it cannot be reached."""
    check_address(scheduler)
    try:
        return distributed.Client(scheduler, timeout=CONNECT_TIMEOUT_S)
    except (OSError, ValueError, TypeError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise UserError(
            f"cannot reach the Dask scheduler at {scheduler} ({reason[:200]})"
        ) from None


@contextlib.contextmanager
def session(
    scheduler: str | None = None,
    workers: int | None = None,
    n_jobs: int = 1,
    setup=None,
    job_bytes: int | None = None,
    free_bytes: int | None = None,
):
    """Yield a ``Session``: a client of ``scheduler``, or of a LocalCluster on 127.0.0.1 sized by
    ``local_size`` (processes, one task thread each); ``setup()`` runs once in every worker process
    (a WorkerPlugin: load the weights). Client and cluster are closed on the way out."""
    distributed = require()
    with _quiet_logs() as logger:
        cluster = None
        if scheduler:
            if workers is not None:
                raise UserError(
                    "--workers sizes the local cluster; a --scheduler cluster has its own workers"
                )
            client = _connect(distributed, scheduler)
            try:
                client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
            except Exception:
                client.close()
                raise UserError(
                    f"the Dask scheduler at {scheduler} has no workers "
                    f"(none joined within {CONNECT_TIMEOUT_S} s)"
                ) from None
            n_workers, threads = len(client.scheduler_info().get("workers", {})), None
        else:
            n_workers, threads = local_size(
                n_jobs, workers, job_bytes=job_bytes, free_bytes=free_bytes
            )
            with _spawn_environment(threads):
                cluster = distributed.LocalCluster(
                    n_workers=n_workers,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address="127.0.0.1:0",  # a free port: two sweeps at once do not collide
                    silence_logs=logging.CRITICAL,
                )  # e.g. heartbeats failing while the cluster closes
            client = distributed.Client(cluster)
        try:
            if setup is not None:
                try:
                    client.register_plugin(_warmup_plugin(setup), name="minivgg-warmup")
                except Exception as exc:
                    raise UserError(
                        f"the Dask workers at {client.scheduler.address} cannot run minivgg's setup "
                        f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); is minivgg "
                        f"installed there?"
                    ) from None
            yield Session(
                client,
                cluster,
                client.scheduler.address,
                n_workers,
                threads,
                _dashboard(client, cluster is not None),
            )
        finally:
            logger.setLevel(
                logging.CRITICAL
            )  # closing while tasks run makes Dask log what it cancels
            with contextlib.suppress(Exception):
                client.close()
            if cluster is not None:
                with contextlib.suppress(Exception):
                    cluster.close()


def run_all(sess: Session, fn, items, keys, on_done) -> None:
    """Run ``fn(item)`` for every item as a task; ``on_done(index, result, error)`` as each finishes
    (``error``: the exception when the task itself failed, e.g. its worker died). On Ctrl-C the
    tasks not finished are cancelled and KeyboardInterrupt propagates."""
    distributed = require()
    futures = [sess.client.submit(fn, item, key=key, pure=False) for item, key in zip(items, keys)]
    index = {f.key: k for k, f in enumerate(futures)}
    pending = set(index)
    try:
        for future in distributed.as_completed(futures):
            try:
                result, error = future.result(), None
            except Exception as exc:
                result, error = None, exc
            pending.discard(future.key)
            on_done(index[future.key], result, error)
    except BaseException:
        with contextlib.suppress(Exception):
            sess.client.cancel([f for f in futures if f.key in pending], force=True)
        raise
