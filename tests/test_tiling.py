"""``minivgg.style.tiling``: the halo and alignment derived from the layer table (and checked against the
network's own gradient support), the tile grid, the tile size's validation, banded TV, and the tiled
objective against the untiled one on the real VGG16 weights (the VGG19 presets on synthetic float64
ones) — every preset, masks, targets, non-square images whose sides are no multiple of the tile: value
to 1e-5 relative, gradient to 1e-4 relative L2.
Then the memory model with tiles, the refusal that suggests ``--tile-size``, ``transfer --tile-size``
end to end and ``minivgg.stylize(tile_size=…)``. The finite-difference checks of tiled objectives are
rows of ``minivgg gradcheck`` (``tests/test_checks.py``)."""

import json

import numpy as np
import pytest

import minivgg
from minivgg.cli import main
from minivgg.errors import UserError
from minivgg.network.arch import receptive_field
from minivgg.network.vgg import load_vgg, random_vgg
from minivgg.style import losses, memory, tiling
from minivgg.style.objective import Objective
from minivgg.style.presets import PRESETS, resolve_settings

GATYS_TAPS = [
    "block4_conv2",
    "block1_conv1",
    "block2_conv1",
    "block3_conv1",
    "block4_conv1",
    "block5_conv1",
]
CNTK_TAPS = list(resolve_settings("cntk", {})["content_layers"]) + list(
    resolve_settings("cntk", {})["style_layers"]
)


def rel(a, b):
    return abs(a - b) / abs(b)


def rel_l2(a, b):
    return float(np.linalg.norm(np.asarray(a) - b) / np.linalg.norm(b))


# ---------------------------------------------------------------------------------- geometry


@pytest.mark.parametrize(
    "arch,taps,halo,align",
    [
        ("vgg16", GATYS_TAPS, 64, 16),  # field 132: reach 58 -> 64
        ("vgg16", CNTK_TAPS, 96, 32),  # block5_pool: field 212, reach 90 -> 96
        ("vgg16", ["block2_conv2", "block5_conv3"], 96, 16),  # keras: reach 90 -> 96
        ("vgg19", ["conv4_4", "conv5_1"], 80, 16),  # d2l: reach 70 -> 80
        ("vgg16", ["block3_conv1"], 12, 4),
        ("vgg16", ["block1_pool"], 2, 2),
        ("vgg16", ["block1_conv1"], 1, 1),
        ("vgg16", ["input"], 0, 1),
    ],
)
def test_halo_is_the_reach_rounded_up_to_the_alignment(arch, taps, halo, align):
    size, stride = receptive_field(arch, taps)
    assert tiling.halo_and_alignment(arch, taps) == (halo, align)
    reach = (size - stride) // 2
    assert stride == align and halo % align == 0 and reach <= halo < reach + align
    assert tiling.tap_stride(arch, taps[-1]) <= align


@pytest.mark.parametrize("tap", ["block2_conv1", "block3_pool", "conv4_1"])
def test_reach_is_the_support_of_one_features_input_gradient(tap):
    """The gradient of one feature w.r.t. the input is nonzero (beyond rounding) exactly on
    ``[s·p − a, s·p + s − 1 + a]`` (random float64 weights, average pooling): the derivation's reach a
    is the network's."""
    net = random_vgg("vgg16", seed=3, dtype=np.float64)
    size, stride = receptive_field("vgg16", [tap])
    reach = (size - stride) // 2
    n = 2 * reach + 4 * stride
    y = np.random.default_rng(0).standard_normal((1, 3, n, n)) * 50
    feats, tape = net.features(y, [tap], "avg")
    p = feats[tap].shape[2] // 2
    g = np.zeros_like(feats[tap])
    g[0, :, p, p] = 1.0
    cols = np.abs(net.backward(tape, {tap: g})[0]).sum(axis=(0, 2))
    # F(4x4) Winograd cancels inside each 6x6 tile only to rounding (~1e-16 of the largest value)
    support = np.nonzero(cols > 1e-10 * cols.max())[0]
    assert (support.min(), support.max()) == (stride * p - reach, stride * p + stride - 1 + reach)


