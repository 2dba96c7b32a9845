"""The VGG layer table (``minivgg.network.arch``): conv tables, the op sequence, tap names and aliases, tap
positions, the smallest input a tap allows, a tap's pixel count and its receptive field."""

import pytest

from minivgg.network import arch
from minivgg.network.arch import (
    BLOCK_CHANNELS,
    BLOCKS,
    canonical_tap,
    conv_layer_table,
    deepest,
    layer_names,
    layer_sequence,
    min_input_size,
    receptive_field,
    tap_pixels,
    tap_position,
)


def test_layer_tables():
    t16, t19 = conv_layer_table("vgg16"), conv_layer_table("vgg19")
    assert len(t16) == 13 and len(t19) == 16
    assert t16[0] == ("block1_conv1", 3, 64) and t16[-1] == ("block5_conv3", 512, 512)
    assert t19[-1][0] == "block5_conv4"
    with pytest.raises(ValueError, match="unknown architecture"):
        conv_layer_table("vgg11")


@pytest.mark.parametrize("name", list(BLOCKS))
def test_layer_sequence_is_conv_relu_pairs_then_a_pool_per_block(name):
    seq = layer_sequence(name)
    assert len(seq) == 2 * sum(BLOCKS[name]) + len(BLOCKS[name])
    kinds = "".join(k[0] for k, _ in seq)  # c(onv) r(elu) p(ool)
    assert kinds == "".join("cr" * n + "p" for n in BLOCKS[name])
    assert [n for k, n in seq if k == "relu"] == [t[0] for t in conv_layer_table(name)]
    assert seq[0] == ("conv", "conv1_1") and seq[-1] == ("pool", "block5_pool")
    # every conv's output channels follow BLOCK_CHANNELS
    assert [cout for _, _, cout in conv_layer_table(name)] == [
        c for n, c in zip(BLOCKS[name], BLOCK_CHANNELS) for _ in range(n)
    ]
    with pytest.raises(
        ValueError, match="unknown architecture 'vgg11': expected one of vgg16, vgg19"
    ):
        layer_sequence("vgg11")


def test_aliases():
    assert canonical_tap("vgg16", "relu4_2") == "block4_conv2"
    assert canonical_tap("vgg16", "pool3") == "block3_pool"
    assert canonical_tap("vgg16", "conv4_2") == "conv4_2"
    assert "conv5_4" in layer_names("vgg19") and "conv5_4" not in layer_names("vgg16")
    with pytest.raises(ValueError, match="unknown layer 'conv6_1' for vgg16; valid names: input"):
        canonical_tap("vgg16", "conv6_1")


def test_every_name_maps_to_a_canonical_one():
    canonical = {"input"} | {n for _, n in layer_sequence("vgg19")}
    for name in layer_names("vgg19"):
        assert canonical_tap("vgg19", name) in canonical
    assert arch.conv_param_name("conv3_2") == "block3_conv2"
    assert [arch.block_of(n) for n in ("conv3_2", "block3_conv2", "block3_pool")] == [3, 3, 3]


def test_tap_position_and_deepest():
    assert tap_position("vgg16", "input") == -1
    assert tap_position("vgg16", "conv1_1") == 0 and tap_position("vgg16", "relu1_1") == 1
    assert tap_position("vgg16", "pool1") == 4
    assert tap_position("vgg16", "block5_pool") == len(layer_sequence("vgg16")) - 1
    assert deepest("vgg16", []) == deepest("vgg16", ["input"]) == -1
    assert deepest("vgg16", ["relu1_1", "block2_pool", "conv2_1"]) == tap_position(
        "vgg16", "block2_pool"
    )


def test_min_input_size():
    assert min_input_size("vgg16", ["block1_conv1"]) == 1
    assert min_input_size("vgg16", ["block4_conv2"]) == 8
    assert min_input_size("vgg16", ["block5_pool"]) == 32
    assert min_input_size("vgg16", ["input"]) == min_input_size("vgg16", []) == 1


def test_tap_pixels_floor_each_pool():
    assert tap_pixels("vgg16", "input", 33, 21) == 33 * 21
    assert tap_pixels("vgg16", "block1_conv2", 33, 21) == 33 * 21
    assert tap_pixels("vgg16", "pool1", 33, 21) == 16 * 10
    assert tap_pixels("vgg16", "relu2_1", 33, 21) == 16 * 10
    assert (
        tap_pixels("vgg16", "block4_conv2", 33, 21) == 4 * 2
    )  # 33 -> 16 -> 8 -> 4, 21 -> 10 -> 5 -> 2
    assert tap_pixels("vgg16", "block5_pool", 33, 21) == 1 * 0


def test_receptive_field():
    assert receptive_field("vgg16", ["block5_conv1"]) == (132, 16)
    assert receptive_field("vgg16", ["input"]) == receptive_field("vgg16", []) == (1, 1)
    assert receptive_field("vgg16", ["conv1_1"]) == (3, 1)
    assert receptive_field("vgg16", ["block1_pool"]) == (6, 2)
    # the published VGG16 values: conv5_3 sees 196 pixels, pool5 212 (stride 32)
    assert receptive_field("vgg16", ["block5_conv3"]) == (196, 16)
    assert receptive_field("vgg16", ["pool5"]) == (212, 32)
    # the deepest tap decides; aliases count as their canonical names
    assert receptive_field("vgg16", ["relu1_1", "relu5_1", "conv2_2"]) == (132, 16)
    assert (
        receptive_field("vgg19", ["block5_conv4"])[0]
        > receptive_field("vgg16", ["block5_conv3"])[0]
    )
