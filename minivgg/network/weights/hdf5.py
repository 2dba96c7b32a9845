"""The HDF5 weights layouts: Keras legacy ``.h5`` in every naming style (flat or full-model), Keras 3
``.weights.h5`` (also as the member of a ``.keras`` zip) and Keras 0.x/Theano ``nb_layers`` files,
plus the file-signature sniffing and the refusal of links and external or virtual datasets.
"""

from __future__ import annotations

import contextlib
import re
import zipfile
import zlib

import h5py
import numpy as np

from ...errors import WeightsError
from .base import Raw, error, first_line

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_KERAS_ATTRS = (
    "layer_names",
    "backend",
    "keras_version",
)  # root attrs that are layout, not provenance
_KERAS3_CONV = re.compile(r"conv2d(?:_(\d+))?")


def sniff(path) -> str | None:
    """'hdf5', 'zip', 'onnx' or None, from the signature of the file at ``path`` (a Path).

    The HDF5 signature may sit after a user block (offset 0, 512, 1024, …); ONNX has no signature,
    so it is told by the ``.onnx`` suffix or a leading ModelProto field 1 (``ir_version``).
    """
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if head.startswith(b"PK\x03\x04"):
            return "zip"
        offset = 0
        while offset + 8 <= size:
            fh.seek(offset)
            if fh.read(8) == _HDF5_SIGNATURE:
                return "hdf5"
            offset = 512 if offset == 0 else offset * 2
    if (
        path.suffix.lower() == ".onnx" or head[:1] == b"\x08"
    ):  # ModelProto field 1 (ir_version) first
        return "onnx"
    return None


