"""Weights files broken in every way a download, a disk or a user can break them.

Hypothesis fuzzing of ``load_weights``: random bytes, truncations and byte mutations (biased to the
HDF5 superblock and object headers) of every layout (Keras legacy ``.h5`` flat, full-model and
Theano, gzip-chunked; Keras 3 ``.weights.h5`` and ``.keras``; Keras 0.x; ONNX), structural tampering
(dtypes, shapes, Keras attributes, links, ONNX tensors and nodes) and in-place mutation of a
real-shape VGG16 file. Every example either loads finite float32 arrays of the right shapes or
raises one ``WeightsError`` sentence naming the file; any other exception fails, and so does a load
that runs past the Hypothesis deadline or hangs (``watchdog``). Most fuzzing runs on a tiny layer
table (VGG16/VGG19's 13/16 conv layers with 2-5 channels, patched into ``minivgg.network.weights``) so a
file is ~50 KB. ``MINIVGG_FUZZ_EXAMPLES`` (default 150) sets the examples per test (a tenth for
the real-shape one); ``pytest --hypothesis-show-statistics`` lists which errors the examples met.

Then the corpus of bad weights files through the CLI, ``minivgg weights info PATH`` and
``minivgg transfer … --weights PATH``: exit code 2, exactly one line on stderr (``minivgg: error:``)
naming the file, what is wrong and what to run instead, and no traceback.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import re
import shutil
import signal
import threading
import warnings
from datetime import timedelta
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from PIL import Image
from test_weights import keras3_bytes, onnx_bytes, write_keras0, write_keras_h5, write_zip

from minivgg import cli
from minivgg.errors import WeightsError
from minivgg.network import weights as W
from minivgg.network.arch import BLOCKS, conv_layer_table
from minivgg.network.weights import hdf5 as whdf5
from minivgg.network.weights import load as wload
from minivgg.network.weights import onnx as wonnx
from minivgg.network.weights import verification as wverify

EXAMPLES = int(os.environ.get("MINIVGG_FUZZ_EXAMPLES", 150))
HANG_S = 20  # one load this long is a hang (see ``watchdog``)
HAVE_ONNX = wonnx._import_onnx() is not None
needs_onnx = pytest.mark.skipif(
    not HAVE_ONNX, reason="the onnx package is not installed (pip install onnx)"
)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=10),
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
FUZZ_REAL = settings(FUZZ, max_examples=max(5, EXAMPLES // 10), deadline=timedelta(seconds=30))


# ------------------------------------------------------------------------------- tiny shapes

TINY_CHANNELS = (2, 4, 5, 5, 5)  # no 3x3 (in, out) pair: Keras 1 files tell OIHW from HWIO by shape


def tiny_table(arch: str) -> list[tuple[str, int, int]]:
    """``conv_layer_table`` with the real names and layer counts but 2-5 channels per block."""
    if arch not in BLOCKS:
        raise ValueError(f"unknown architecture {arch!r}")
    table, cin = [], 3
    for b, (n, cout) in enumerate(zip(BLOCKS[arch], TINY_CHANNELS), start=1):
        for k in range(1, n + 1):
            table.append((f"block{b}_conv{k}", cin, cout))
            cin = cout
    return table


def random_params(table, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        name: (
            rng.standard_normal((cout, cin, 3, 3), dtype=np.float32) * 0.05,
            rng.standard_normal(cout, dtype=np.float32) * 0.1,
        )
        for name, cin, cout in table
    }


@pytest.fixture
def tiny(monkeypatch):
    """Make ``minivgg.network.weights`` check files against the tiny layer table (it calls ``conv_layer_table``
    for every count and shape check)."""
    monkeypatch.setattr(wload, "conv_layer_table", tiny_table)
    return tiny_table


def _gzip_chunks(f):
    """Rewrite every dataset chunked with shuffle + gzip + Fletcher-32 (B-trees, filters, checksums)."""
    names = []
    f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    for name in names:
        data = f[name][()]
        if np.ndim(data) and np.size(data):
            del f[name]
            f.create_dataset(
                name, data=data, chunks=True, compression="gzip", shuffle=True, fletcher32=True
            )


def _seed_files(directory: Path, params) -> dict:
    """``{label: (bytes, suffix)}``: one valid file of every layout holding ``params``."""
    seeds = {}

    def add(label, path):
        seeds[label] = (path.read_bytes(), path.suffix)

    add("keras-h5", write_keras_h5(directory / "tf.h5", params))
    add(
        "keras-h5-full-model-keras1",
        write_keras_h5(directory / "full.h5", params, naming="keras1", nested=True),
    )
    add(
        "keras-h5-theano", write_keras_h5(directory / "th.h5", params, naming="keras1", theano=True)
    )
    add(
        "keras-h5-gzip",
        write_keras_h5(directory / "gz.h5", params, naming="keras3-legacy", tamper=_gzip_chunks),
    )
    data = keras3_bytes(params)
    seeds["keras3"] = (data, ".h5")
    add(
        "keras3-zip",
        write_zip(
            directory / "m.keras",
            {"metadata.json": "{}", "config.json": "{}", "model.weights.h5": data},
        ),
    )
    add("keras0", write_keras0(directory / "vgg16_weights.bin", params))
    if HAVE_ONNX:
        seeds["onnx"] = (onnx_bytes(params), ".onnx")
    return seeds


class _Seeds(dict):
    def __repr__(self):  # Hypothesis prints a failing example's arguments: not 400 KB of bytes
        return f"<seed files {', '.join(f'{k} ({len(v[0]):,} bytes)' for k, v in self.items())}>"


@pytest.fixture(scope="module")
def tiny_seeds(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny-seeds")
    seeds = _Seeds(_seed_files(directory, random_params(tiny_table("vgg16"))))
    shutil.rmtree(directory, ignore_errors=True)
    return seeds


@pytest.fixture(scope="session")
def terminal_fd(pytestconfig):
    """A copy of the real stderr (pytest captures fd 2), where the hard watchdog writes before it exits."""
    capman = pytestconfig.pluginmanager.getplugin("capturemanager")
    with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
        fd = os.dup(2)
    yield fd
    os.close(fd)


class Hang(BaseException):
    """A load ran past the watchdog (a BaseException: the loader's ``except Exception`` must not eat it)."""


@pytest.fixture
def watchdog(terminal_fd):
    """``with watchdog():`` fails the test with ``Hang`` if the block runs ``HANG_S`` (SIGALRM, for a
    loop in Python), and ends the whole run with every thread's stack on the terminal at ``3 * HANG_S``
    (for a loop inside HDF5's C code, which no signal handler or Hypothesis deadline interrupts; the
    file that hung is left in the test's tmp_path)."""

    @contextlib.contextmanager
    def guard(seconds=HANG_S):
        def alarm(signum, frame):
            raise Hang(f"load_weights ran for more than {seconds} s")

        soft = (
            hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
        )
        if soft:
            previous = signal.signal(signal.SIGALRM, alarm)
            signal.setitimer(signal.ITIMER_REAL, seconds)
        faulthandler.dump_traceback_later(3 * seconds, exit=True, file=terminal_fd)
        try:
            yield
        finally:
            faulthandler.cancel_dump_traceback_later()
            if soft:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)

    return guard


