"""Timing and memory primitives: interleaved A/B runs, peak RSS of one evaluation in this process."""

from __future__ import annotations

import gc
import resource
import time
from pathlib import Path


def interleaved(
    fns: dict, repeats: int, warmup: int = 1, cooldown: float = 0.0, self_timed: bool = False
) -> dict:
    """Seconds per call of each function in ``fns``, run in alternating order (A B, B A, …) so drift
    and a busy neighbour hit every side alike. ``warmup`` untimed rounds first; before each timed
    call, outside the timer, ``gc.collect()`` and a ``cooldown`` sleep (so the other library's
    spinning worker threads have gone idle). ``self_timed``: each call returns its own seconds (a
    worker process timing itself) and that is what is recorded. Returns ``{name: [seconds, …]}``."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times = {name: [] for name in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            gc.collect()
            if cooldown:
                time.sleep(cooldown)
            t0 = time.perf_counter()
            got = fns[name]()
            times[name].append(got if self_timed else time.perf_counter() - t0)
    return times


def proc_kib(path: str, field: str):
    """A ``Field:  N kB`` line of a /proc file (``/proc/self/status``, ``/proc/meminfo``) in KiB, or None."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _status_kib(field: str):
    """A ``VmXXX`` field of /proc/self/status in KiB, or None off Linux."""
    return proc_kib("/proc/self/status", field)


def rss_mib():
    """Current resident set size (MiB)."""
    kib = _status_kib("VmRSS")
    return None if kib is None else kib / 1024


def reset_peak_rss() -> bool:
    """Reset this process's peak-RSS mark (Linux ≥ 4.0: ``echo 5 > /proc/self/clear_refs``); False if unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mib():
    """Peak RSS (MiB) of this process's address space since start or the last ``reset_peak_rss``
    (VmHWM). ``ru_maxrss`` is the fallback off Linux only: after fork+exec it also counts the
    parent's peak, which would charge the benchmark driver's memory to the measured child."""
    hwm = _status_kib("VmHWM")
    if hwm is not None:
        return hwm / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
