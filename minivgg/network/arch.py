"""The VGG16/VGG19 layer table: pure data and arithmetic, no arrays.

Names (``../shared/spec/objective.md``): ``input`` is the preprocessed network input; ``convB_K`` a
convolution output before its ReLU; ``blockB_convK`` (alias ``reluB_K``) after it; ``blockB_pool``
(alias ``poolB``) a 2x2/stride-2 pooling output. Every conv is 3x3, stride 1, pad 1. ``weights``
reads files against ``conv_layer_table``; ``vgg`` runs ``layer_sequence``; ``presets``, ``objective``
and ``memory`` resolve tap names and sizes here.
"""

from __future__ import annotations

BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
BLOCK_CHANNELS = (64, 128, 256, 512, 512)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def check_arch(arch: str) -> None:
    """ValueError naming the known architectures unless ``arch`` is one of them."""
    if arch not in BLOCKS:
        raise ValueError(f"unknown architecture {arch!r}: expected one of {', '.join(BLOCKS)}")


def conv_layer_table(arch: str) -> list[tuple[str, int, int]]:
    """``[(name, in_channels, out_channels), …]`` for every conv of ``arch`` in network order
    (Keras names ``block1_conv1`` …); kernels are 3x3, stride 1, pad 1."""
    check_arch(arch)
    table, cin = [], 3
    for b, (n, cout) in enumerate(zip(BLOCKS[arch], BLOCK_CHANNELS), start=1):
        for k in range(1, n + 1):
            table.append((f"block{b}_conv{k}", cin, cout))
            cin = cout
    return table


def layer_sequence(arch: str) -> list[tuple[str, str]]:
    """The full op chain as ``[(kind, canonical_name)]``: kind is 'conv', 'relu' or 'pool';
    the canonical name of a conv output is ``convB_K``, of a ReLU ``blockB_convK``, of a pool ``blockB_pool``."""
    check_arch(arch)
    seq = []
    for b, n in enumerate(BLOCKS[arch], start=1):
        for k in range(1, n + 1):
            seq.append(("conv", f"conv{b}_{k}"))
            seq.append(("relu", f"block{b}_conv{k}"))
        seq.append(("pool", f"block{b}_pool"))
    return seq


def conv_param_name(conv_name: str) -> str:
    """The weights' name of a conv tap: ``conv3_2`` -> ``block3_conv2``."""
    block, k = conv_name[4:].split("_")
    return f"block{block}_conv{k}"


def block_of(name: str) -> int:
    """The block number of a canonical tap name (``conv3_2``, ``block3_conv2``, ``block3_pool`` -> 3)."""
    return int(name[4] if name.startswith("conv") else name[5])


def _aliases(kind: str, name: str) -> list[str]:
    if kind == "relu":  # block3_conv2 -> relu3_2
        return [f"relu{name[5]}_{name.split('conv')[1]}"]
    if kind == "pool":
        return [f"pool{name[5]}"]
    return []


def layer_names(arch: str) -> list[str]:
    """Every valid tap name of ``arch`` (canonical names and aliases)."""
    names = ["input"]
    for kind, name in layer_sequence(arch):
        names.append(name)
        names.extend(_aliases(kind, name))
    return names


def canonical_tap(arch: str, tap: str) -> str:
    """Map an alias (``relu4_2``, ``pool3``) to its canonical name; ValueError listing valid names otherwise."""
    if tap == "input":
        return tap
    for kind, name in layer_sequence(arch):
        if tap == name or tap in _aliases(kind, name):
            return name
    raise ValueError(
        f"unknown layer {tap!r} for {arch}; valid names: {', '.join(layer_names(arch))}"
    )


def tap_position(arch: str, tap: str) -> int:
    """Index of ``tap`` in ``layer_sequence(arch)``; -1 for ``input``."""
    name = canonical_tap(arch, tap)
    return -1 if name == "input" else [n for _, n in layer_sequence(arch)].index(name)


def deepest(arch: str, taps) -> int:
    """The largest ``tap_position`` of ``taps`` (-1 when they are all ``input`` or there are none)."""
    return max((tap_position(arch, t) for t in taps), default=-1)


def min_input_size(arch: str, taps) -> int:
    """Smallest image side whose pooling chain still leaves at least one pixel at the deepest tap."""
    pools = sum(1 for kind, _ in layer_sequence(arch)[: deepest(arch, taps) + 1] if kind == "pool")
    return 2**pools


def tap_pixels(arch: str, tap: str, h: int, w: int) -> int:
    """M = H_l · W_l of ``tap`` for an (h, w) input: each pool before it floors both sides by 2."""
    for kind, _ in layer_sequence(arch)[: tap_position(arch, tap) + 1]:
        if kind == "pool":
            h, w = h // 2, w // 2
    return h * w


def receptive_field(arch: str, taps) -> tuple[int, int]:
    """``(size, stride)`` in input pixels of one feature at the deepest of ``taps``: each 3x3 conv
    widens the field by 2·stride, each 2x2/s2 pool by stride and then doubles the stride."""
    size, stride = 1, 1
    for kind, _ in layer_sequence(arch)[: deepest(arch, taps) + 1]:
        if kind == "conv":
            size += 2 * stride
        elif kind == "pool":
            size += stride
            stride *= 2
    return size, stride
