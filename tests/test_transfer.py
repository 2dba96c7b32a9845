"""The Python API of a style transfer (``minivgg.run.transfer``): ``stylize`` = ``prepare`` → ``optimize`` →
``finish`` from files to files, without the command line. Bad options are one ``UserError`` sentence
raised before any work (never an internal error or a MemoryError); Ctrl-C leaves the best image and a
checkpoint that ``resume`` continues from. (The same through ``minivgg transfer``: ``test_cli.py``.)"""

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from minivgg.engine import backend
from minivgg.engine.backend import DeviceError
from minivgg.errors import UserError
from minivgg.run import checkpoint, optimize
from minivgg.run.optimize import snapshot_path
from minivgg.run.transfer import INITS, OPTIMIZERS, RunOptions, prepare, stylize
from minivgg.style import memory


def options(tmp_path, files, **kw):
    kw.setdefault("size", 48)
    kw.setdefault("iters", 3)
    return RunOptions(
        output=str(tmp_path / "out.png"), weights=str(files / "vgg16.h5"), quiet=True, **kw
    )


def run(tmp_path, files, overrides=None, **kw):
    return stylize(
        files / "content.png",
        [files / "style.jpg"],
        options(tmp_path, files, **kw),
        overrides or {},
    )


@pytest.mark.slow
def test_stylize_writes_the_output_and_returns_the_log(transfer_files, tmp_path):
    log = run(tmp_path, transfer_files, log=str(tmp_path / "log.json"), save_every=2)
    assert [r["iteration"] for r in log["iterations"]] == [1, 2, 3]
    assert math.isfinite(log["final_loss"]) and log["final_loss"] <= log["iterations"][0]["loss"]
    assert log["settings"]["preset"] == "gatys" and log["settings"]["size"] == 48
    assert np.asarray(Image.open(tmp_path / "out.png")).shape == (36, 48, 3)
    assert (tmp_path / "log.json").exists() and (tmp_path / "out_0002.png").exists()


def test_input_layers_only_run_and_give_a_finite_loss(transfer_files, tmp_path):
    """Content and style both at ``input`` (the pixels themselves): no network layer is run at all."""
    log = run(tmp_path, transfer_files, {"content_layers": ("input",), "style_layers": ("input",)})
    assert math.isfinite(log["final_loss"]) and log["final_loss"] > 0
    assert log["settings"]["content_layers"] == ["input"] and log["settings"]["style_layers"] == [
        "input"
    ]
    assert (tmp_path / "out.png").exists()


def test_negative_seed_is_a_user_error(transfer_files, tmp_path):
    with pytest.raises(UserError, match=r"^--seed must be a whole number >= 0, got -1$"):
        run(tmp_path, transfer_files, seed=-1)


@pytest.mark.skipif(backend.gpu_available(), reason="a CUDA GPU is available here")
def test_gpu_without_cupy_is_a_device_error(transfer_files, tmp_path):
    with pytest.raises(
        DeviceError, match="device 'gpu' was asked for, but CuPy is not installed or sees no CUDA"
    ):
        run(tmp_path, transfer_files, device="gpu")
    assert issubclass(DeviceError, UserError)


def test_absurd_size_is_refused_before_allocating(transfer_files, tmp_path):
    try:
        run(tmp_path, transfer_files, size=1_000_000_000)
    except MemoryError:  # pragma: no cover - the failure this test guards against
        pytest.fail("size=1e9 raised MemoryError instead of a UserError")
    except UserError as exc:
        assert "--size" in str(exc) and "needs about" in str(exc) and "\n" not in str(exc)
    else:
        pytest.fail("size=1e9 ran")
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"iters": 0}, "--iters must be a positive number"),
        ({"size": -5}, "--size must be a positive number"),
        ({"save_every": -1}, "--save-every must be >= 0"),
        ({"optimizer": "sgd"}, "unknown optimizer 'sgd'"),
        ({"init": "nowhere.png"}, "--init must be content, random, style, noise or an image path"),
        ({"preset": "nope"}, "unknown preset 'nope'"),
    ],
)
def test_bad_options_are_user_errors_before_any_work(transfer_files, tmp_path, kw, match):
    with pytest.raises(UserError, match=match):
        run(tmp_path, transfer_files, **kw)
    assert list(tmp_path.iterdir()) == []


