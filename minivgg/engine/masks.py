"""``PackedMask``: a ReLU mask stored as bits, the named type every backend returns and reads."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from .backend import get_array_module


@dataclasses.dataclass(frozen=True)
class PackedMask:
    """The mask ``x > 0`` of an array of ``shape`` as ``bits = xp.packbits(mask.ravel())`` (uint8,
    ``ceil(size / 8)`` bytes, the first element in the most significant bit): 1/8 of a bool mask."""

    bits: Any  # a NumPy or CuPy uint8 array
    shape: tuple

    @classmethod
    def pack(cls, mask) -> PackedMask:
        """Pack a bool mask."""
        return cls(get_array_module(mask).packbits(mask.ravel()), tuple(mask.shape))

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def unpack(self, start: int = 0, stop: int | None = None):
        """The bool mask (flat elements ``start:stop`` when given, else the whole mask in ``shape``)."""
        xp = get_array_module(self.bits)
        if stop is None and start == 0:  # cupy's unpackbits has no ``count``
            return xp.unpackbits(self.bits)[: self.size].reshape(self.shape).view(bool)
        stop = self.size if stop is None else stop
        return xp.unpackbits(self.bits[start // 8 : (stop + 7) // 8])[
            start % 8 : start % 8 + stop - start
        ].view(bool)
