"""``minivgg.style.presets``: the six presets, the CNTK all-layer schedule, override validation (one
``UserError`` sentence per mistake) and the per-preset style normalisations."""

import dataclasses

import pytest

from minivgg.errors import UserError
from minivgg.network.arch import canonical_tap
from minivgg.style.presets import (
    OVERRIDES,
    PRESETS,
    Preset,
    cntk_layers,
    resolve_settings,
    style_norm,
)


def test_the_six_presets():
    assert list(PRESETS) == ["gatys", "keras", "cntk", "harvard", "d2l", "ee8601"]
    assert all(p.name == name for name, p in PRESETS.items())
    assert {p.arch for p in PRESETS.values()} == {"vgg16", "vgg19"}
    assert "name" not in OVERRIDES and "source" not in OVERRIDES and "style_layers" in OVERRIDES


def test_preset_is_keyword_only_and_frozen():
    with pytest.raises(TypeError):
        Preset("x", "y", "vgg16")  # the fields are keyword-only
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRESETS["gatys"].style_weight = 1


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_resolves_to_valid_layers_and_weights(preset):
    s = resolve_settings(preset, {})
    assert s["preset"] == preset
    assert len(s["content_layers"]) == len(s["content_layer_weights"]) >= 1
    assert len(s["style_layers"]) == len(s["style_layer_weights"]) >= 1
    for tap in s["content_layers"] + s["style_layers"]:
        canonical_tap(s["arch"], tap)
    assert all(
        isinstance(w, float) and w >= 0
        for w in s["content_layer_weights"] + s["style_layer_weights"]
    )


def test_cntk_schedule():
    c, cw, s, sw = cntk_layers("vgg16", 0.5)
    T = (1 - 0.5**14) / 0.5
    assert c[0] == "input" and s[0] == "block5_pool" and len(c) == len(s) == 14
    assert (
        cw[0] == pytest.approx(1 / T)
        and cw[1] == pytest.approx(0.5 / T)
        and cw[13] == pytest.approx(0.5**13 / T)
    )
    assert sw[1] == pytest.approx(0.5**13 / T) and sw[13] == pytest.approx(0.5 / T)


def test_overrides_apply_and_layers_get_equal_weights():
    s = resolve_settings(
        "gatys", {"style_layers": "relu1_1,block2_conv1", "tv_weight": 0, "pooling": "max"}
    )
    assert s["style_layers"] == ("relu1_1", "block2_conv1") and s["style_layer_weights"] == (
        0.5,
        0.5,
    )
    assert s["tv_weight"] == 0 and s["pooling"] == "max"
    s = resolve_settings("gatys", {"content_layers": ("input",), "style_layers": ("input",)})
    assert s["content_layer_weights"] == (1.0,) and s["style_layer_weights"] == (1.0,)
    assert (
        resolve_settings("gatys", {"style_weight": None})["style_weight"]
        == PRESETS["gatys"].style_weight
    )


@pytest.mark.parametrize(
    "overrides,match",
    [
        ({"style_weight": -1}, "style_weight must be a finite number"),
        ({"tv_weight": float("nan")}, "tv_weight must be a finite number"),
        ({"content_layers": ("block9_conv1",)}, "unknown layer 'block9_conv1'.*valid names"),
        ({"style_layer_weights": (1, 2)}, "style_layer_weights has 2 values for 5"),
        ({"bogus": 1}, "unknown setting"),
        ({"pooling": "min"}, "pooling must be"),
    ],
)
def test_bad_overrides(overrides, match):
    with pytest.raises(UserError, match=match):
        resolve_settings("gatys", overrides)


def test_bad_preset():
    with pytest.raises(UserError, match="unknown preset 'nope'; valid presets: gatys"):
        resolve_settings("nope", {})


def test_style_norms():
    C, M = 64, 100
    assert style_norm("gatys", C, M, (10, 10)) == pytest.approx(1 / (4 * C**2 * M**2))
    assert style_norm("keras", C, M, (12, 10)) == pytest.approx(
        1 / (4 * 9 * 120**2)
    )  # 3 channels, image H·W
    assert style_norm("harvard", C, M, (10, 10)) == pytest.approx(1 / (4 * M**2))
    assert style_norm("cntk", C, M, (10, 10)) == pytest.approx(1 / (C**2 * M**2))
    assert style_norm("mean", C, M, (10, 10)) == pytest.approx(1 / C**2)
    with pytest.raises(ValueError, match="unknown style norm 'nope'"):
        style_norm("nope", C, M, (10, 10))