def load_or_weights_error(watchdog, path, table_of=conv_layer_table, **kwargs):
    """``load_weights(path, **kwargs)``: a valid WeightSet or one WeightsError sentence naming ``path``;
    anything else (another exception, a wrong or non-finite array) fails. Returns the set or the message."""
    with watchdog(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            wset = W.load_weights(path, **kwargs)
        except WeightsError as exc:
            msg = str(exc)
            assert msg and "\n" not in msg and msg.endswith("."), msg
            assert str(path) in msg, msg
            _event(_kind(msg, path))
            return msg
    assert wset.arch in BLOCKS and kwargs.get("arch") in (None, wset.arch)
    table = table_of(wset.arch)
    assert list(wset.params) == [name for name, _, _ in table]
    for name, cin, cout in table:
        w, b = wset.params[name]
        assert w.shape == (cout, cin, 3, 3) and b.shape == (cout,), (name, w.shape, b.shape)
        assert w.dtype == np.float32 and b.dtype == np.float32 and w.flags.c_contiguous
        assert np.isfinite(w).all() and np.isfinite(b).all(), name
    _event(f"loaded ({wset.layout})")
    return wset


def _event(text: str) -> None:
    if currently_in_test_context():  # ``pytest --hypothesis-show-statistics`` lists the outcomes
        event(text)


def _kind(msg: str, path) -> str:
    """The problem a message names, without its details."""
    problem = msg.replace(f"weights file {path} ", "").split(" (")[0].split(":")[0].split(";")[0]
    return re.sub(r"\d+", "N", problem)[:60]


# ------------------------------------------------------------------------ fuzzing: bytes

_PREFIXES = [
    "",
    "hdf5-signature",
    "hdf5-superblock-v0",
    "hdf5-superblock-v2",
    "zip",
    "onnx-field-1",
    "valid-head-96",
    "valid-head-800",
    "valid-head-4096",
]
_KWARGS = st.fixed_dictionaries(
    {
        "arch": st.sampled_from([None, "vgg16", "vgg19"]),
        "flip_kernels": st.sampled_from([None, "yes", "no"]),
        "verify": st.sampled_from([None, False, True]),
    }
)


def _prefix(kind: str, seeds) -> bytes:
    if kind.startswith("valid-head-"):  # the superblock and first object headers of a real file
        return seeds["keras-h5"][0][: int(kind.rsplit("-", 1)[1])]
    return {
        "": b"",
        "hdf5-signature": whdf5._HDF5_SIGNATURE,
        "hdf5-superblock-v0": whdf5._HDF5_SIGNATURE + bytes(5) + b"\x08\x08",
        "hdf5-superblock-v2": whdf5._HDF5_SIGNATURE + b"\x02\x08\x08",
        "zip": b"PK\x03\x04",
        "onnx-field-1": b"\x08",
    }[kind]


@FUZZ
@given(
    prefix=st.sampled_from(_PREFIXES),
    data=st.binary(max_size=4096),
    suffix=st.sampled_from([".h5", ".keras", ".onnx", ".bin"]),
    kwargs=_KWARGS,
)
def test_fuzz_random_bytes(tmp_path, tiny, tiny_seeds, watchdog, prefix, data, suffix, kwargs):
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(_prefix(prefix, tiny_seeds) + data)
    load_or_weights_error(watchdog, path, tiny, **kwargs)


def _mutate(data: bytes, edits, keep: float) -> bytes:
    out = bytearray(data)
    for pos, value in edits:
        out[pos % len(out)] = value
    return bytes(out[: int(round(len(out) * keep))])


# Positions: half in the first 4 KB (superblock, root group, first object headers), half anywhere.
_EDITS = st.lists(
    st.tuples(st.one_of(st.integers(0, 4095), st.integers(0, 1 << 20)), st.integers(0, 255)),
    max_size=8,
)
_KEEP = st.one_of(st.just(1.0), st.floats(0.0, 1.0))


@FUZZ
@given(
    label=st.sampled_from(
        [
            "keras-h5",
            "keras-h5-full-model-keras1",
            "keras-h5-theano",
            "keras-h5-gzip",
            "keras3",
            "keras3-zip",
            "keras0",
            "onnx",
        ]
    ),
    edits=_EDITS,
    keep=_KEEP,
    kwargs=_KWARGS,
)
def test_fuzz_mutated_and_truncated_files(
    tmp_path, tiny, tiny_seeds, watchdog, label, edits, keep, kwargs
):
    assume(label in tiny_seeds)  # no ONNX seed without the onnx package
    data, suffix = tiny_seeds[label]
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(_mutate(data, edits, keep))
    load_or_weights_error(watchdog, path, tiny, **kwargs)


def test_seed_files_load(tmp_path, tiny, tiny_seeds, watchdog):
    """The fuzzing starts from valid files: each loads (Theano-era ones with their flip) to the same arrays."""
    want = random_params(tiny_table("vgg16"))
    for label, (data, suffix) in tiny_seeds.items():
        path = tmp_path / f"{label}{suffix}"
        path.write_bytes(data)
        flip = "yes" if label in ("keras-h5-theano", "keras0") else None
        wset = load_or_weights_error(watchdog, path, tiny, flip_kernels=flip)
        assert isinstance(wset, W.WeightSet), wset
        for name, (w, b) in want.items():
            np.testing.assert_array_equal(wset.params[name][0], w)
            np.testing.assert_array_equal(wset.params[name][1], b)


# ------------------------------------------------------------ fuzzing: structural tampering
# What a byte flip rarely reaches: a dataset's dtype or shape, a Keras attribute of the wrong type
# or a huge count, links, a group where a dataset belongs; ONNX dims, dtypes, data and node wiring.

_DTYPES = ["<i4", "u1", "<f2", ">f4", "<f8", "<c8", "?", "S4"]
_SHAPES = [(), (0,), (1,), (4,), (3, 3, 1, 1), (0, 3, 3, 3), (2, 1, 1, 1, 1), (1, 1, 3, 3)]
_ATTR_KEYS = [
    "layer_names",
    "weight_names",
    "nb_layers",
    "nb_params",
    "backend",
    "layer_names0",
    "layer_names1",
    "weight_names0",
    "keras_version",
]
_ATTR_VALUES = [
    0,
    -1,
    1,
    3,
    15,
    2**31,
    2**62,
    1.5,
    float("nan"),
    b"",
    "text",
    b"\xff\xfe",
    np.zeros(0, "S1"),
    np.arange(3),
    np.array([[b"block1_conv1", b"x"]]),
    np.array([b"block1_conv1"] * 3),
    np.array(["vars", "0", "1"], dtype=h5py.string_dtype()),
    np.array([1.0, 2.0]),
    np.array([b"layer_0", b"layer_1"]),
    np.array([b"block1_conv1/kernel:0", b"block1_conv1/kernel:0"]),
]
_H5_OPS = [
    "retype",
    "reshape",
    "poison",
    "delete",
    "soft",
    "external",
    "hard",
    "attr",
    "delattr",
    "group-to-dataset",
]


def _h5_objects(f) -> list[str]:
    names = ["/"]
    f.visit(lambda name: names.append("/" + name))
    return names


def _tamper_h5(path, ops) -> None:
    """Apply ``ops`` (``(op, i, j)``: ``i`` picks an object, ``j`` another one or a parameter) to an HDF5
    file in place; an op h5py itself refuses is skipped (that is the harness, not the loader)."""
    with h5py.File(path, "r+") as f, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for op, i, j in ops:
            names = _h5_objects(f)
            name, other = names[i % len(names)], names[j % len(names)]
            obj = f[name]
            try:
                if op == "retype" and isinstance(obj, h5py.Dataset):
                    dtype = np.dtype(_DTYPES[j % len(_DTYPES)])
                    data = obj[()]
                    new = (
                        np.full(np.shape(data), b"ab", dtype)
                        if dtype.kind == "S"
                        else np.asarray(data).astype(dtype)
                    )
                    del f[name]
                    f[name] = new
                elif op == "reshape" and isinstance(obj, h5py.Dataset):
                    del f[name]
                    f[name] = np.ones(_SHAPES[j % len(_SHAPES)], np.float32)
                elif (
                    op == "poison"
                    and isinstance(obj, h5py.Dataset)
                    and obj.size
                    and obj.dtype.kind == "f"
                ):
                    data = np.array(obj[()])
                    data.flat[j % data.size] = (np.nan, np.inf, -np.inf)[j % 3]
                    obj[()] = data
                elif op == "delete" and name != "/":
                    del f[name]
                elif op == "soft" and name != "/":
                    del f[name]
                    f[name] = h5py.SoftLink(other)
                elif op == "external" and name != "/":
                    del f[name]
                    f[name] = h5py.ExternalLink("elsewhere.h5", other)
                elif op == "hard" and name != "/" and other not in ("/", name):
                    target = f[other]
                    del f[name]
                    f[name] = target
                elif op == "attr":
                    obj.attrs[_ATTR_KEYS[j % len(_ATTR_KEYS)]] = _ATTR_VALUES[
                        (j // len(_ATTR_KEYS)) % len(_ATTR_VALUES)
                    ]
                elif op == "delattr" and obj.attrs:
                    keys = list(obj.attrs)
                    del obj.attrs[keys[j % len(keys)]]
                elif op == "group-to-dataset" and isinstance(obj, h5py.Group) and name != "/":
                    del f[name]
                    f[name] = np.zeros((j % 5,), np.float32)
            except (ValueError, TypeError, KeyError, OSError, RuntimeError):
                pass


_OPS = st.lists(
    st.tuples(st.sampled_from(_H5_OPS), st.integers(0, 10**6), st.integers(0, 10**6)),
    min_size=1,
    max_size=4,
)


@FUZZ
@given(
    label=st.sampled_from(
        ["keras-h5", "keras-h5-full-model-keras1", "keras-h5-theano", "keras3", "keras0"]
    ),
    ops=_OPS,
    kwargs=_KWARGS,
)
def test_fuzz_tampered_hdf5_structure(tmp_path, tiny, tiny_seeds, watchdog, label, ops, kwargs):
    path = tmp_path / "tampered.h5"
    path.write_bytes(tiny_seeds[label][0])
    _tamper_h5(path, ops)
    load_or_weights_error(watchdog, path, tiny, **kwargs)


def test_huge_keras0_param_count_is_refused_at_once(tmp_path, tiny, watchdog):
    """Found by the tampering fuzz: ``nb_params = 2**62`` made the Keras 0.x reader build a list of
    2**62 lookups (a hang, then out of memory)."""
    path = write_keras0(tmp_path / "vgg16_weights.bin", random_params(tiny_table("vgg16")))
    with h5py.File(path, "r+") as f:
        f["layer_1"].attrs["nb_params"] = 2**62
    msg = load_or_weights_error(watchdog, path, tiny, flip_kernels="yes")
    assert "layer_1 says nb_params=4611686018427387904 but holds 2 objects" in msg


# Examples the fuzzing found (each raised something other than WeightsError, or hung, before the fix).
REGRESSIONS = {
    "keras0-param-is-a-group": (
        "keras0",
        [("hard", 3, 1)],
        "is corrupt: layer_1 says nb_params=2 but some param_p",
    ),
}


@pytest.mark.parametrize("case", sorted(REGRESSIONS))
def test_fuzz_regressions_hdf5(case, tmp_path, tiny, tiny_seeds, watchdog):
    label, ops, phrase = REGRESSIONS[case]
    path = tmp_path / "found.h5"
    path.write_bytes(tiny_seeds[label][0])
    _tamper_h5(path, ops)
    msg = load_or_weights_error(watchdog, path, tiny, flip_kernels="yes")
    assert phrase in msg, msg


_ONNX_OPS = [
    "dims",
    "dtype",
    "raw",
    "drop-init",
    "input",
    "op",
    "external",
    "alias-loop",
    "float-data",
]


def _tamper_onnx(data: bytes, ops) -> bytes:
    from onnx import ModelProto, TensorProto, helper

    model = ModelProto()
    model.ParseFromString(data)
    graph = model.graph
    for op, i, j in ops:
        inits, nodes = graph.initializer, graph.node
        t = inits[i % len(inits)] if len(inits) else None
        node = nodes[i % len(nodes)] if len(nodes) else None
        if op == "dims" and t is not None:
            del t.dims[:]
            t.dims.extend([(j >> (4 * k)) % 5 for k in range(j % 5)])
        elif op == "dtype" and t is not None:
            t.data_type = j % 27
        elif op == "raw" and t is not None:
            t.raw_data = t.raw_data[: j % (len(t.raw_data) + 1)]
        elif op == "drop-init" and t is not None:
            graph.initializer.remove(t)
        elif op == "input" and node is not None and len(node.input):
            names = [x.name for x in inits] + ["", "x", "nope"]
            node.input[j % len(node.input)] = names[j % len(names)]
        elif op == "op" and node is not None:
            node.op_type = ["Conv", "Identity", "Constant", "Relu", "MaxPool"][j % 5]
        elif op == "external" and t is not None:
            t.data_location = TensorProto.EXTERNAL
        elif op == "alias-loop" and t is not None:
            graph.node.extend(
                [
                    helper.make_node("Identity", ["loop_a"], ["loop_b"]),
                    helper.make_node("Identity", ["loop_b"], ["loop_a"]),
                    helper.make_node("Conv", ["x", "loop_a", t.name], ["y"]),
                ]
            )
        elif op == "float-data" and t is not None:
            t.float_data.extend([float("nan")] * (j % 4))
    return model.SerializeToString()


@needs_onnx
@pytest.mark.parametrize(
    "ops, phrase",
    [
        (
            [("op", 1, 1)],
            "has Conv node 1 whose bias 'block1_conv1/bias' is not a constant initializer",
        ),
        (
            [("dims", 0, 0)],
            "tensor 'block1_conv1/kernel_raw' cannot be decoded (ValueError: cannot reshape",
        ),
    ],
    ids=["identity-without-input", "data-does-not-fit-dims"],
)
def test_fuzz_regressions_onnx(tmp_path, tiny, tiny_seeds, watchdog, ops, phrase):
    path = tmp_path / "found.onnx"
    path.write_bytes(_tamper_onnx(tiny_seeds["onnx"][0], ops))
    msg = load_or_weights_error(watchdog, path, tiny)
    assert phrase in msg, msg


@needs_onnx
@FUZZ
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(_ONNX_OPS), st.integers(0, 10**6), st.integers(0, 10**6)),
        min_size=1,
        max_size=4,
    ),
    kwargs=_KWARGS,
)
def test_fuzz_tampered_onnx_structure(tmp_path, tiny, tiny_seeds, watchdog, ops, kwargs):
    path = tmp_path / "tampered.onnx"
    path.write_bytes(_tamper_onnx(tiny_seeds["onnx"][0], ops))
    load_or_weights_error(watchdog, path, tiny, **kwargs)


