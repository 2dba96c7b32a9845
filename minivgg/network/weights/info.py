"""``describe``: the report ``minivgg weights info`` prints for a weights file or the cache (file size
and MD5, released name, arch, layout, orientation, provenance, per-layer verification) and the
one-sentence verdict it exits with when some layer does not match.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import WeightsError
from . import verification
from .cache import existing_cache
from .load import load_weights

_HIDDEN_PROVENANCE = (
    "layer_sha256",
    "path",
    "orientation_from",
    "verified",
    "file_size",
)  # shown elsewhere or noise


def describe(path=None, arch: str | None = None, flip_kernels=None) -> str:
    """A report for ``minivgg weights info``: file, arch, layout, orientation, provenance, per-layer
    verification.

    ``path`` None describes the cache of ``arch`` (default vgg16); for a file ``arch`` None infers it.
    A file that cannot be loaded is a WeightsError; one that does not verify is still described.
    """
    return report(path, arch, flip_kernels)[0]


def report(
    path=None, arch: str | None = None, flip_kernels=None
) -> tuple[str, WeightsError | None]:
    """``(text, problem)``: the ``describe`` text and the verdict when some layer does not match.

    ``problem`` is the one-sentence WeightsError (damaged / fails verification) that
    ``minivgg weights info`` ends with (exit 2), or None when every layer matches or there are no
    digests to check. Arguments as for ``describe``.
    """
    if path is None:
        arch = arch or "vgg16"
        path = existing_cache(arch)
    path = Path(path).expanduser()
    wset = load_weights(path, arch=arch, flip_kernels=flip_kernels, verify=False)
    digests, what = verification.reference_digests(wset)
    result = verification.verify(wset, digests) if digests else {}
    md5 = verification.file_md5(path)
    known = [
        k
        for a in verification.manifest()["archs"].values()
        for k in a.get("known_files", [])
        if k["md5"] == md5
    ]
    n_params = sum(w.size + b.size for w, b in wset.params.values())
    prov = {k: v for k, v in wset.provenance.items() if k not in _HIDDEN_PROVENANCE}
    lines = [
        f"file:         {path} ({path.stat().st_size:,} bytes, md5 {md5})",
        f"released as:  {known[0]['name']} (MD5 in the manifest)"
        if known
        else "released as:  not a released file (MD5 not in the manifest)",
        f"arch:         {wset.arch} ({len(wset.params)} conv layers, {n_params:,} parameters)",
        f"layout:       {wset.layout}",
        f"orientation:  {wset.orientation} (decided by {wset.provenance.get('orientation_from')})",
        "provenance:" + ("" if prov else "   none"),
    ]
    lines += [f"  {k:<16}{v}" for k, v in sorted(prov.items())]
    if result:
        good = sum(result.values())
        verdict = "all match" if good == len(result) else "DO NOT all match"
        lines.append(f"verification: {good}/{len(result)} layers match {what} ({verdict})")
        lines += [
            f"  {name:<13} {str(tuple(wset.params[name][0].shape)):<18} {'ok' if ok else 'MISMATCH'}"
            for name, ok in result.items()
        ]
    else:
        lines.append(
            f"verification: no per-layer digests for {wset.arch} (VGG19 is verified by the file MD5 at fetch)"
        )
    problem = None  # the verdict as the one-sentence error `weights info` ends with (exit 2)
    if result and not all(result.values()):
        assert digests is not None  # a result comes only from digests
        try:
            verification.check_verified(path, wset, digests, strict=True, what=what, result=result)
        except WeightsError as exc:
            problem = exc
    return "\n".join(lines), problem
