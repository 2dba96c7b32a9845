"""``minivgg.style.memory``: the peak-memory estimate grows with the image, L-BFGS's history turns float32 and
shrinks for huge images, the largest size that fits a budget, and the thresholds the network uses by
default. (What tiling does to the estimate and the refusal is ``test_tiling.py``.)"""

from minivgg.style import memory
from minivgg.style.memory import (
    estimate_bytes,
    largest_fitting_size,
    lbfgs_history,
    lbfgs_history_dtype,
)


def test_memory_estimate_grows_with_size_and_history_shrinks():
    taps = ["block4_conv2", "block1_conv1", "block5_conv1"]
    sizes = [estimate_bytes("vgg16", n, n, taps) for n in (256, 512, 1024, 2048)]
    assert sizes == sorted(sizes) and sizes[-1] > 3 * sizes[-2] / 1.5
    assert (
        lbfgs_history(512 * 512) == 10
        and lbfgs_history(4096 * 4096) == 5
        and lbfgs_history(8192 * 8192) == 2
    )
    budget = estimate_bytes("vgg16", 768, 1024, taps)
    assert 1000 <= largest_fitting_size("vgg16", 1536, 2048, taps, budget) <= 1024


def test_history_is_float64_while_ten_pairs_fit_in_2_gib_then_float32():
    """The README's table: 10 float64 pairs up to 2048², then float32 pairs (5 at 4096², 2 at 8192²)."""
    assert [lbfgs_history_dtype(n * n) for n in (512, 2048, 2116, 4096, 8192)] == [
        "float64",
        "float64",
        "float32",
        "float32",
        "float32",
    ]
    assert lbfgs_history(2048 * 2048) == 10 and lbfgs_history(2200 * 2200) == 10
    for n in (2200, 4096, 8192):
        assert 2 * lbfgs_history(n * n) * 3 * n * n * 4 <= max(2**31, 2 * 2 * 3 * n * n * 4)
    assert memory.optimizer_bytes(8192 * 8192) < memory.optimizer_bytes(4096 * 4096) * 4


def test_estimate_depends_on_the_deepest_tap_and_the_optimizer():
    shallow = estimate_bytes("vgg16", 512, 512, ["block1_conv1"])
    deep = estimate_bytes("vgg16", 512, 512, ["block1_conv1", "block5_conv1"])
    assert deep > shallow
    assert estimate_bytes("vgg16", 512, 512, ["input"]) < shallow
    assert (
        estimate_bytes("vgg16", 512, 512, ["block1_conv1"], optimizer="adam") < shallow
    )  # no L-BFGS history


def test_largest_fitting_size_is_at_least_16():
    assert largest_fitting_size("vgg16", 4000, 3000, ["block5_conv1"], budget=1) == 16


def test_thresholds():
    assert memory.PACK_MASKS_FROM == 1 << 22 and memory.RECOMPUTE_GRAD_FROM == 1 << 26
    assert memory.available_bytes() is None or memory.available_bytes() > 0
