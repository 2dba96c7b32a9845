"""Sweeps and batches: many style transfers as jobs on Dask (``cluster.py``), each writing its image
and a JSON log into one folder, then a summary (``sweep.json`` or ``batch.json``) and contact sheets
(``sheet.py``).

A ``Job`` is one ``transfer.execute`` run (the same validation and errors as ``minivgg transfer``).
``run_job`` runs in a worker process: it loads the network once per process (``network``, warmed up
by a worker plugin as the worker starts), never raises for a bad job (its UserError becomes the
job's ``failed`` record) and writes the log after the image, so a log saying ``ok`` means the image
is complete. ``run_jobs`` skips the jobs a previous run finished, runs the others, and keeps the
summary current after every finished job, Ctrl-C included. The command line is ``cli/sweep.py``.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import os
import re
import socket
import sys
import threading
import time
import warnings
from pathlib import Path

from ..errors import UserError
from ..run.fsutil import atomic_write
from ..run.transfer import RunOptions, execute
from . import cluster, sheet

SUMMARY_NAMES = {"sweep": "sweep.json", "batch": "batch.json"}
_RESERVED = re.compile(r"^(sheet(_\d+)?|sweep|batch)$", re.I)  # the command's own files in OUTDIR


# --------------------------------------------------------------------------------- the jobs


@dataclasses.dataclass
class Job:
    """One transfer: ``name`` (the file stem in OUTDIR), absolute input paths, the run's options
    (``opts.output`` the image) and overrides, and ``values``: the settings that set it apart, as given
    (the grid point, or the CSV row's cells), which label it in the summary and the sheet."""

    name: str
    content: str
    styles: list
    opts: RunOptions
    overrides: dict
    values: dict
    row: int | None = None  # batch: the CSV line

    @property
    def log(self) -> str:
        assert self.opts.output is not None  # a job always names its image
        return str(Path(self.opts.output).with_suffix(".json"))

    def spec(self) -> dict:
        """What the job computes, JSON-normalised: a re-run skips a finished job only when this is unchanged."""
        opts = {
            k: v
            for k, v in dataclasses.asdict(self.opts).items()
            if k not in ("quiet", "load_network")
        }
        return json.loads(
            json.dumps(
                {
                    "content": self.content,
                    "styles": self.styles,
                    "opts": opts,
                    "overrides": self.overrides,
                },
                default=str,
            )
        )


def parse_grid(texts) -> list:
    """``["style_weight=1e2,1e3", "tv_weight=0,1e-3"]`` → ``[("style_weight", ["1e2", "1e3"]), …]``
    (``-`` and ``_`` alike in names). UserError for bad syntax, an empty value, a setting given twice
    or a value repeated."""
    axes: list[tuple[str, list[str]]] = []
    for text in texts:
        key, sep, rest = text.partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        if not sep or not key or not re.fullmatch(r"\w+", key):
            raise UserError(
                f"--grid {text!r} is not SETTING=VALUE,VALUE,… (e.g. style_weight=1e2,1e3)"
            )
        values = [v.strip() for v in rest.split(",")]
        if not any(values) or "" in values:
            raise UserError(
                f"--grid {text!r} has an empty value; separate the values with single commas"
            )
        if len(set(values)) < len(values):
            raise UserError(f"--grid {text!r} repeats a value")
        if key in (k for k, _ in axes):
            raise UserError(f"--grid gives {key} twice; list all its values in one --grid")
        axes.append((key, values))
    return axes


def grid_points(axes) -> list:
    """Every point of the Cartesian product, the last axis varying fastest: ``[{setting: value}, …]``."""
    keys = [k for k, _ in axes]
    return [dict(zip(keys, combo)) for combo in itertools.product(*(v for _, v in axes))]


def slug(text: str) -> str:
    """A value as a file-name part: a path by its stem, other characters than ``[\\w.+-]`` as ``-``."""
    if os.sep in text or "/" in text:
        text = Path(text).stem
    return re.sub(r"[^\w.+-]+", "-", text) or "x"


def grid_name(k: int, n: int, point: dict) -> str:
    """The file stem of grid point ``k`` of ``n``: ``01_style_weight=1e2_tv_weight=0``."""
    return f"{k + 1:0{max(2, len(str(n)))}d}_" + "_".join(
        f"{key}={slug(v)}" for key, v in point.items()
    )


def check_name(name: str, where: str) -> str:
    """A batch output name: a plain file name, not one of the command's own files."""
    stem = Path(name).stem
    if not name or name != Path(name).name or name in (".", "..") or not stem:
        raise UserError(f"{where}: output {name!r} must be a plain file name such as 'result.png'")
    if _RESERVED.match(stem):
        raise UserError(
            f"{where}: output {name!r} is taken by the summary or the sheets; choose another name"
        )
    return name


def read_batch(path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """A batch CSV as ``(columns, [(line, {column: cell})])``: columns lower-cased with ``-`` as ``_``,
    cells stripped, blank rows skipped. UserError when it cannot be read or parsed."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            rows = [(reader.line_num, row) for row in reader]
    except FileNotFoundError:
        raise UserError(f"batch file '{path}' does not exist") from None
    except IsADirectoryError:
        raise UserError(f"batch file '{path}' is a folder, not a CSV file") from None
    except UnicodeDecodeError:
        raise UserError(f"batch file '{path}' is not a UTF-8 text (CSV) file") from None
    except (OSError, csv.Error) as exc:
        raise UserError(
            f"cannot read batch file '{path}' ({getattr(exc, 'strerror', None) or exc})"
        ) from None
    rows = [(line, row) for line, row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise UserError(
            f"batch file '{path}' is empty; its first line names the columns (content,style,…)"
        )
    header = [h.strip().lstrip("-").lower().replace("-", "_") for h in rows[0][1]]
    if "" in header or len(set(header)) < len(header):
        raise UserError(
            f"batch file '{path}': the header {','.join(rows[0][1])!r} has an empty or repeated column"
        )
    out = []
    for line, row in rows[1:]:
        if len(row) > len(header):
            raise UserError(
                f"batch file '{path}' line {line} has {len(row)} cells for {len(header)} columns"
            )
        out.append(
            (
                line,
                {h: cell.strip() for h, cell in itertools.zip_longest(header, row, fillvalue="")},
            )
        )
    if not out:
        raise UserError(f"batch file '{path}' has a header but no jobs")
    return header, out


# ------------------------------------------------------------------------- in the worker

_NETWORKS: dict = {}
_NETWORK_LOCK = threading.Lock()
_LOADS = [
    0
]  # networks this process loaded (each job's record says, so tests can tell once from per task)


def _file_key(path) -> tuple:
    """A weights file as a cache key: its path, size and modification time (a changed file is reloaded)."""
    try:
        st = os.stat(path)
        return (os.path.realpath(path), st.st_size, st.st_mtime_ns)
    except OSError:
        return (str(path), None, None)


def network(
    arch: str = "vgg16", weights=None, device: str = "cpu", flip_kernels=None, conv: str = "auto"
):
    """``vgg.load_vgg`` once per process and weights file: the verified cache (fetched first when it
    is missing) or ``weights``; ``conv`` switches the algorithm of the loaded network."""
    from ..network.vgg import load_vgg
    from ..network.weights import cached_path, fetch

    with _NETWORK_LOCK:
        source = cached_path(arch) if weights is None else weights
        key = (arch, device, flip_kernels, _file_key(source))
        if key not in _NETWORKS:
            if weights is None and not Path(source).exists():
                fetch(arch, progress=False)
                key = (arch, device, flip_kernels, _file_key(source))
            _NETWORKS[key] = load_vgg(
                arch, weights=weights, device=device, flip_kernels=flip_kernels
            )
            _LOADS[0] += 1
        net = _NETWORKS[key]
    return net if net.conv == conv else dataclasses.replace(net, conv=conv)


def _thread_lock_for_tqdm() -> None:
    """tqdm's default lock is a multiprocessing RLock, a named semaphore that a worker stopped by Ctrl-C
    would leak (the resource tracker then warns); one job at a time per thread needs only a thread lock."""
    from tqdm import tqdm

    if not hasattr(tqdm, "_lock"):
        tqdm.set_lock(threading.RLock())


def warm(networks) -> None:
    """Load each ``(arch, weights, device, flip_kernels)`` into this process's cache (the worker plugin's
    setup); a failure is left for the jobs to report."""
    _thread_lock_for_tqdm()
    for arch, weights, device, flip in networks:
        try:
            network(arch, weights, device, flip)
        except Exception:
            pass


def _terms(log) -> dict | None:
    """The final weighted loss terms: the last iteration's content/style/tv, and the final total."""
    if not log:
        return None
    last = log["iterations"][-1] if log["iterations"] else {}
    return {
        "content": last.get("content"),
        "style": last.get("style"),
        "tv": last.get("tv"),
        "total": log.get("final_loss"),
    }


def run_job(job: Job) -> dict:
    """Run ``job`` here (a worker): the image, then its JSON log (``status`` ok/failed/error, the job
    record, the spec, and the transfer's log); returns the job record. Never raises for a bad job."""
    t0 = time.perf_counter()
    _thread_lock_for_tqdm()
    opts = dataclasses.replace(job.opts, load_network=network, quiet=True)
    log, status, message = None, "ok", None
    with warnings.catch_warnings(record=True) as notes:
        warnings.simplefilter("default")
        try:
            log = execute(job.content, job.styles, opts, job.overrides)[1]
        except UserError as exc:  # bad input or a non-finite loss: this job only
            status, message = "failed", str(exc)
        except Exception as exc:
            status, message = "error", f"{type(exc).__name__}: {exc}"
    record = job_record(job, status, message, seconds=time.perf_counter() - t0, log=log)
    record["notes"] = list(dict.fromkeys(str(w.message) for w in notes))
    record["worker"] = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "threads": {v: os.environ.get(v) for v in cluster.THREAD_VARS},
        "network_loads": _LOADS[0],
    }
    with atomic_write(job.log, "w") as fh:
        json.dump(
            {
                "status": status,
                "message": message,
                "job": record,
                "spec": job.spec(),
                **(log or {}),
            },
            fh,
            indent=1,
            default=float,
        )
    return record


