"""``minivgg.tools.reconstruct``: the array API (shapes, range, the loss it minimises, style layers up to a
layer), ``minivgg reconstruct`` end to end on synthetic weights (the files, the sheet, one-sentence
errors that leave nothing behind), and on the real VGG16 that content reconstructions lose pixel
detail with depth (PSNR falls from block1 to block5, Gatys et al. Fig. 1)."""

import numpy as np
import pytest
from PIL import Image

from minivgg.cli import main
from minivgg.errors import UserError
from minivgg.network.vgg import random_vgg
from minivgg.style.objective import Objective
from minivgg.tools.reconstruct import (
    layer_overrides,
    parse_layers,
    psnr,
    reconstruct,
    style_layers_up_to,
)


@pytest.fixture
def image(rng):
    yy, xx = np.mgrid[0:20, 0:24]
    return np.stack([xx * 9, yy * 11, (xx + yy) * 5], -1).clip(0, 255).astype(np.uint8)


def test_reconstruct_returns_one_image_per_layer_in_range(image):
    net = random_vgg("vgg16", seed=0)
    seen = []
    results = reconstruct(
        net, image, ["conv1_2", "block2_conv1"], iters=3, callback=lambda *a: seen.append(a)
    )
    assert [r.layer for r in results] == ["conv1_2", "block2_conv1"]
    for r in results:
        assert r.image.shape == image.shape and r.image.dtype == np.float64
        assert r.image.min() >= 0 and r.image.max() <= 255
        assert 1 <= r.iterations <= 3 and np.isfinite(r.loss) and r.psnr == psnr(r.image, image)
    assert {a[0] for a in seen} == {"conv1_2", "block2_conv1"}
    style = reconstruct(net, image, ["block1_conv2"], mode="style", iters=2, seed=1)[0]
    assert style.psnr is None and style.mode == "style"


def test_content_mode_minimises_one_layers_content_term_only(image):
    net = random_vgg("vgg16", seed=0, dtype=np.float64)
    obj = Objective(
        net, image, image, preset="gatys", **layer_overrides("vgg16", "conv2_1", "content")
    )
    x = np.random.default_rng(0).uniform(0, 255, image.shape)
    assert obj.taps == ["conv2_1"]
    terms = obj.terms(x)
    assert (
        terms["content"] > 0
        and terms["style"] == terms["tv"] == 0 == obj.terms(image.astype(float))["content"]
    )


def test_style_layers_up_to_a_layer_follow_fig1():
    assert style_layers_up_to("vgg16", "block1_conv1") == ("block1_conv1",)
    assert style_layers_up_to("vgg16", "relu3_1") == (
        "block1_conv1",
        "block2_conv1",
        "block3_conv1",
    )
    assert style_layers_up_to("vgg16", "conv3_2") == (
        "block1_conv1",
        "block2_conv1",
        "block3_conv1",
        "conv3_2",
    )
    ov = layer_overrides("vgg16", "block5_conv1", "style")
    assert (
        len(ov["style_layers"]) == 5
        and ov["style_layer_weights"] == (0.2,) * 5
        and ov["tv_weight"] == 0
    )


def test_parse_layers_checks_names_and_drops_duplicates():
    assert parse_layers("vgg16", " conv1_2, relu1_2,conv1_2 ") == ["conv1_2", "relu1_2"]
    with pytest.raises(
        UserError,
        match=r"^--layers: unknown layer 'conv9_1' for vgg16; valid names: input, conv1_1",
    ):
        parse_layers("vgg16", "conv1_2,conv9_1")
    with pytest.raises(UserError, match="at least one layer"):
        parse_layers("vgg16", " , ")


def test_cli_writes_each_layer_and_the_sheet(tmp_path, image, synthetic_weights, capsys):
    Image.fromarray(image).save(tmp_path / "in.png")
    out = tmp_path / "a" / "rec"
    assert (
        main(
            [
                "reconstruct",
                str(tmp_path / "in.png"),
                "--layers",
                "relu1_2,conv2_1",
                "-o",
                str(out),
                "--size",
                "24",
                "--iters",
                "2",
                "--weights",
                str(synthetic_weights["vgg16"]),
                "--conv",
                "im2col",
                "--quiet",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == ["conv2_1.png", "relu1_2.png", "sheet.png"]
    assert np.asarray(Image.open(out / "relu1_2.png")).shape == (20, 24, 3)
    sheet = np.asarray(Image.open(out / "sheet.png"))
    assert sheet.shape[1] >= 3 * 128  # input + two layers, enlarged to 128 px
    assert "relu1_2: loss" in capsys.readouterr().out


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--layers", "conv1_2,bogus"], "--layers: unknown layer 'bogus' for vgg16; valid names:"),
        (["--layers", "conv1_2", "--init", "nowhere.png"], "--init must be noise or an image file"),
        (["--layers", "conv1_2", "--iters", "0"], "--iters"),
        (["--layers", "block5_conv1", "--size", "12"], "needs at least 16 pixels"),
    ],
)
def test_bad_input_is_one_sentence_and_leaves_nothing(
    tmp_path, image, synthetic_weights, capsys, flags, message
):
    Image.fromarray(image).save(tmp_path / "in.png")
    code = main(
        [
            "reconstruct",
            str(tmp_path / "in.png"),
            "-o",
            str(tmp_path / "new" / "rec"),
            "--size",
            "24",
            "--weights",
            str(synthetic_weights["vgg16"]),
            "--quiet",
            *flags,
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "in.png"
    ]  # the folders it would have made are gone


def test_an_output_that_is_the_input_is_refused_before_anything_is_written(
    tmp_path, image, synthetic_weights, capsys
):
    (tmp_path / "rec").mkdir()
    Image.fromarray(image).save(tmp_path / "rec" / "conv1_2.png")
    before = (tmp_path / "rec" / "conv1_2.png").read_bytes()
    assert (
        main(
            [
                "reconstruct",
                str(tmp_path / "rec" / "conv1_2.png"),
                "--layers",
                "conv1_1,conv1_2",
                "-o",
                str(tmp_path / "rec"),
                "--size",
                "24",
                "--weights",
                str(synthetic_weights["vgg16"]),
                "--quiet",
            ]
        )
        == 2
    )
    assert "is the same file as the input" in capsys.readouterr().err
    assert (tmp_path / "rec" / "conv1_2.png").read_bytes() == before and len(
        list((tmp_path / "rec").iterdir())
    ) == 1


@pytest.mark.slow
def test_psnr_falls_with_depth_on_the_real_vgg16(real_weights):
    """Content reconstructions from deeper layers keep less pixel detail (48 px, 50 iterations)."""
    from pathlib import Path

    from minivgg.run.image import load_image, resize_longest

    path = Path(__file__).resolve().parents[2] / "shared" / "images" / "tubingen.jpg"
    if not path.is_file():
        pytest.skip(f"needs the test image {path}")
    img = resize_longest(load_image(path), 48)
    results = reconstruct(
        real_weights, img, ["block1_conv2", "block3_conv2", "block5_conv2"], iters=50
    )
    values = [r.psnr for r in results]
    assert values[0] > values[1] > values[2] and values[0] - values[2] > 5, values