# ----------------------------------------------------------------- fuzzing: real VGG16 shapes


class _RealFile:
    """A real-shape VGG16 Keras legacy file (~59 MB of random weights) with its bytes and the byte
    ranges that are not dataset payload (superblock, object headers, B-trees, heaps)."""

    def __init__(self, path: Path):
        self.path = path
        self.data = path.read_bytes()
        payload = []
        with h5py.File(path, "r") as f:
            f.visititems(
                lambda name, obj: (
                    payload.append((obj.id.get_offset(), obj.id.get_storage_size()))
                    if isinstance(obj, h5py.Dataset) and obj.id.get_offset() is not None
                    else None
                )
            )
        self.meta, pos = [], 0  # [(start, stop)] of metadata, in file order
        for start, size in sorted(payload):
            if start > pos:
                self.meta.append((pos, start))
            pos = max(pos, start + size)
        if pos < len(self.data):
            self.meta.append((pos, len(self.data)))
        self.meta_size = sum(b - a for a, b in self.meta)

    def meta_offset(self, k: int) -> int:
        k %= self.meta_size
        for a, b in self.meta:
            if k < b - a:
                return a + k
            k -= b - a
        raise AssertionError

    def __repr__(self):
        return f"<{self.path.name}: {len(self.data):,} bytes, {self.meta_size:,} of metadata>"


