"""The studio's worker process: runs one job at a time through ``minivgg.run.transfer.execute`` (the
code path of ``minivgg transfer``) and reports on a queue of plain records, as crowsonkb's
``web_interface.py`` does: ``status``, one ``iter`` per iteration (the losses), a ``frame`` (the
current image as JPEG) at most ``FRAMES_PER_SECOND`` times a second, and ``end``.

A stop (the page's Stop, or the server's Ctrl-C) raises KeyboardInterrupt at the next iteration,
where ``transfer`` writes the best image so far and its checkpoint, exactly as Ctrl-C does on the CLI.
"""

from __future__ import annotations

import base64
import contextlib
import io
import math
import os
import threading
import time
import traceback
from pathlib import Path

from PIL import Image

from ..errors import UserError
from ..run.image import to_uint8
from ..run.transfer import execute
from . import jobs, runs

FRAMES_PER_SECOND = 4.0
THUMB_SIDE = 160


def _jpeg(picture, quality: int = 85, side: int | None = None) -> bytes:
    img = Image.fromarray(to_uint8(picture))
    if side:
        img.thumbnail((side, side))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


class _Reporter:
    """The progress callback of one job: an ``iter`` record each iteration, a throttled ``frame``, and
    the stop request checked between iterations."""

    def __init__(self, run_id: str, events, stop, rows: list):
        self.run_id, self.events, self.stop, self.rows = run_id, events, stop, rows
        self.t0, self.last_frame = time.monotonic(), -math.inf

    def __call__(self, run, row, x) -> None:
        now = time.monotonic()
        elapsed = now - self.t0
        done = (run.scale + min(row["iteration"], run.iters) / max(run.iters, 1)) / run.scales
        record = {
            "type": "iter",
            "run": self.run_id,
            **{k: row.get(k) for k in ("iteration", "loss", "content", "style", "tv")},
            "scale": run.scale + 1,
            "scales": run.scales,
            "iters": run.iters,
            "elapsed": round(elapsed, 3),
            "left": round(elapsed * (1 - done) / done, 1) if done > 0 else None,
        }
        self.rows.append(record)
        self.events.put(record)
        if now - self.last_frame >= 1.0 / FRAMES_PER_SECOND:
            self.last_frame = now
            jpeg = base64.b64encode(_jpeg(run.picture(x))).decode("ascii")
            self.events.put(
                {"type": "frame", "run": self.run_id, "iteration": row["iteration"], "jpeg": jpeg}
            )
        if self.stop.is_set():
            raise KeyboardInterrupt


def run_job(job: dict, events, stop) -> str:
    """Run one job (``{"id", "folder", "resume"}``) to its end; returns the final status."""
    run_id, folder = job["id"], Path(job["folder"])
    settings = runs.read_json(folder / runs.SETTINGS) or {}
    previous = (
        (runs.read_json(folder / runs.LOG) or {}).get("iterations", []) if job["resume"] else []
    )
    rows: list = []
    reporter = _Reporter(run_id, events, stop, rows)
    runs.set_status(folder, "running", error=None, field=None)
    events.put({"type": "status", "run": run_id, "status": "running"})
    end: dict = {"type": "end", "run": run_id}
    try:
        content, styles, opts, overrides = jobs.options(settings, folder, resume=job["resume"])
        opts.on_iteration = reporter
        log_file = folder / "stderr.txt"
        with open(log_file, "a", encoding="utf-8") as err, contextlib.redirect_stderr(err):
            picture, log = execute(content, styles, opts, overrides, argv=[])
        log["iterations"] = previous + log["iterations"]
        runs.write_json(folder / runs.LOG, log)
        (folder / runs.THUMB).write_bytes(_jpeg(picture, 80, THUMB_SIDE))
        end.update(status="done", final_loss=log["final_loss"], seconds=log["seconds"])
    except KeyboardInterrupt:
        stopped = (folder / runs.checkpoint_file()).is_file()
        if stopped:  # the log of what ran so far, for the curves and the resume
            partial = {"settings": settings, "iterations": previous + _log_rows(rows)}
            runs.write_json(folder / runs.LOG, partial)
            with contextlib.suppress(Exception):
                (folder / runs.THUMB).write_bytes(
                    _jpeg(Image.open(folder / runs.RESULT).convert("RGB"), 80, THUMB_SIDE)
                )
        end.update(
            status="stopped" if stopped else "failed",
            error=None if stopped else "stopped before the first iteration",
        )
    except UserError as exc:
        end.update(status="failed", error=str(exc), field=jobs.field_of(str(exc)))
    except Exception as exc:  # an internal error must not kill the worker: it is the run's error
        with open(folder / "stderr.txt", "a", encoding="utf-8") as err:
            traceback.print_exc(file=err)
        end.update(status="failed", error=f"internal error: {type(exc).__name__}: {exc}")
    last = rows[-1] if rows else {}
    if end["status"] == "stopped":
        end.update(final_loss=last.get("loss"), seconds=last.get("elapsed"))
    fields = {k: end.get(k) for k in ("final_loss", "seconds", "error", "field")}
    runs.set_status(folder, end["status"], iteration=last.get("iteration"), **fields)
    events.put(end)
    return end["status"]


def _log_rows(rows: list) -> list:
    keys = ("iteration", "loss", "content", "style", "tv")
    return [{**{k: r.get(k) for k in keys}, "seconds": r["elapsed"]} for r in rows]


def _exit_with_parent(parent: int, every: float = 0.5) -> None:
    """Watch the server: a worker whose server has gone (killed, crashed) exits instead of running on
    as an orphan that holds the server's terminal and pipes."""
    while True:
        time.sleep(every)
        if os.getppid() != parent:
            os._exit(1)


def worker_main(job_queue, events, stop) -> None:
    """The worker process: take jobs until ``None`` (or Ctrl-C while idle) and run each."""
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    events.put({"type": "worker", "status": "ready"})
    while True:
        try:
            job = job_queue.get()
        except KeyboardInterrupt:
            return
        if job is None:
            return
        stop.clear()
        try:
            run_job(job, events, stop)
        except KeyboardInterrupt:  # a second Ctrl-C while the checkpoint was written
            return