def job_record(job: Job, status: str, message=None, seconds=None, log=None, **extra) -> dict:
    """The summary's entry of a job."""
    return {
        "name": job.name,
        "status": status,
        "message": message,
        "values": job.values,
        "content": job.content,
        "styles": job.styles,
        "image": job.opts.output,
        "log": job.log,
        "row": job.row,
        "terms": _terms(log),
        "iterations": len(log["iterations"]) if log else None,
        "seconds": None if seconds is None else round(seconds, 3),
        **extra,
    }


def finished_record(job: Job) -> dict | None:
    """The record of a previous run of ``job`` when its image exists and its log says ok for the same spec."""
    try:
        with open(job.log, encoding="utf-8") as fh:
            log = json.load(fh)
        assert job.opts.output is not None  # job.log has checked it
        done = (
            log.get("status") == "ok"
            and log.get("spec") == job.spec()
            and Path(job.opts.output).is_file()
        )
    except (OSError, ValueError, AttributeError):
        return None
    return {**log["job"], "skipped": True} if done and isinstance(log.get("job"), dict) else None


# --------------------------------------------------------------------------- the driver


def _networks(jobs) -> list:
    """The distinct networks the jobs load (for the worker warm-up)."""
    from ..style.presets import PRESETS

    nets = {
        (
            PRESETS[j.opts.preset].arch if j.opts.preset in PRESETS else "vgg16",
            j.opts.weights,
            j.opts.device,
            j.opts.flip_kernels,
        )
        for j in jobs
    }
    return sorted(nets, key=str)


