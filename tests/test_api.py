"""``minivgg.stylize`` (arrays, PIL images, paths) and the creative controls end to end: colours,
coarse-to-fine scales (with resume at a scale), regions. The ``real_weights`` tests run the
verified VGG16 at small sizes."""

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

import minivgg
from minivgg.cli import main
from minivgg.errors import UserError
from minivgg.run import checkpoint


def _chroma(img):
    return np.asarray(Image.fromarray(np.asarray(img, dtype=np.uint8)).convert("YCbCr")).astype(
        int
    )[:, :, 1:]


def _content(size=48):
    yy, xx = np.mgrid[0:size, 0:size]
    return np.stack([xx * 4.0, yy * 4.0, 255 - (xx + yy) * 2.0], -1).clip(0, 255).astype(np.uint8)


def test_stylize_on_arrays_pil_and_paths(transfer_files, rng):
    weights = str(transfer_files / "vgg16.h5")
    content = np.asarray(Image.open(transfer_files / "content.png"))
    style = Image.open(transfer_files / "style.jpg")
    out = minivgg.stylize(content, style, size=32, iters=2, weights=weights)
    assert out.shape == (24, 32, 3) and out.dtype == np.uint8
    out2 = minivgg.stylize(
        content.astype(np.float64),
        [style, transfer_files / "style2.png"],
        size=32,
        iters=2,
        weights=weights,
        original_colors=True,
    )
    assert out2.shape == (24, 32, 3)
    assert (
        np.abs(
            _chroma(out2)
            - _chroma(np.asarray(Image.fromarray(content).resize((32, 24), Image.LANCZOS)))
        ).max()
        <= 1
    )


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"match_color": "lab"}, "unknown colour matching"),
        ({"scales": (32, 0)}, "must be a positive number"),
        ({"iters": (2, 2)}, "2 values for 1 scales"),
        ({"content_masks": [np.ones((4, 4))] * 2}, "2 masks for 1 style images"),
        ({"original_colors": True, "luminance_only": True}, "choose one"),
        ({"seed": -1}, "--seed must be"),
    ],
)
def test_stylize_raises_the_cli_sentences(transfer_files, kwargs, match):
    with pytest.raises(UserError, match=match):
        minivgg.stylize(
            transfer_files / "content.png",
            transfer_files / "style.jpg",
            weights=str(transfer_files / "vgg16.h5"),
            **{"size": 32, "iters": 1, **kwargs},
        )
    with pytest.raises(UserError, match="must be a path, a PIL image or an"):
        minivgg.stylize(
            np.zeros((4, 4)), transfer_files / "style.jpg", weights=str(transfer_files / "vgg16.h5")
        )


@pytest.mark.slow
def test_scales_give_each_scale_its_size_and_resume_continues_at_its_scale(
    transfer_files, tmp_path
):
    out, log = tmp_path / "o.png", tmp_path / "log.json"
    args = [
        "transfer",
        str(transfer_files / "content.png"),
        str(transfer_files / "style.jpg"),
        "-o",
        str(out),
        "--weights",
        str(transfer_files / "vgg16.h5"),
        "--scales",
        "24,32,48",
        "--iters",
        "2,2,3",
        "--save-every",
        "1",
        "--log",
        str(log),
        "--quiet",
    ]
    assert main(args) == 0
    assert Image.open(out).size == (48, 36)
    assert Image.open(tmp_path / "o_s1_0002.png").size == (24, 18)
    assert Image.open(tmp_path / "o_s2_0001.png").size == (32, 24)
    data = json.loads(log.read_text())
    assert data["settings"]["scales"] == [24, 32, 48] and data["settings"]["iters"] == [2, 2, 3]
    assert [(r["scale"], r["iteration"]) for r in data["iterations"]] == [
        (1, 1),
        (1, 2),
        (2, 1),
        (2, 2),
        (3, 1),
        (3, 2),
        (3, 3),
    ]
    ck = checkpoint.save(tmp_path / "ck.npz", np.full((24, 32, 3), 128.0), 1, {}, 0, scale=1)
    assert main([*args, "--resume", str(ck)]) == 0
    resumed = json.loads(log.read_text())
    assert [(r["scale"], r["iteration"]) for r in resumed["iterations"]] == [
        (2, 2),
        (3, 1),
        (3, 2),
        (3, 3),
    ]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["original_colors", "luminance_only"])