def test_spans_partition_the_side_and_windows_are_aligned():
    for n, tile, halo in [(150, 64, 64), (97, 64, 64), (130, 32, 96), (64, 64, 64), (40, 100, 16)]:
        spans = tiling.spans(n, tile, halo)
        assert [c0 for c0, *_ in spans] == list(range(0, n, tile)) and spans[-1][1] == n
        assert all(c1 == c0b for (_, c1, *_), (c0b, *_) in zip(spans, spans[1:]))
        for c0, c1, w0, w1 in spans:
            assert w0 == max(0, c0 - halo) and w1 == min(n, c1 + halo)
    tiles = tiling.grid(150, 97, 64, 64)
    assert len(tiles) == 6 and tiles[-1].window == (slice(64, 150), slice(0, 97))
    # the owned features of every tap partition the whole grid, the last tile up to the floored edge
    for stride in (1, 2, 16):
        hit = np.zeros((150 // stride, 97 // stride), int)
        for t in tiles:
            _, (r, c) = t.owned(stride)
            hit[r, c] += 1
        assert np.all(hit == 1)


@pytest.mark.parametrize("bad", [0, -64, 8, 15, 1.5, "64", True, float("nan"), None])
def test_bad_tile_size_is_one_sentence(bad):
    with pytest.raises(
        UserError, match=r"^the tile size must be a whole number of pixels, at least 16 .*got"
    ) as e:
        tiling.check_tile_size(bad, "vgg16", GATYS_TAPS)
    assert "\n" not in str(e.value)


def test_tile_size_rounds_down_to_the_alignment():
    assert tiling.check_tile_size(100, "vgg16", GATYS_TAPS) == 96
    assert tiling.check_tile_size(64.0, "vgg16", GATYS_TAPS) == 64
    assert tiling.check_tile_size(np.int64(1024), "vgg16", CNTK_TAPS) == 1024
    with pytest.raises(UserError, match="at least 32"):
        tiling.check_tile_size(16, "vgg16", CNTK_TAPS)


@pytest.mark.parametrize("kind", losses.TV_KINDS)
def test_banded_tv_is_the_whole_image_tv(kind, rng):
    x = rng.uniform(0, 255, (23, 17, 3))
    value, grad = losses.tv_loss(x, kind)
    for band_elements in (
        1,
        17 * 3 * 5,
        10**9,
    ):  # one row, 5 rows (not dividing 23), everything at once
        out = np.full_like(x, 0.5)
        got = tiling.tv_into(x, kind, 2.0, out, band_elements)
        assert got == pytest.approx(2 * value, rel=1e-12)
        np.testing.assert_allclose(out - 0.5, 2 * grad, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------- tiled against untiled


@pytest.fixture(scope="module")
def vgg19(synthetic_weights):
    """The synthetic VGG19 in float64. In float32 a tile's forward differs from the whole image's by
    rounding (float32 errs by up to ~2.5e-6 of a block4 map's largest value), so a ReLU input or a
    max-pool window's top two values closer than that to their kink can land on either side of it: the
    objective has a kink within rounding there, and either side's gradient is right. With these weights
    and images one of each did: d2l's block4_pool window, top two 302.4990 and 302.5002 in float64 (float32
    errs by up to 2.4e-3 there), and ee8601's conv4_1 input, +1.6e-5 in float64, -9.2e-5 untiled and
    +2.2e-4 tiled in float32; the gradients then differed by 2.2 % and 0.07 %. In float64 they agree to
    2e-14: no kink lies within its rounding. (Exact ties, all-zero windows after a ReLU, are harmless:
    the ReLU's mask stops the gradient whichever zero takes it.)"""
    return load_vgg("vgg19", weights=str(synthetic_weights["vgg19"])).astype(np.float64)


def images(rng, shape=(150, 97, 3), style_shape=(120, 130, 3)):
    content = rng.integers(0, 256, shape).astype(np.uint8)
    style = rng.integers(0, 256, style_shape).astype(np.uint8)
    return content, style, np.clip(content + rng.uniform(-30, 30, shape), 0, 255)


def assert_same(untiled, tiled, x):
    v0, g0 = untiled.value_and_grad(x)
    v1, g1 = tiled.value_and_grad(x)
    assert rel(v1, v0) < 1e-5 and rel_l2(g1, g0) < 1e-4
    for term in ("content", "style", "tv"):
        assert tiled.last_terms[term] == pytest.approx(
            untiled.last_terms[term], rel=1e-5, abs=1e-9 * v0
        )
    assert g1.dtype == np.float64 and g1.shape == x.shape


@pytest.mark.parametrize(
    "preset", [pytest.param(p, marks=[] if p == "gatys" else [pytest.mark.slow]) for p in PRESETS]
)
def test_tiled_objective_equals_untiled_for_every_preset(preset, request, rng):
    """150x97 (no side a multiple of the tile) in 64-pixel tiles: six tiles, windows that end inside the
    image on both axes; avg and max pooling, plain, centred and normalised Grams, cntk's 27 taps."""
    net = request.getfixturevalue("vgg19" if PRESETS[preset].arch == "vgg19" else "real_weights")
    content, style, x = images(rng)
    tiled = Objective(net, content, style, preset=preset, tile_size=64)
    assert len(tiled.tiling.tiles(150, 97)) == 6
    assert_same(Objective(net, content, style, preset=preset), tiled, x)


@pytest.mark.slow
@pytest.mark.parametrize(
    "preset,mode", [("gatys", "simple"), ("cntk", "inside"), ("harvard", "all")]
)
def test_tiled_regions_equal_untiled(preset, mode, real_weights, rng):
    """Guided Grams: two styles with content masks (and a style mask), every mask propagation."""
    content, style, x = images(rng)
    style2 = rng.integers(0, 256, (90, 100, 3)).astype(np.uint8)
    left = np.zeros((150, 97))
    left[:, :40] = 1
    left[:70, 40:60] = 0.5
    style_mask = np.ones((90, 100))
    style_mask[:30] = 0
    kw = dict(content_masks=[left, 1 - left], style_masks=[None, style_mask], mask_mode=mode)
    tiled = Objective(real_weights, content, [style, style2], preset=preset, tile_size=48, **kw)
    assert_same(Objective(real_weights, content, [style, style2], preset=preset, **kw), tiled, x)


def test_targets_are_built_tile_by_tile(real_weights, rng, monkeypatch):
    """Content features and target Grams (a style larger than a tile, and another size than the content)
    equal the untiled ones, and no forward pass ever sees more than a tile's window."""
    content, style, _ = images(rng, (150, 97, 3), (140, 160, 3))
    untiled = Objective(real_weights, content, style, preset="gatys")
    seen = []
    visit = type(real_weights).visit
    monkeypatch.setattr(
        type(real_weights),
        "visit",
        lambda self, y, *a, **k: (seen.append(y.shape), visit(self, y, *a, **k)),
    )
    tiled = Objective(real_weights, content, style, preset="gatys", tile_size=32)
    assert (
        max(s[2] for s in seen) <= 32 + 2 * 64
        and max(s[3] for s in seen) <= 32 + 2 * 64
        and len(seen) > 2
    )
    for t, P in untiled.content_targets.items():
        assert rel_l2(tiled.content_targets[t], P) < 1e-5
    for t, A in untiled.style_targets.items():
        assert rel_l2(tiled.style_targets[t], A) < 1e-5


def test_an_evaluation_runs_windows_only(real_weights, rng, monkeypatch):
    content, style, x = images(rng, (150, 97, 3), (64, 64, 3))
    obj = Objective(real_weights, content, style, preset="gatys", tile_size=32)
    sizes = []
    forward = type(real_weights).loss_and_input_grad
    monkeypatch.setattr(
        type(real_weights),
        "loss_and_input_grad",
        lambda self, y, *a, **k: (sizes.append(y.shape[2:]), forward(self, y, *a, **k))[1],
    )
    obj.value_and_grad(x)
    assert (
        len(sizes) == len(obj.tiling.tiles(150, 97)) == 20
        and max(max(s) for s in sizes) <= 32 + 2 * 64
    )


def test_one_tile_is_the_untiled_evaluation(real_weights, rng):
    content, style, x = images(rng, (60, 50, 3), (40, 40, 3))
    v0, g0 = Objective(real_weights, content, style).value_and_grad(x)
    v1, g1 = Objective(real_weights, content, style, tile_size=64).value_and_grad(x)
    assert v1 == v0 and np.array_equal(g1, g0)


def test_objective_refuses_a_bad_tile_size(rng):
    content, style, _ = images(rng, (40, 40, 3), (40, 40, 3))
    with pytest.raises(UserError, match="at least 32"):
        Objective(random_vgg("vgg16"), content, style, preset="cntk", tile_size=16)


# -------------------------------------------------------------------------- memory model


def test_tiled_estimate_is_bounded_by_the_tile_beside_whole_image_arrays():
    content = ["block4_conv2"]
    est = lambda n, t=None: memory.estimate_bytes("vgg16", n, n, GATYS_TAPS, "lbfgs", t, content)
    assert est(4096, 1024) < est(4096) / 2 and est(8192, 1024) < est(8192) / 3
    assert est(4096, 256) < est(4096, 512) < est(4096, 1024) < est(4096, 2048)
    assert est(512, 1024) == est(512)  # one tile: untiled
    assert est(8192, 1024) < 18 * 2**30  # the measured run (bench/results.md, "Tiled evaluation")
    assert (
        memory.largest_fitting_tile(
            "vgg16", 8192, 8192, GATYS_TAPS, est(8192, 1000), "lbfgs", content
        )
        == 992
    )
    assert (
        memory.largest_fitting_tile("vgg16", 8192, 8192, GATYS_TAPS, 2**30, "lbfgs", content)
        is None
    )


@pytest.mark.parametrize("available,tile_hint", [(20 * 2**30, True), (8 * 2**30, False)])
def test_refusal_suggests_a_tile_size_that_fits(monkeypatch, available, tile_hint):
    monkeypatch.setattr(memory, "available_bytes", lambda: available)
    settings = resolve_settings("gatys", {})
    with pytest.raises(UserError, match="needs about") as e:
        memory.check_fits(settings, (8192, 8192), "lbfgs", lambda fits: f"--size {fits} or smaller")
    msg = str(e.value)
    assert "--size" in msg and "\n" not in msg and ("--tile-size" in msg) == tile_hint
    if tile_hint:
        tile = int(msg.split("--tile-size ")[1].split()[0])
        assert (
            tile % 16 == 0
            and memory.estimate_bytes(
                "vgg16", 8192, 8192, GATYS_TAPS, "lbfgs", tile, ["block4_conv2"]
            )
            <= 0.9 * available
        )
        memory.check_fits(
            settings, (8192, 8192), "lbfgs", str, tile_size=tile
        )  # that tile fits: no error


# -------------------------------------------------------------------------- transfer, api


def test_transfer_with_tiles_follows_the_untiled_run(small_transfer, tmp_path):
    """A 33x40 run in 16-pixel tiles (six tiles) takes the untiled run's path: the same losses."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    plain = small_transfer(tmp_path / "a")
    tiled = small_transfer(tmp_path / "b", "--tile-size", "16")
    assert [r["loss"] for r in tiled] == pytest.approx([r["loss"] for r in plain], rel=1e-4)
    assert json.loads((tmp_path / "b" / "log.json").read_text())["settings"]["tile_size"] == 16


@pytest.mark.parametrize("value", ["0", "-16", "8", "1.5", "big"])
def test_transfer_bad_tile_size_is_exit_2_and_one_line(value, transfer_files, tmp_path, capsys):
    code = main(
        [
            "transfer",
            str(transfer_files / "content.png"),
            str(transfer_files / "style.jpg"),
            "-o",
            str(tmp_path / "out.png"),
            "--weights",
            str(transfer_files / "vgg16.h5"),
            "--tile-size",
            value,
            "--iters",
            "1",
            "--quiet",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "tile size must be a whole number" in err
    assert not (tmp_path / "out.png").exists()


def test_stylize_takes_a_tile_size(synthetic_weights, rng):
    content = rng.integers(0, 256, (40, 48, 3)).astype(np.uint8)
    style = rng.integers(0, 256, (40, 40, 3)).astype(np.uint8)
    kw = dict(size=48, iters=2, weights=str(synthetic_weights["vgg16"]), all_iters=True)
    tiled = minivgg.stylize(content, style, tile_size=16, **kw)
    assert tiled.shape == (40, 48, 3) and tiled.dtype == np.uint8
    assert np.abs(tiled.astype(int) - minivgg.stylize(content, style, **kw)).max() <= 2
    with pytest.raises(UserError, match="tile size"):
        minivgg.stylize(content, style, tile_size=0, **kw)