def _job_bytes(jobs) -> int | None:
    """The largest estimated peak memory of one job (square images at its --size), for sizing the cluster."""
    from ..style.memory import estimate_bytes
    from ..style.presets import PRESETS, resolve_settings

    peak = 0
    for job in jobs:
        try:
            s = resolve_settings(job.opts.preset, dict(job.overrides))
            side = int(
                max(job.opts.scales)
                if job.opts.scales
                else job.opts.size or PRESETS[job.opts.preset].size
            )
            peak = max(
                peak,
                estimate_bytes(
                    s["arch"],
                    side,
                    side,
                    list(s["content_layers"]) + list(s["style_layers"]),
                    job.opts.optimizer or s["optimizer"],
                ),
            )
        except Exception:
            continue
    return peak or None


def write_summary(path, summary: dict) -> None:
    with atomic_write(path, "w") as fh:
        json.dump(summary, fh, indent=1, default=float)


def run_jobs(
    kind: str, jobs, outdir, header: dict, axes=None, scheduler=None, workers=None, quiet=False
) -> dict:
    """Run every job not finished before, on ``scheduler`` or a local cluster, then write the summary
    and the sheets; returns the summary. On Ctrl-C the unfinished jobs are ``cancelled`` in a summary
    written before KeyboardInterrupt propagates."""
    outdir = Path(outdir)
    summary_path = outdir / SUMMARY_NAMES[kind]
    records = [finished_record(j) for j in jobs]
    todo = [k for k, r in enumerate(records) if r is None]
    summary = {"command": kind, "outdir": str(outdir), **header, "cluster": None, "jobs": records}
    t0 = time.perf_counter()

    def save(final=False):
        summary["seconds"] = round(time.perf_counter() - t0, 3)
        summary["counts"] = {
            s: sum(1 for r in records if r and r["status"] == s)
            for s in ("ok", "failed", "error", "cancelled")
        }
        summary["counts"]["skipped"] = sum(1 for r in records if r and r.get("skipped"))
        if final:
            summary["sheets"] = [str(p) for p in _sheets(kind, outdir, axes, records)]
        write_summary(summary_path, summary)

    def finished(i, record):
        records[todo[i]] = record
        save()

    try:
        if todo:
            _run_todo(kind, [jobs[k] for k in todo], scheduler, workers, quiet, summary, finished)
    except KeyboardInterrupt:
        for k in todo:
            if records[k] is None:
                records[k] = job_record(jobs[k], "cancelled", "interrupted before it finished")
        save(final=True)
        done = sum(1 for r in records if r and r["status"] != "cancelled")
        print(
            f"minivgg: cancelled {len(jobs) - done} unfinished of {len(jobs)} jobs; the finished ones stay in "
            f"{outdir} (see {summary_path.name}), and the same command runs only the rest",
            file=sys.stderr,
        )
        raise
    save(final=True)
    return summary