@pytest.fixture(scope="module")
def real_file(tmp_path_factory):
    directory = tmp_path_factory.mktemp("real-shape")
    real = _RealFile(
        write_keras_h5(directory / "vgg16.h5", random_params(conv_layer_table("vgg16")))
    )
    yield real
    shutil.rmtree(directory, ignore_errors=True)


@FUZZ_REAL
@given(
    meta_edits=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=6),
    data_edits=st.lists(st.tuples(st.integers(0, 1 << 30), st.integers(0, 255)), max_size=3),
    cut=st.one_of(st.none(), st.none(), st.none(), st.integers(0, 1 << 30)),
)
def test_fuzz_real_shape_file_in_place(real_file, watchdog, meta_edits, data_edits, cut):
    """Mutate the metadata (and a few payload bytes) of a real-shape file in place, sometimes truncate
    it, load it, and put the original bytes back (a 59 MB copy per example would be slow)."""
    data, size = real_file.data, len(real_file.data)
    edits = [(real_file.meta_offset(k), v) for k, v in meta_edits] + [
        (k % size, v) for k, v in data_edits
    ]
    cut = None if cut is None else cut % size
    try:
        with open(real_file.path, "r+b") as fh:
            for pos, value in edits:
                fh.seek(pos)
                fh.write(bytes([value]))
            if cut is not None:
                fh.truncate(cut)
        load_or_weights_error(watchdog, real_file.path, verify=False)
    finally:
        with open(real_file.path, "r+b") as fh:
            if cut is not None:
                fh.seek(cut)
                fh.write(data[cut:])
            for pos, _ in edits:
                fh.seek(pos)
                fh.write(data[pos : pos + 1])