def keras_zip_member(path, arch) -> bytes:
    """The bytes of ``model.weights.h5`` inside the ``.keras`` zip at ``path`` (a Keras 3 weights file).

    A zip without that member, or a truncated or corrupt one, is a WeightsError sentence naming
    ``path``; ``arch`` only picks the fetch advice.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            if "model.weights.h5" not in zf.namelist():
                raise error(
                    path, "is a zip archive without model.weights.h5, so not a .keras model", arch
                )
            return zf.read("model.weights.h5")
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
        raise error(
            path, f"is a truncated or corrupt zip archive ({first_line(exc)})", arch
        ) from None


@contextlib.contextmanager
def hdf5_layers(path, source, arch):
    """Open ``source`` (a path or a file object) as HDF5 and yield the layout it holds as a ``Raw``.

    The ``Raw``'s arrays are h5py datasets that stay readable until the block ends. ``path`` is the
    name the errors give (the file, even when ``source`` is a zip member); every failure to open or
    parse is a WeightsError sentence.
    """
    try:
        f = h5py.File(source, "r")
    except OSError as exc:
        raise _open_error(path, exc, arch) from None
    with f:
        try:
            raw = _hdf5_layout(path, f, arch)
        except WeightsError:
            raise
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise error(path, f"is corrupt ({first_line(exc)})", arch) from None
        raw.provenance.setdefault("path", str(path))
        yield raw


def _hdf5_layout(path, f, arch) -> Raw:
    """Tell the layout of an open HDF5 file by its markers and read it."""
    objects = _h5_walk(path, f, arch)
    if _h5_names(f, "layer_names") is not None:
        return _read_keras_h5(path, f, f, arch)
    nested = f.get("model_weights")
    if isinstance(nested, h5py.Group) and _h5_names(nested, "layer_names") is not None:
        return _read_keras_h5(path, f, nested, arch)
    if "nb_layers" in f.attrs:
        return _read_keras0(path, f, arch)
    if any(
        isinstance(obj, h5py.Group) and _KERAS3_CONV.fullmatch(name.rsplit("/", 1)[-1])
        for name, obj in objects
    ):
        return _read_keras3(path, objects, arch)
    raise error(
        path,
        "is an HDF5 file but holds no known weights layout (no layer_names, nb_layers "
        "or layers/conv2d*/vars)",
        arch,
    )


def _h5_walk(path, f, arch) -> list:
    """Every object as ``[(name, obj)]``; refuses links and external or virtual datasets."""
    seen, out, stack = set(), [], [f]
    while stack:
        group = stack.pop()
        for key in group:
            link = group.get(key, getlink=True)
            name = f"{group.name.rstrip('/')}/{key}"
            if (
                link is None
            ):  # h5py's get() says None when a listed link does not resolve (a damaged header)
                raise error(path, f"is corrupt: {name} is listed but cannot be opened", arch)
            if isinstance(link, h5py.SoftLink):
                raise error(
                    path,
                    f"contains an HDF5 soft link {name} -> {link.path}, and minivgg reads only "
                    "self-contained files without links",
                    arch,
                )
            if not isinstance(link, h5py.HardLink):
                target = (
                    f" -> {link.filename}:{link.path}"
                    if isinstance(link, h5py.ExternalLink)
                    else ""
                )
                raise error(
                    path,
                    f"contains an HDF5 external link {name}{target}, and minivgg reads only "
                    "self-contained files without links",
                    arch,
                )
            obj = group[key]
            addr = h5py.h5o.get_info(obj.id).addr
            if addr in seen:
                continue
            seen.add(addr)
            out.append((name, obj))
            if isinstance(obj, h5py.Group):
                stack.append(obj)
            elif isinstance(obj, h5py.Dataset) and (obj.external or obj.is_virtual):
                kind = "virtual" if obj.is_virtual else "external"
                raise error(
                    path,
                    f"stores dataset {name} as an {kind} dataset outside the file, and minivgg "
                    "reads only self-contained files",
                    arch,
                )
    return out


def _h5_names(obj, key):
    """A Keras string-list attribute (also the chunked ``key0``, ``key1`` … form), or None."""
    attrs = obj.attrs
    if key in attrs:
        values = [attrs[key]]
    elif f"{key}0" in attrs:
        values, i = [], 0
        while f"{key}{i}" in attrs:
            values.append(attrs[f"{key}{i}"])
            i += 1
    else:
        return None
    return [
        v.decode("utf-8") if isinstance(v, bytes) else str(v)
        for chunk in values
        for v in np.atleast_1d(chunk)
    ]


def _read_keras_h5(path, f, root, arch) -> Raw:
    """Keras legacy ``.h5``: ``layer_names`` -> groups -> ``weight_names`` -> datasets (kernel HWIO)."""
    layers, naming = [], None
    for lname in _h5_names(root, "layer_names"):
        group = root.get(lname) if lname else None
        if not isinstance(group, h5py.Group):
            raise error(
                path, f"is corrupt: layer {lname} is listed in layer_names but has no group", arch
            )
        wnames = _h5_names(group, "weight_names") or []
        arrays = []
        for wn in wnames:
            if wn not in group:
                raise error(
                    path, f"is corrupt: weight {wn} of layer {lname} is listed but missing", arch
                )
            arrays.append((wn, group[wn]))
        kernels = [(wn, a) for wn, a in arrays if isinstance(a, h5py.Dataset) and a.ndim == 4]
        if not kernels:
            continue
        biases = [(wn, a) for wn, a in arrays if isinstance(a, h5py.Dataset) and a.ndim == 1]
        if len(kernels) != 1 or len(biases) != 1 or len(arrays) != 2:
            raise error(
                path,
                f"has conv layer {lname} with weights {wnames}, not one kernel and one bias",
                arch,
            )
        (kname, kernel), (_, bias) = kernels[0], biases[0]
        naming = naming or _keras_naming(kname)
        # Theano-ordered Keras 1 files store (out, in, H, W); Keras 2+ always (H, W, in, out).
        order = "OIHW" if kernel.shape[2:] == (3, 3) and kernel.shape[:2] != (3, 3) else "HWIO"
        layers.append((lname, kernel, bias, order))
    backend = _attr_str(f.attrs.get("backend") or root.attrs.get("backend"))
    theano = backend == "theano" or any(order == "OIHW" for *_, order in layers)
    prov = {"naming": naming or "none"}
    if root is not f:
        prov["nested"] = "model_weights (full-model file)"
    if backend:
        prov["keras_backend"] = backend
    prov.update(_root_provenance(f))
    return Raw("keras-h5", layers, theano, prov)


def _keras_naming(kname: str) -> str:
    """The Keras generation a kernel's weight name belongs to: keras1, tf.keras, keras3-legacy or other."""
    if re.search(r"_W(_\d+)?(:\d+)?$", kname):
        return "keras1"
    if "/" in kname:
        return "tf.keras" if re.search(r":\d+$", kname) else "keras3-legacy"
    return "other"


