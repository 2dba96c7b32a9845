"""The studio's run queue and event hub: one worker process, one run at a time, a queue of the
runs waiting, and every event of the worker fanned out to the pages' server-sent-event streams.

Each event is encoded once and shared by every stream; a stream whose page falls more than
``BACKLOG`` events behind is closed (the page reconnects and gets a fresh snapshot), so the server's
memory does not grow with slow or vanished pages.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import multiprocessing
import queue as queue_module
import threading
import time
from pathlib import Path
from typing import Any

from . import runs
from .worker import worker_main

BACKLOG = 2000  # events a stream may lag behind before it is closed
MAX_ROWS = 100_000  # iteration records kept for the snapshot of the current run
SHUTDOWN_SECONDS = 10.0  # how long a stopping run may take to write its checkpoint


def encode(event: dict) -> str:
    """One server-sent event: ``event: TYPE`` and the record as JSON.

    Examples
    --------
    >>> encode({"type": "queue", "queue": []})
    'event: queue\\ndata: {"type": "queue", "queue": []}\\n\\n'
    """
    return f"event: {event['type']}\ndata: {json.dumps(event, default=float)}\n\n"


class Hub:
    """The queue of runs, the worker process that runs them and the pages' event streams.

    The worker starts with the first run (spawned: a fresh interpreter) and is restarted if it
    dies; ``close`` stops it, the running run with its checkpoint.

    Examples
    --------
    >>> import tempfile
    >>> hub = Hub(Path(tempfile.mkdtemp()))
    >>> hub.queue_event(), hub.worker_pid()
    ({'type': 'queue', 'current': None, 'waiting': []}, None)
    """

    def __init__(self, runs_folder: Path):
        self.runs = runs_folder
        self.waiting: collections.deque = collections.deque()  # (run id, resume)
        self.current: str | None = None
        self.rows: list = []
        self.frame: dict | None = None
        self.streams: set[asyncio.Queue] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ctx = multiprocessing.get_context("spawn")
        self._process: Any = None  # the worker, and its queues and stop flag (multiprocessing)
        self._jobs: Any = None
        self._events: Any = None
        self._stop: Any = None
        self._reader: threading.Thread | None = None
        self._closing = threading.Event()

    # ------------------------------------------------------------------ the queue
    def submit(self, run_id: str, resume: bool = False) -> str:
        """Queue a run (its folder is ready); returns ``running`` or ``queued``."""
        runs.set_status(runs.run_dir(self.runs, run_id), "queued", error=None, field=None)
        self.waiting.append((run_id, resume))
        self._dispatch()
        self.publish(self.queue_event())
        return "running" if self.current == run_id else "queued"

    def stop(self, run_id: str) -> str | None:
        """Stop the running run (best image and checkpoint kept) or cancel a queued one."""
        if run_id == self.current and self._stop is not None:
            self._stop.set()
            return "stopping"
        for item in list(self.waiting):
            if item[0] == run_id:
                self.waiting.remove(item)
                folder = runs.run_dir(self.runs, run_id)
                resumable = (folder / runs.checkpoint_file()).is_file()
                runs.set_status(folder, "stopped" if resumable else "cancelled")
                self.publish({"type": "end", "run": run_id, "status": "cancelled"})
                self.publish(self.queue_event())
                return "cancelled"
        return None

    def queue_event(self) -> dict:
        """The ``queue`` event: the running run and the waiting ones, in order."""
        return {"type": "queue", "current": self.current, "waiting": [i for i, _ in self.waiting]}

    def snapshot(self) -> dict:
        """What a page that connects now needs: the queue, the current run's rows and last frame."""
        return {**self.queue_event(), "type": "hello", "rows": self.rows, "frame": self.frame}

    def _dispatch(self) -> None:
        if self.current is not None or not self.waiting or self._closing.is_set():
            return
        run_id, resume = self.waiting.popleft()
        self.current, self.rows, self.frame = run_id, [], None
        self._ensure_worker()
        assert self._jobs is not None
        folder = str(runs.run_dir(self.runs, run_id))
        self._jobs.put({"id": run_id, "folder": folder, "resume": resume})

    # ------------------------------------------------------------------ events
    def handle(self, event: dict) -> None:
        """An event of the worker (on the server's event loop): state updated, then published."""
        kind = event.get("type")
        if kind == "worker":
            return
        if kind == "iter" and event.get("run") == self.current and len(self.rows) < MAX_ROWS:
            self.rows.append(event)
        elif kind == "frame" and event.get("run") == self.current:
            self.frame = event
        self.publish(event)
        if kind == "end" and event.get("run") == self.current:
            self.current = None
            self._dispatch()
            self.publish(self.queue_event())

    def publish(self, event: dict) -> None:
        """Send an event to every open stream; a stream too far behind is closed."""
        message = encode(event)
        for stream in list(self.streams):
            if stream.qsize() >= BACKLOG:
                self.streams.discard(stream)
                with contextlib.suppress(asyncio.QueueFull):
                    stream.put_nowait(None)
            else:
                stream.put_nowait(message)

    def end_streams(self) -> None:
        """Close every event stream now (the server is shutting down); safe from a signal handler."""
        self._closing.set()

        def end_all():
            for stream in list(self.streams):
                with contextlib.suppress(asyncio.QueueFull):
                    stream.put_nowait(None)

        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(end_all)

    def subscribe(self) -> asyncio.Queue:
        """A new stream: its queue of encoded events (``None`` ends it)."""
        stream: asyncio.Queue = asyncio.Queue(maxsize=BACKLOG + 1)
        if self._closing.is_set():
            stream.put_nowait(None)
        else:
            self.streams.add(stream)
        return stream

    # ------------------------------------------------------------------ the worker
    def _ensure_worker(self) -> None:
        if self._process is not None and self._process.is_alive():
            return
        self._jobs, self._events, self._stop = (
            self._ctx.Queue(),
            self._ctx.Queue(),
            self._ctx.Event(),
        )
        self._process = self._ctx.Process(
            target=worker_main,
            args=(self._jobs, self._events, self._stop),
            name="minivgg-studio-worker",
            daemon=True,
        )
        self._process.start()
        self._reader = threading.Thread(
            target=self._read, args=(self._events, self._process), daemon=True
        )
        self._reader.start()

    def _read(self, events, process) -> None:
        """The reader thread: worker records onto the event loop; a dead worker fails its run."""
        while True:  # until the worker has exited: an unread queue would block its exit
            try:
                event = events.get(timeout=0.25)
            except queue_module.Empty:
                if not process.is_alive():
                    if self.current is not None and not self._closing.is_set():
                        self._call(
                            {
                                "type": "end",
                                "run": self.current,
                                "status": "failed",
                                "error": "the worker process ended unexpectedly",
                            }
                        )
                    return
                continue
            except (EOFError, OSError):
                return
            self._call(event)

    def _call(self, event: dict) -> None:
        if (
            event.get("type") == "end"
            and event.get("error") == "the worker process ended unexpectedly"
        ):
            with contextlib.suppress(OSError, ValueError):
                runs.set_status(
                    runs.run_dir(self.runs, event["run"]), "failed", error=event["error"]
                )
        if self.loop is not None and not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.handle, event)

    def close(self, timeout: float = SHUTDOWN_SECONDS) -> None:
        """End the worker: the running run stops with its checkpoint, queued runs are cancelled."""
        self._closing.set()
        for run_id, _ in self.waiting:
            runs.set_status(runs.run_dir(self.runs, run_id), "cancelled")
        self.waiting.clear()
        process = self._process
        if process is None:
            return
        with contextlib.suppress(Exception):
            self._jobs.put(None)
        deadline = time.monotonic() + timeout
        while process.is_alive() and time.monotonic() < deadline:
            if self.current is not None:
                self._stop.set()
            process.join(0.1)
        if process.is_alive():
            process.terminate()
            process.join(2)
        if process.is_alive():  # still writing after SIGTERM: it must not outlive the server
            process.kill()
            process.join(2)
        for stream in list(self.streams):
            with contextlib.suppress(asyncio.QueueFull):
                stream.put_nowait(None)

    def worker_pid(self) -> int | None:
        """The worker process's id (None before the first run)."""
        return None if self._process is None else self._process.pid