# ----------------------------------------------------------------------- the CLI bad-file corpus


def write_lazy_keras_h5(path, arch="vgg16", tamper=None):
    """Keras legacy layout at the real shapes of ``arch`` whose datasets are never written: HDF5 reads
    them as zeros without storing them, so the file is a few KB. ``tamper(f)`` edits it."""
    with h5py.File(path, "w") as f:
        names = []
        for name, cin, cout in conv_layer_table(arch):
            group = f.create_group(name)
            wnames = [f"{name}/kernel:0", f"{name}/bias:0"]
            group.attrs["weight_names"] = np.array([n.encode() for n in wnames])
            group.create_dataset(wnames[0], shape=(3, 3, cin, cout), dtype="<f4")
            group.create_dataset(wnames[1], shape=(cout,), dtype="<f4")
            names.append(name)
        f.attrs["layer_names"] = np.array([n.encode() for n in names])
        if tamper:
            tamper(f)
    return path


def _replace(f, name, **kwargs):
    del f[name]
    f.create_dataset(name, **kwargs)


def _odd_float(name, shape):
    """Replace dataset ``name`` by one of a float type no NumPy dtype represents (exponent bias 16511,
    as a byte flip in its datatype message made it): h5py cannot even say its dtype."""

    def tamper(f):
        del f[name]
        tid = h5py.h5t.IEEE_F32LE.copy()
        tid.set_ebias(16511)
        h5py.h5d.create(f.id, name.encode(), tid, h5py.h5s.create_simple(shape))

    return tamper


