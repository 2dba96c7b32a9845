"""``minivgg.tools.inspection``: the parts of one evaluation add up (term gradients sum to the total, the
style layers' to the style term's; each part is the objective's own gradient with the other terms
off), and ``minivgg inspect`` writes every picture it lists, each readable and finite, with
one-sentence errors that leave nothing behind."""

import json

import numpy as np
import pytest
from PIL import Image

from minivgg.cli import main
from minivgg.network.vgg import random_vgg
from minivgg.style.objective import Objective
from minivgg.tools.inspection import inspect_objective, term_objective


@pytest.fixture(scope="module")
def objective():
    r = np.random.default_rng(0)
    net = random_vgg("vgg16", seed=0, dtype=np.float64)
    content = r.integers(0, 256, (20, 24, 3)).astype(np.uint8)
    style = r.integers(0, 256, (24, 20, 3)).astype(np.uint8)
    return Objective(
        net,
        content,
        style,
        preset="gatys",
        style_layers=("block1_conv1", "relu2_1", "block3_conv1"),
    )


def test_term_gradients_add_up_to_the_total(objective):
    x = objective.content + np.random.default_rng(1).uniform(-20, 20, objective.shape)
    res = inspect_objective(objective, x, feature_maps=3)
    g = res.grads
    np.testing.assert_allclose(
        g["content"] + g["style"] + g["tv"],
        g["total"],
        rtol=1e-9,
        atol=1e-9 * np.abs(g["total"]).max(),
    )
    layers = [f"style {t}" for t in ("block1_conv1", "relu2_1", "block3_conv1")]
    assert [k for k in g if k.startswith("style ")] == layers
    np.testing.assert_allclose(
        sum(g[k] for k in layers), g["style"], rtol=1e-9, atol=1e-9 * np.abs(g["style"]).max()
    )
    assert res.terms == objective.terms(x) and res.grad_norms["total"] == pytest.approx(
        np.linalg.norm(g["total"])
    )
    target, current = res.grams["relu2_1"]
    assert target.shape == current.shape == (128, 128)
    assert (
        res.features["block4_conv2"].shape == (3, 2, 3) and len(res.channels["block4_conv2"]) == 3
    )


def test_a_term_objective_is_the_objective_with_the_other_terms_off(objective):
    x = objective.content + np.random.default_rng(2).uniform(-20, 20, objective.shape)
    tv_only = term_objective(objective, content=False, style=False)
    value, grad = tv_only.value_and_grad(x)
    assert (
        value == pytest.approx(objective.terms(x)["tv"])
        and tv_only.style_targets is objective.style_targets
    )
    assert (
        objective.settings["tv_weight"] > 0 and objective.settings["style_weight"] > 0
    )  # the original untouched
    layer = term_objective(objective, content=False, style="relu2_1", tv=False)
    assert (
        layer.terms(x)["content"] == 0 and 0 < layer.terms(x)["style"] < objective.terms(x)["style"]
    )


def _images(tmp_path):
    r = np.random.default_rng(3)
    Image.fromarray(r.integers(0, 256, (24, 32, 3)).astype(np.uint8)).save(tmp_path / "c.png")
    Image.fromarray(r.integers(0, 256, (30, 30, 3)).astype(np.uint8)).save(tmp_path / "s.png")


@pytest.mark.slow
def test_cli_writes_every_picture_readable_and_finite(tmp_path, synthetic_weights, capsys):
    pytest.importorskip("matplotlib")
    _images(tmp_path)
    out = tmp_path / "ins"
    assert (
        main(
            [
                "inspect",
                str(tmp_path / "c.png"),
                str(tmp_path / "s.png"),
                "--at",
                str(tmp_path / "s.png"),
                "-o",
                str(out),
                "--size",
                "24",
                "--weights",
                str(synthetic_weights["vgg16"]),
                "--quiet",
            ]
        )
        == 0
    )
    listing = json.loads((out / "inspect.json").read_text())
    names = {
        "grad_total.png",
        "grad_content.png",
        "grad_style.png",
        "grad_tv.png",
        "grad_norms.png",
        "summary.png",
        "grad_style_block1_conv1.png",
        "gram_block5_conv1.png",
        "features_block4_conv2.png",
    }
    assert names <= set(listing["files"]) and set(listing["files"]) | {"inspect.json"} == {
        p.name for p in out.iterdir()
    }
    for name in listing["files"]:
        pixels = np.asarray(Image.open(out / name).convert("RGB"), dtype=np.float64)
        assert pixels.size and np.isfinite(pixels).all() and pixels.std() > 0, name
    assert (
        all(np.isfinite(v) for v in listing["terms"].values()) and listing["terms"]["content"] > 0
    )
    assert "L(x) at" in capsys.readouterr().out


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--at", "nowhere.png"], "--at image 'nowhere.png' does not exist"),
        (["--style-layers", "block1_conv1,nope"], "unknown layer 'nope' for vgg16"),
        (["--style-blend-weights", "1,2"], "--style-blend-weights has 2 values for 1 style images"),
    ],
)
def test_bad_input_is_one_sentence_and_leaves_nothing(
    tmp_path, synthetic_weights, capsys, flags, message
):
    _images(tmp_path)
    code = main(
        [
            "inspect",
            str(tmp_path / "c.png"),
            str(tmp_path / "s.png"),
            "-o",
            str(tmp_path / "new" / "ins"),
            "--size",
            "24",
            "--weights",
            str(synthetic_weights["vgg16"]),
            *flags,
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.png", "s.png"]
