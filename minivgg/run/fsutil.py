"""Safe file output: every file minivgg writes goes through ``atomic_write``, so an interrupted or
failing write leaves either the old file or the new one, never a half-written mix.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from ..errors import UserError

_umask_cache = None


def _umask() -> int:
    """The process umask, read once (Linux exposes it; elsewhere reading means briefly setting it)."""
    global _umask_cache
    if _umask_cache is None:
        try:
            with open("/proc/self/status") as f:
                _umask_cache = next(
                    int(line.split()[1], 8) for line in f if line.startswith("Umask:")
                )
        except (OSError, StopIteration, ValueError, IndexError):
            _umask_cache = os.umask(0o022)
            os.umask(_umask_cache)
    return _umask_cache


def _fsync_dir(directory: str) -> None:
    """Flush a directory entry (the rename) to disk; not possible on every platform."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb", encoding: str | None = None):
    """Open a temporary file beside ``path`` for writing; on success it replaces ``path``.

    The data is fsync'ed before ``os.replace``, so after a crash ``path`` holds the old or the new
    content in full. On any exception (Ctrl-C included) the temporary file is removed, ``path`` is
    untouched and the exception propagates. ``mode`` is ``'wb'`` or ``'w'`` (text, UTF-8 by default).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write mode must be 'wb' or 'w', got {mode!r}")
    # Write through a symlink to its target: replacing the link itself would silently unlink it.
    target = os.path.realpath(os.fspath(path))
    directory, name = os.path.split(target)
    if mode == "w" and encoding is None:
        encoding = "utf-8"
    # Same directory as the target: os.replace is only atomic within one filesystem.
    tmp = tempfile.NamedTemporaryFile(
        mode=mode, encoding=encoding, dir=directory, prefix=f".{name}.", suffix=".tmp", delete=False
    )
    try:
        with tmp:
            yield tmp
            tmp.flush()
            os.fsync(tmp.fileno())
        # NamedTemporaryFile creates 0600; give the result the mode a plain open() would have.
        try:
            perms = os.stat(target).st_mode & 0o7777
        except FileNotFoundError:
            perms = 0o666 & ~_umask()
        os.chmod(tmp.name, perms)
        os.replace(tmp.name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp.name)
        raise
    _fsync_dir(directory)


def atomic_save_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see ``atomic_write``)."""
    with atomic_write(path, "wb") as f:
        f.write(data)


def check_output_path(path, inputs=()) -> None:
    """Refuse an output path that cannot work before any long computation starts.

    Raises UserError (one sentence) when ``path`` is a directory, its folder is missing, not a
    folder or not writable, or it names the same file as one of ``inputs`` (paths; None skipped).
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(
            f"output path '{path}' is a directory; give a file name such as '{path / 'out.png'}'"
        )
    parent = path.absolute().parent
    if not parent.exists():
        raise UserError(f"cannot write '{path}': the folder '{parent}' does not exist")
    if not parent.is_dir():
        raise UserError(f"cannot write '{path}': '{parent}' is not a folder")
    # atomic_write creates a temporary file beside the output, so the folder itself must be writable.
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"cannot write '{path}': the folder '{parent}' is not writable")
    for inp in inputs:
        if inp is None:
            continue
        if same_file(path, Path(inp)):
            raise UserError(
                f"output path '{path}' is the same file as the input '{inp}'; "
                "choose another output name so the input is not overwritten"
            )


def same_file(a, b) -> bool:
    """True when ``a`` and ``b`` name one file (hard links and symlinks included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet: compare where they would resolve to
        return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


@contextlib.contextmanager
def output_folder(path):
    """Create the folder ``path`` (and missing parents) for a command's outputs and yield it as a Path.

    UserError (one sentence) when it is a file or cannot be created or written. When the body raises,
    the folders created here are removed again while still empty, so a refused run leaves nothing.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(
            f"output folder '{path}' is a file; give the name of a folder (it is created if missing)"
        )
    created, p = [], path.absolute()
    while not p.exists() and p != p.parent:
        created.append(p)
        p = p.parent
    try:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(
                f"cannot use '{path}' as the output folder ({exc.strerror or exc})"
            ) from None
        if not os.access(path, os.W_OK | os.X_OK):
            raise UserError(f"cannot write into the output folder '{path}' (permission denied)")
        yield path
    except BaseException:
        for folder in created:  # deepest first; a folder that holds files stays
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