def _set(name, index, value):
    def tamper(f):
        f[name][index] = value

    return tamper


def _hdf5_without_layout(path):
    with h5py.File(path, "w") as f:
        f["data"] = np.zeros(3)
    return path


def _truncated(make, fraction=0.5):
    def build(path):
        data = make(path.with_name("whole" + path.suffix)).read_bytes()
        path.write_bytes(data[: int(len(data) * fraction)])
        return path

    return build


def _bytes(data: bytes):
    def build(path):
        path.write_bytes(data)
        return path

    return build


def _tiny_zip(path):
    return write_zip(
        path, {"model.weights.h5": keras3_bytes(random_params(conv_layer_table("vgg16")))}
    )


def _tiny_onnx(path):
    path.write_bytes(onnx_bytes(random_params(conv_layer_table("vgg16"))))
    return path


_RNG_BYTES = np.random.default_rng(7).bytes(4096)

# name: (file name, builder(path) -> path or None for a missing file, transfer preset, weights info flags,
#        phrase the error names, how it says what to run instead)
CORPUS = {
    "missing": ("nope.h5", None, "gatys", [], "does not exist", "minivgg weights fetch vgg16"),
    "directory": (
        "weights.h5",
        lambda p: p.mkdir() or p,
        "gatys",
        [],
        "is a directory, not a weights file",
        "minivgg weights fetch vgg16",
    ),
    "empty": (
        "empty.h5",
        _bytes(b""),
        "gatys",
        [],
        "is empty (an interrupted download or copy?)",
        "minivgg weights fetch vgg16",
    ),
    "random-bytes": (
        "random.h5",
        _bytes(_RNG_BYTES[1:]),
        "gatys",
        [],
        "is not an HDF5, .keras or ONNX weights file",
        "minivgg weights fetch vgg16",
    ),
    "text-file": (
        "notes.h5",
        _bytes(b"not weights\n"),
        "gatys",
        [],
        "is not an HDF5, .keras or ONNX weights file",
        "minivgg weights fetch vgg16",
    ),
    "corrupt-hdf5": (
        "corrupt.h5",
        _bytes(whdf5._HDF5_SIGNATURE + _RNG_BYTES),
        "gatys",
        [],
        "is a corrupt HDF5 file",
        "minivgg weights fetch vgg16",
    ),
    "hdf5-no-layout": (
        "other.h5",
        _hdf5_without_layout,
        "gatys",
        [],
        "holds no known weights layout",
        "minivgg weights fetch vgg16",
    ),
    "truncated-h5": (
        "cut.h5",
        _truncated(
            lambda p: write_lazy_keras_h5(
                p, tamper=_set("block1_conv1/block1_conv1/kernel:0", (0, 0, 0, 0), 1.0)
            )
        ),
        "gatys",
        [],
        "is truncated (",
        "minivgg weights fetch vgg16",
    ),
    "truncated-keras-zip": (
        "cut.keras",
        _truncated(_tiny_zip),
        "gatys",
        [],
        "is a truncated or corrupt zip archive",
        "minivgg weights fetch vgg16",
    ),
    "truncated-onnx": (
        "cut.onnx",
        _truncated(_tiny_onnx, 0.9),
        "gatys",
        [],
        "is a truncated or corrupt ONNX model",
        "minivgg weights fetch vgg16",
    ),
    "vgg19-file-for-vgg16": (
        "vgg19.h5",
        lambda p: write_lazy_keras_h5(p, "vgg19"),
        "gatys",
        ["--arch", "vgg16"],
        "has 16 conv layers but vgg16 has 13 (it looks like vgg19",
        "a --preset that runs on vgg19, listed by `minivgg presets`",
    ),
    "vgg16-file-for-vgg19": (
        "vgg16.h5",
        write_lazy_keras_h5,
        "d2l",
        ["--arch", "vgg19"],
        "has 13 conv layers but vgg19 has 16 (it looks like vgg16",
        "--arch vgg16",
    ),
    "wrong-shape": (
        "shape.h5",
        lambda p: write_lazy_keras_h5(
            p,
            tamper=lambda f: _replace(
                f, "block2_conv1/block2_conv1/kernel:0", shape=(3, 3, 64, 100), dtype="<f4"
            ),
        ),
        "gatys",
        [],
        "has the wrong shape for layer block2_conv1 kernel: (3, 3, 64, 100), but vgg16 needs (3, 3, 64, 128)",
        "minivgg weights fetch vgg16",
    ),
    "wrong-dtype": (
        "int.h5",
        lambda p: write_lazy_keras_h5(
            p,
            tamper=lambda f: _replace(
                f, "block1_conv2/block1_conv2/bias:0", shape=(64,), dtype="<i4"
            ),
        ),
        "gatys",
        [],
        "stores layer block1_conv2 bias as int32, not floating point",
        "minivgg weights fetch vgg16",
    ),
    "odd-float-type": (
        "odd.h5",
        lambda p: write_lazy_keras_h5(
            p, tamper=_odd_float("block1_conv2/block1_conv2/bias:0", (64,))
        ),
        "gatys",
        [],
        "is corrupt: layer block1_conv2 bias has an unreadable shape or data type (Insufficient precision",
        "minivgg weights fetch vgg16",
    ),
    "nan-kernel": (
        "nan.h5",
        lambda p: write_lazy_keras_h5(
            p, tamper=_set("block3_conv2/block3_conv2/kernel:0", (1, 2, 3, 4), np.nan)
        ),
        "gatys",
        [],
        "has non-finite values (NaN or Inf) in layer block3_conv2 kernel",
        "minivgg weights fetch vgg16",
    ),
    "inf-bias-vgg19": (
        "inf19.h5",
        lambda p: write_lazy_keras_h5(
            p, "vgg19", tamper=_set("block5_conv4/block5_conv4/bias:0", 7, -np.inf)
        ),
        "d2l",
        [],
        "has non-finite values (NaN or Inf) in layer block5_conv4 bias",
        "minivgg weights fetch vgg19",
    ),
    "soft-link": (
        "link.h5",
        lambda p: write_lazy_keras_h5(
            p, tamper=lambda f: f.__setitem__("alias", h5py.SoftLink("/block1_conv1"))
        ),
        "gatys",
        [],
        "contains an HDF5 soft link /alias -> /block1_conv1",
        "minivgg weights fetch vgg16",
    ),
}