def _run_todo(kind, jobs, scheduler, workers, quiet, summary, record) -> None:
    """Run ``jobs`` in a cluster session with a progress bar of finished jobs; ``record(i, job record)``
    as each finishes. The cluster's description goes into ``summary``."""
    from tqdm import tqdm

    from ..style.memory import available_bytes

    with cluster.session(
        scheduler,
        workers,
        n_jobs=len(jobs),
        setup=_warm_call(_networks(jobs)),
        job_bytes=_job_bytes(jobs),
        free_bytes=available_bytes(),
    ) as sess:
        summary["cluster"] = {
            "address": sess.address,
            "local": sess.cluster is not None,
            "workers": sess.workers,
            "threads_per_worker": sess.threads,
            "dashboard": sess.dashboard,
            "description": sess.describe(),
        }
        with tqdm(
            total=len(jobs),
            unit="job",
            disable=quiet,
            dynamic_ncols=True,
            file=sys.stderr,
            desc=kind,
        ) as bar:
            if sess.dashboard and not quiet:
                bar.write(f"minivgg: Dask dashboard at {sess.dashboard}", file=sys.stderr)

            def on_done(i, result, error):
                if (
                    result is None
                ):  # the task itself failed: its worker died, or it could not be unpickled there
                    result = job_record(jobs[i], "error", f"{type(error).__name__}: {error}")
                if result["status"] != "ok" and not quiet:
                    bar.write(
                        f"minivgg: job {result['name']} {result['status']}: {result['message']}",
                        file=sys.stderr,
                    )
                record(i, result)
                bar.update(1)

            cluster.run_all(
                sess,
                run_job,
                jobs,
                [f"minivgg-{kind}-{j.name}-{os.urandom(4).hex()}" for j in jobs],
                on_done,
            )


def _warm_call(networks):
    """The worker plugin's setup: ``warm(networks)`` (a picklable partial)."""
    import functools

    return functools.partial(warm, networks)


def _sheets(kind, outdir, axes, records) -> list:
    """The contact sheets: the grid's layout for a sweep, one cell per job for a batch."""
    if kind == "sweep":
        return sheet.sweep_sheets(outdir, axes, records)
    return sheet.batch_sheets(outdir, records)
