"""Fixtures shared by the test modules.

- ``real_weights`` (session): the verified cached VGG16 as a ``VGG`` (``minivgg.network.vgg.load_vgg("vgg16")``),
  or a skip naming ``minivgg weights fetch vgg16`` when the cache lacks it. Tests that use it are
  marked ``weights`` automatically (``pytest -m "not weights"`` leaves them out).
- ``rng``: a ``np.random.Generator`` seeded from the test's node id, so a test's data never depends
  on which other tests ran before it (``-k``, ``-m``, ordering).
- ``synthetic_weights`` (session): ``{"vgg16": path, "vgg19": path}``, synthetic Keras-h5 weight files
  (``synth.write_keras_h5``) written once per run.
- ``transfer_files`` (session): a folder with ``content.png`` (96x72), ``style.jpg`` (80x80),
  ``style2.png`` (48x64) and ``vgg16.h5`` (the synthetic VGG16 weights).
- ``small_transfer``: ``small_transfer(tmp_path, *flags)`` runs a 4-iteration ``minivgg transfer`` on tiny
  synthetic images and weights and checks its log; returns the logged iterations.
"""

# isort: off
import minivgg  # noqa: F401  first, before numpy: its idle-thread defaults only work if set before OpenBLAS loads

# isort: on
import json
import zlib

import numpy as np
import pytest


@pytest.fixture(scope="session")
def real_weights():
    from minivgg.errors import WeightsError
    from minivgg.network.vgg import load_vgg

    try:
        return load_vgg("vgg16")
    except WeightsError as exc:
        hint = (
            ""
            if "minivgg weights fetch vgg16" in str(exc)
            else " (run `minivgg weights fetch vgg16`)"
        )
        pytest.skip(f"needs the verified VGG16 weights in the cache: {exc}{hint}")


def pytest_collection_modifyitems(items):
    for item in items:
        if "real_weights" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.weights)


@pytest.fixture
def rng(request):
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture(scope="session")
def synthetic_weights(tmp_path_factory):
    from synth import write_keras_h5

    d = tmp_path_factory.mktemp("synthetic_weights")
    return {arch: write_keras_h5(d / f"{arch}_synthetic.h5", arch) for arch in ("vgg16", "vgg19")}


@pytest.fixture(scope="session")
def transfer_files(tmp_path_factory, synthetic_weights):
    from PIL import Image

    d = tmp_path_factory.mktemp("transfer_files")
    r = np.random.default_rng(0)
    yy, xx = np.mgrid[0:72, 0:96]
    content = np.stack([xx * 2.5, yy * 3.0, (xx + yy) * 1.5], -1).clip(0, 255).astype(np.uint8)
    Image.fromarray(content).save(d / "content.png")
    Image.fromarray(r.integers(0, 256, (80, 80, 3)).astype(np.uint8)).save(d / "style.jpg")
    Image.fromarray(r.integers(0, 256, (64, 48, 3)).astype(np.uint8)).save(d / "style2.png")
    (d / "vgg16.h5").symlink_to(synthetic_weights["vgg16"])
    return d


@pytest.fixture
def small_transfer(synthetic_weights):
    """``run(tmp_path, *flags)``: a 4-iteration ``minivgg transfer`` at 40 px (in process); the log's
    iterations are 1..4, the loss never rises, and the output is 33x40."""
    from PIL import Image

    from minivgg.cli import main

    def run(tmp_path, *extra):
        r = np.random.default_rng(9)
        content = r.integers(0, 256, (40, 48, 3)).astype(np.uint8)
        style = r.integers(0, 256, (40, 40, 3)).astype(np.uint8)
        Image.fromarray(content).save(tmp_path / "c.png")
        Image.fromarray(style).save(tmp_path / "s.png")
        out, log = tmp_path / "out.png", tmp_path / "log.json"
        assert (
            main(
                [
                    str(a)
                    for a in (
                        "transfer",
                        tmp_path / "c.png",
                        tmp_path / "s.png",
                        "-o",
                        out,
                        "--weights",
                        synthetic_weights["vgg16"],
                        "--size",
                        40,
                        "--iters",
                        4,
                        "--log",
                        log,
                        "--quiet",
                        *extra,
                    )
                ]
            )
            == 0
        )
        its = json.loads(log.read_text())["iterations"]
        assert [r["iteration"] for r in its] == [1, 2, 3, 4]
        assert all(b["loss"] <= a["loss"] for a, b in zip(its, its[1:]))
        assert np.asarray(Image.open(out)).shape == (33, 40, 3)
        return its

    return run