@pytest.fixture
def images(tmp_path):
    """A content and a style image for ``minivgg transfer`` (read before the weights)."""
    rng = np.random.default_rng(0)
    paths = []
    for name in ("content.png", "style.png"):
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(tmp_path / name)
        paths.append(str(tmp_path / name))
    return paths


def run_both(path, preset, info_flags, images, tmp_path, capsys) -> list[str]:
    """Run ``weights info PATH`` and ``transfer … --weights PATH``; each must exit 2 with exactly one
    line on stderr naming the file and no traceback. Returns the two error lines."""
    out = tmp_path / "out.png"
    commands = [
        ["weights", "info", str(path), *info_flags],
        [
            "transfer",
            *images,
            "-o",
            str(out),
            "--preset",
            preset,
            "--weights",
            str(path),
            "--size",
            "24",
            "--iters",
            "1",
            "--quiet",
        ],
    ]
    lines = []
    for argv in commands:
        capsys.readouterr()
        rc = cli.main(argv)
        captured = capsys.readouterr()
        err = captured.err.splitlines()
        assert rc == 2, (argv, rc, captured.err)
        assert len(err) == 1 and err[0].startswith("minivgg: error: weights file "), (
            argv,
            captured.err,
        )
        assert str(path) in err[0] and err[0].endswith("."), err[0]
        assert (
            "Traceback" not in captured.err + captured.out and "internal error" not in captured.err
        )
        lines.append(err[0])
    assert not out.exists()
    return lines


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_cli_bad_weights_corpus(case, tmp_path, images, capsys, monkeypatch):
    monkeypatch.setenv("MINIVGG_HOME", str(tmp_path / "home"))  # never the user's cache
    fname, build, preset, flags, problem, instead = CORPUS[case]
    path = tmp_path / fname
    if build is not None:
        assert build(path) == path
    for line in run_both(path, preset, flags, images, tmp_path, capsys):
        assert problem in line and instead in line, line