def test_no_style_image_is_a_user_error(transfer_files, tmp_path):
    with pytest.raises(UserError, match="at least one style image is needed"):
        stylize(transfer_files / "content.png", [], options(tmp_path, transfer_files), {})


def test_prepare_sizes_images_and_starts_from_the_content(transfer_files, tmp_path):
    r = prepare(
        transfer_files / "content.png",
        [transfer_files / "style.jpg", transfer_files / "style2.png"],
        options(tmp_path, transfer_files, size=40),
        {"style_blend_weights": [3, 1]},
    )
    assert r.content.shape == (30, 40, 3) and [s.shape for s in r.styles] == [(30, 40, 3)] * 2
    assert r.x0.dtype == np.float64 and r.start_iteration == 0
    np.testing.assert_array_equal(r.x0, r.content)
    assert r.obj.blend.tolist() == [0.75, 0.25]
    assert (r.size, r.iters, r.optimizer, r.init) == (40, 3, "lbfgs-device", "content")
    assert r.log["settings"]["styles"] == [
        str(transfer_files / "style.jpg"),
        str(transfer_files / "style2.png"),
    ]
    assert not (tmp_path / "out.png").exists()  # nothing is written before optimize
    # the objective holds the loaded uint8 images themselves, not float64 copies (1.6 GB each at 8192²)
    assert r.obj.content is r.content and all(a is b for a, b in zip(r.obj.styles, r.styles))


def test_colour_controls_hand_the_objective_float64_images_and_the_estimate_counts_them(
    transfer_files, tmp_path
):
    r = prepare(
        transfer_files / "content.png",
        [transfer_files / "style.jpg"],
        options(tmp_path, transfer_files, size=40, match_color="pca"),
        {},
    )
    assert r.content.dtype == np.uint8 and r.obj.styles[0].dtype == np.float64
    taps = ["relu1_1", "relu5_1"]
    plain, colour = (
        memory.estimate_bytes("vgg16", 4096, 4096, taps, "lbfgs", 1024, image_itemsize=k)
        for k in (1, 9)
    )
    assert colour - plain == pytest.approx(2 * 4096 * 4096 * 3 * 8 * memory._TILED_HEADROOM, abs=1)


@pytest.mark.slow
def test_interrupt_writes_best_image_and_checkpoint_and_resume_continues(
    transfer_files, tmp_path, monkeypatch, capsys
):
    on_iteration = optimize.Progress.on_iteration

    def interrupted(self, it, x, terms):
        on_iteration(self, it, x, terms)
        if it == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(optimize.Progress, "on_iteration", interrupted)
    with pytest.raises(KeyboardInterrupt):
        stylize(
            transfer_files / "content.png",
            [transfer_files / "style.jpg"],
            options(tmp_path, transfer_files, iters=6),
            {},
            argv=["transfer", "c.png", "s.png", "--resume", "stale.npz"],
        )
    err = capsys.readouterr().err
    ck = checkpoint.checkpoint_path(tmp_path / "out.png")
    assert (tmp_path / "out.png").exists() and ck.exists()
    assert (
        f"resume with: minivgg transfer c.png s.png --resume {ck}" in err and "stale.npz" not in err
    )
    image, it = checkpoint.load(ck, (36, 48, 3))
    assert it == 2
    monkeypatch.setattr(optimize.Progress, "on_iteration", on_iteration)
    r = prepare(
        transfer_files / "content.png",
        [transfer_files / "style.jpg"],
        options(tmp_path, transfer_files, iters=4, resume=str(ck)),
        {},
    )
    assert r.start_iteration == 2
    np.testing.assert_array_equal(r.x0, image)
    final, seconds = optimize.optimize(r)
    picture, log = optimize.finish(r, final, seconds)
    assert [row["iteration"] for row in log["iterations"]] == [3, 4]


def test_non_finite_loss_is_a_user_error_naming_the_term(transfer_files, tmp_path):
    with pytest.raises(UserError, match="the style term became non-finite.*lower --style-weight"):
        run(tmp_path, transfer_files, {"style_weight": 1e308})
    assert np.isfinite(np.asarray(Image.open(tmp_path / "out.png"), dtype=float)).all()


def test_names():
    assert OPTIMIZERS == ("lbfgs", "lbfgs-device", "adam") and INITS == (
        "content",
        "random",
        "style",
        "noise",
    )
    assert snapshot_path(Path("dir/out.png"), 100) == Path("dir/out_0100.png")