def _root_provenance(f) -> dict:
    """The file's root string attributes other than Keras's layout markers."""
    out = {}
    for key, value in f.attrs.items():
        if key in _KERAS_ATTRS:
            continue
        text = _attr_str(value)
        if text is not None:
            out[key] = text
    return out


def _attr_str(value):
    """An HDF5 attribute as text (bytes, str or a 0-d string array), else None."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    if isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind in "SU":
        return _attr_str(value[()])
    return None


def _read_keras0(path, f, arch) -> Raw:
    """Keras 0.x (``vgg16_weights.bin``): ``layer_k/param_p``; conv = first param 4-D, kernels OIHW."""
    layers = []
    for k in range(int(f.attrs["nb_layers"])):
        name = f"layer_{k}"
        if name not in f:
            raise error(
                path,
                f"is corrupt: nb_layers says {int(f.attrs['nb_layers'])} but {name} is missing",
                arch,
            )
        group = f[name]
        if not isinstance(group, h5py.Group):
            raise error(path, f"is corrupt: {name} is not a group", arch)
        n = int(group.attrs.get("nb_params", 0))
        if not 0 <= n <= len(group):  # a damaged count must not make a list of 2**62 lookups
            raise error(
                path, f"is corrupt: {name} says nb_params={n} but holds {len(group)} objects", arch
            )
        params = [group.get(f"param_{p}") for p in range(n)]
        if any(not isinstance(p, h5py.Dataset) for p in params):
            raise error(
                path,
                f"is corrupt: {name} says nb_params={n} but some param_p datasets are missing",
                arch,
            )
        if n and params[0].ndim == 4:
            if n != 2 or params[1].ndim != 1:
                raise error(
                    path,
                    f"has conv layer {name} with {n} params, not one kernel and one bias",
                    arch,
                )
            layers.append((name, params[0], params[1], "OIHW"))
    return Raw("keras0-theano", layers, True, _root_provenance(f))


def _read_keras3(path, objects, arch) -> Raw:
    """Keras 3 ``.weights.h5``: ``…/conv2d[_N]/vars/{0,1}``, matched in the order N (natural sort)."""
    parents: dict[str, list[tuple[int, str, h5py.Group]]] = {}  # group -> its (N, name, vars)
    for name, obj in objects:
        parent, _, base = name.rpartition("/")
        m = _KERAS3_CONV.fullmatch(base)
        if m and isinstance(obj, h5py.Group) and isinstance(obj.get("vars"), h5py.Group):
            parents.setdefault(parent or "/", []).append((int(m.group(1) or 0), name, obj["vars"]))
    if len(parents) != 1:
        raise error(
            path,
            f"has Keras 3 conv layers under {len(parents)} different groups "
            f"({', '.join(sorted(parents)) or 'none'}), so their order is ambiguous",
            arch,
        )
    ((parent, convs),) = parents.items()
    layers = []
    for _, name, vars_ in sorted(convs):
        kernel, bias = vars_.get("0"), vars_.get("1")
        if (
            not isinstance(kernel, h5py.Dataset)
            or not isinstance(bias, h5py.Dataset)
            or len(vars_) != 2
        ):
            raise error(
                path,
                f"has conv layer {name} with vars {sorted(vars_)}, not a kernel (0) and a bias (1)",
                arch,
            )
        layers.append((name.lstrip("/"), kernel, bias, "HWIO"))
    return Raw("keras3-weights", layers, False, {"container": parent})


def _open_error(path, exc, arch) -> WeightsError:
    """The sentence for an HDF5 file h5py cannot open: truncated (with sizes when known) or corrupt."""
    text = str(exc)
    m = re.search(r"truncated file: eof = (\d+).*stored_eof = (\d+)", text)
    if m:
        have, want = int(m.group(1)), int(m.group(2))
        return error(
            path, f"is truncated ({have:,} of {want:,} bytes; an interrupted download?)", arch
        )
    if "truncated" in text:
        return error(path, "is truncated (an interrupted download?)", arch)
    return error(path, f"is a corrupt HDF5 file ({first_line(exc)})", arch)
