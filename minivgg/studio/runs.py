"""The runs folder of the studio: one folder per run, named by the server, holding its inputs (as
decoded by the image loader), ``settings.json``, ``status.json``, the result, its checkpoint, the
JSON log and a thumbnail. The gallery is read back from these files, so it survives restarts.

Nothing is written outside the folder: every path comes from ``run_dir`` (a checked id) and a fixed
file name of this module.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import time
from pathlib import Path

from ..errors import UserError
from ..run.fsutil import atomic_write

SETTINGS, STATUS, RESULT, LOG, THUMB = (
    "settings.json",
    "status.json",
    "result.png",
    "log.json",
    "thumb.jpg",
)
CONTENT = "content.png"
_ID = re.compile(r"\A\d{8}-\d{6}-[0-9a-f]{6}\Z")
# Files a client may fetch from a run folder, by the name used in URLs.
SERVED = {
    "result.png": RESULT,
    "log.json": LOG,
    "thumb.jpg": THUMB,
    "content.png": CONTENT,
    **{f"style{k}.png": f"style{k}.png" for k in range(1, 5)},
    **{f"mask{k}.png": f"mask{k}.png" for k in range(1, 5)},
}


def style_file(k: int) -> str:
    """The file name of style ``k`` (1-based) in a run folder.

    Examples
    --------
    >>> style_file(2), mask_file(2), checkpoint_file()
    ('style2.png', 'mask2.png', 'result.png.ckpt.npz')
    """
    return f"style{k}.png"


def mask_file(k: int) -> str:
    """The file name of the painted region of style ``k`` (1-based)."""
    return f"mask{k}.png"


def checkpoint_file() -> str:
    """The checkpoint ``transfer`` writes beside the result on a stop."""
    return f"{RESULT}.ckpt.npz"


def open_runs_folder(path) -> Path:
    """Create (if missing) and check the runs folder; UserError (one sentence) when it cannot be used.

    Examples
    --------
    >>> import tempfile
    >>> open_runs_folder(tempfile.mkdtemp()).is_dir()
    True
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"runs folder '{folder}' is a file; give the name of a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"cannot create the runs folder '{folder}' ({exc.strerror or exc})"
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"cannot write into the runs folder '{folder}' (permission denied)")
    return folder.resolve()


def is_run_id(text) -> bool:
    """True for the ids ``new_run`` makes (``20260101-120000-a1b2c3``), the only ones accepted.

    Examples
    --------
    >>> is_run_id("20260101-120000-a1b2c3"), is_run_id("../etc")
    (True, False)
    """
    return isinstance(text, str) and bool(_ID.match(text))


def run_dir(runs: Path, run_id: str) -> Path:
    """The folder of run ``run_id``; ValueError for anything but a well-formed id."""
    if not is_run_id(run_id):
        raise ValueError(f"not a run id: {run_id!r}")
    return runs / run_id


def new_run(runs: Path) -> tuple[str, Path]:
    """A fresh run folder: ``(id, path)``; the id is the time and six random hex digits.

    Examples
    --------
    >>> import tempfile
    >>> runs = Path(tempfile.mkdtemp())
    >>> run_id, path = new_run(runs)
    >>> is_run_id(run_id), path == run_dir(runs, run_id), path.is_dir()
    (True, True, True)
    """
    while True:
        run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        path = runs / run_id
        with contextlib.suppress(FileExistsError):
            path.mkdir()
            return run_id, path


def remove_run(runs: Path, run_id: str) -> None:
    """Delete a run folder this server created (a refused submission leaves nothing behind)."""
    shutil.rmtree(run_dir(runs, run_id), ignore_errors=True)


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` as JSON atomically (a reader never sees half a file)."""
    with atomic_write(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, default=float)


def read_json(path: Path) -> dict | None:
    """The JSON object in ``path``, or None when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def set_status(folder: Path, status: str, **fields) -> dict:
    """Update ``status.json`` of a run folder: ``queued``, ``running``, ``stopped`` (a checkpoint to
    resume from), ``done``, ``failed`` or ``cancelled``, with any other fields given.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = set_status(folder, "done", final_loss=1.5)
    >>> read_json(folder / STATUS)["status"], read_json(folder / STATUS)["final_loss"]
    ('done', 1.5)
    """
    record = read_json(folder / STATUS) or {}
    record.update(fields, status=status, updated=time.time())
    write_json(folder / STATUS, record)
    return record


def summary(runs: Path, run_id: str) -> dict | None:
    """What the gallery shows of one run: id, status, settings, final loss, seconds, iterations, which
    files exist; None when the folder is not a run."""
    folder = run_dir(runs, run_id)
    settings, status = read_json(folder / SETTINGS), read_json(folder / STATUS)
    if settings is None or status is None:
        return None
    return {
        "id": run_id,
        "settings": settings,
        **{k: status.get(k) for k in ("status", "final_loss", "seconds", "iteration", "error")},
        "files": sorted(name for name, file in SERVED.items() if (folder / file).is_file()),
        "resumable": (folder / checkpoint_file()).is_file() and status.get("status") == "stopped",
    }


def gallery(runs: Path) -> list[dict]:
    """Every run of the folder, newest first (the gallery); folders that are not runs are skipped.

    Examples
    --------
    >>> import tempfile
    >>> gallery(Path(tempfile.mkdtemp()))
    []
    """
    ids = sorted((p.name for p in runs.iterdir() if is_run_id(p.name)), reverse=True)
    return [s for s in (summary(runs, i) for i in ids) if s is not None]


def interrupted_runs(runs: Path) -> list[str]:
    """Runs a previous server left ``queued`` or ``running`` (it was killed): marked so on start."""
    found = []
    for item in gallery(runs):
        if item["status"] in ("queued", "running"):
            folder = run_dir(runs, item["id"])
            stopped = (folder / checkpoint_file()).is_file()
            set_status(
                folder,
                "stopped" if stopped else "failed",
                error=None if stopped else "the server stopped before this run finished",
            )
            found.append(item["id"])
    return found