def test_real_weights_colour_modes_keep_the_content_chroma(real_weights, mode):
    content = _content()
    style = np.zeros((48, 48, 3), np.uint8)
    style[::4] = (255, 40, 0)  # red and black stripes: colours that would otherwise move in
    out = minivgg.stylize(content, style, size=48, iters=15, **{mode: True})
    assert np.abs(_chroma(out) - _chroma(content)).max() <= 1
    plain = minivgg.stylize(content, style, size=48, iters=15)
    assert (
        np.abs(_chroma(plain) - _chroma(content)).max() > 10
    )  # without the mode the colours do change


@pytest.mark.slow
def test_real_weights_regions_take_their_own_styles_colours(real_weights):
    content = np.full((64, 64, 3), 128, np.uint8)
    red, blue = np.zeros((64, 64, 3), np.uint8), np.zeros((64, 64, 3), np.uint8)
    red[::3, :, 0], blue[:, ::3, 2] = 255, 255
    left = np.zeros((64, 64))
    left[:, :32] = 1
    out = minivgg.stylize(
        content, [red, blue], size=64, iters=30, content_masks=[left, 1 - left], content_weight=1e-3
    ).astype(float)
    l, r = out[:, :24].mean(axis=(0, 1)), out[:, 40:].mean(axis=(0, 1))
    # the red style's region is redder and the blue one's bluer (deep taps' receptive fields span both)
    assert l[0] - r[0] > 25 and r[2] - l[2] > 10, (l, r)


@pytest.mark.slow
def test_real_weights_scales_retarget_and_match_color(real_weights, tmp_path):
    out = minivgg.stylize(
        _content(64),
        np.asarray(Image.fromarray(_content(40)[::-1]).rotate(90)),
        size=64,
        scales=(32, 64),
        iters=(10, 5),
        match_color="sym",
    )
    assert out.shape == (64, 64, 3)


def test_the_default_route_starts_coarse_and_the_single_scale_is_one_flag_away(transfer_files):
    """No --scales, --min-scale or --iters: the preset's ``coarse`` scales (those of at least
    ``MIN_COARSE_SIDE``) come first; --single-scale or any chosen --iters give one scale."""
    from minivgg.run.options import RunOptions
    from minivgg.run.transfer import execute

    content, style = transfer_files / "content.png", transfer_files / "style.jpg"
    route = {"iters": 3, "coarse": (4, 2), "coarse_iters": (2, 2), "history": 30}
    shallow = {"content_layers": "relu2_2", "style_layers": "relu1_1,relu2_1", **route}

    def scales(**kw):
        opts = RunOptions(
            output=None, size=128, quiet=True, weights=str(transfer_files / "vgg16.h5")
        )
        _, log = execute(content, [style], dataclasses.replace(opts, **kw), shallow)
        rows = (
            [(r["scale"], r["iteration"]) for r in log["iterations"]]
            if "scale" in log["iterations"][0]
            else len(log["iterations"])
        )
        return log["settings"]["scales"], log["settings"]["iters"], rows, log["settings"]["history"]

    # 128/4 = 32 px is below MIN_COARSE_SIDE (64): only the 64 px scale runs before the output's
    assert scales() == ([64, 128], [2, 3], [(1, 1), (1, 2), (2, 1), (2, 2), (2, 3)], 30)
    assert scales(single_scale=True) == ([128], [3], 3, 30)
    assert scales(iters=2) == ([128], [2], 2, 30)
