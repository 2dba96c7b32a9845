"""``minivgg.engine.masks.PackedMask``: a bool mask as bits (``np.packbits`` order), packed and unpacked whole
or in flat ranges starting and ending anywhere (odd offsets, partial bytes, empty ranges)."""

import dataclasses

import numpy as np
import pytest

from minivgg.engine.masks import PackedMask


@pytest.mark.parametrize("shape", [(1,), (7,), (8,), (9,), (3, 7), (2, 3, 4, 5), (1, 1, 1, 1)])
def test_round_trip(shape, rng):
    mask = rng.random(shape) > 0.5
    packed = PackedMask.pack(mask)
    assert packed.shape == shape and packed.size == mask.size
    assert packed.bits.dtype == np.uint8 and packed.bits.shape == ((mask.size + 7) // 8,)
    np.testing.assert_array_equal(packed.bits, np.packbits(mask.ravel()))  # first element = top bit
    whole = packed.unpack()
    assert whole.dtype == bool and whole.shape == shape
    np.testing.assert_array_equal(whole, mask)
    np.testing.assert_array_equal(packed.unpack(0, mask.size), mask.ravel())


def test_bit_order_is_most_significant_first():
    packed = PackedMask.pack(np.array([True] + [False] * 8 + [True]))
    assert packed.bits.tolist() == [0b10000000, 0b01000000]


@pytest.mark.parametrize("size", [1, 5, 8, 13, 16, 37])
def test_every_partial_range(size, rng):
    mask = rng.random(size) > 0.5
    packed = PackedMask.pack(mask.reshape(1, size))
    for start in range(size + 1):
        for stop in range(start, size + 1):
            part = packed.unpack(start, stop)
            assert part.dtype == bool and part.shape == (stop - start,), (start, stop)
            np.testing.assert_array_equal(
                part, mask[start:stop], err_msg=f"unpack({start}, {stop})"
            )
        rest = packed.unpack(start)  # to the end: flat, or the whole mask in its shape from 0
        assert rest.shape == ((1, size) if start == 0 else (size - start,))
        np.testing.assert_array_equal(rest.ravel(), mask[start:], err_msg=f"unpack({start})")


def test_large_mask_in_blocks_at_odd_offsets(rng):
    mask = rng.random((3, 1001)) > 0.3
    packed = PackedMask.pack(mask)
    flat = mask.ravel()
    edges = [0, 3, 11, 500, 1023, 1024, 2047, 3000, flat.size]
    pieces = [packed.unpack(a, b) for a, b in zip(edges, edges[1:])]
    np.testing.assert_array_equal(np.concatenate(pieces), flat)


def test_is_frozen():
    packed = PackedMask.pack(np.ones(3, bool))
    with pytest.raises(dataclasses.FrozenInstanceError):
        packed.shape = (4,)