def test_cli_theano_file_without_orientation(tmp_path, capsys, monkeypatch):
    """A Theano-era file whose kernel orientation the digests cannot tell: `weights info` names the flag."""
    monkeypatch.setenv("MINIVGG_HOME", str(tmp_path / "home"))
    path = write_keras0(tmp_path / "vgg16_weights.bin", random_params(tiny_table("vgg16")))
    monkeypatch.setattr(wload, "conv_layer_table", tiny_table)
    assert cli.main(["weights", "info", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert (
        len(err) == 1
        and str(path) in err[0]
        and "--flip-kernels yes" in err[0]
        and "--flip-kernels no" in err[0]
    )


def _damage(path, dataset="block5_conv1/block5_conv1/kernel:0"):
    with h5py.File(path, "a") as f:
        f[dataset][0, 0, 0, 0] += 1.0


def test_cli_hash_mismatch_synthetic(tmp_path, images, capsys, monkeypatch, real_file):
    """One layer of a file differs from the manifest digests (here: the digests of ``real_file``'s
    weights): ``weights info`` prints the report and ends with the one-line verdict; transfer refuses."""
    monkeypatch.setenv("MINIVGG_HOME", str(tmp_path / "home"))
    digests = W.layer_digests(W.load_weights(real_file.path, verify=False).params)
    monkeypatch.setattr(
        wverify, "manifest_digests", lambda arch: digests if arch == "vgg16" else None
    )
    path = tmp_path / "damaged.h5"
    shutil.copyfile(real_file.path, path)
    _damage(path)
    info, transfer = run_both(path, "gatys", [], images, tmp_path, capsys)
    for line in (info, transfer):
        assert (
            "is damaged: 1 of its 13 layers (first block5_conv1) differ from the manifest" in line
        ), line
        assert "minivgg weights fetch vgg16" in line
    assert cli.main(["weights", "info", str(path)]) == 2
    assert "12/13 layers match the manifest (DO NOT all match)" in capsys.readouterr().out


@pytest.mark.weights
def test_cli_hash_mismatch_of_real_weights(real_weights, tmp_path, images, capsys, monkeypatch):
    """A copy of the verified cached VGG16 weights with one kernel value changed."""
    path = tmp_path / "vgg16_copy.h5"
    shutil.copyfile(W.cached_path("vgg16"), path)
    monkeypatch.setenv("MINIVGG_HOME", str(tmp_path / "home"))
    assert cli.main(["weights", "info", str(path)]) == 0  # the intact copy verifies
    capsys.readouterr()
    _damage(path)
    for line in run_both(path, "gatys", [], images, tmp_path, capsys):
        assert (
            "is damaged: 1 of its 13 layers (first block5_conv1) differ from the manifest" in line
        ), line
        assert "minivgg weights fetch vgg16" in line
