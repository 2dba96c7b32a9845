"""The vocabulary every weights module shares: the ``WeightSet`` a loader returns, the ``Raw`` a
layout reader hands to the loader, the layout and orientation names, and the one-sentence
``WeightsError`` builder (the file, what is wrong, what to run instead).
"""

from __future__ import annotations

import dataclasses

from ...errors import WeightsError
from ..arch import check_arch

LAYOUTS = ("keras-h5", "keras3-weights", "keras0-theano", "onnx")
ORIENTATIONS = ("as-is", "flipped")


@dataclasses.dataclass
class WeightSet:
    """The conv weights of one VGG: ``params[name] = (w, b)``, names ``block1_conv1`` … in network order.

    ``w`` is float32 OIHW ``(out, in, 3, 3)``, C-contiguous, cross-correlation orientation; ``b`` is
    float32 ``(out,)``. ``layout`` is the file layout found, ``orientation`` whether the stored kernels
    were used 'as-is' or 'flipped' (Theano files), ``provenance`` where they came from and how they verified.
    """

    arch: str
    params: dict
    layout: str
    orientation: str = "as-is"
    provenance: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Raw:
    """What a layout reader found: ``layers = [(label, kernel, bias, kernel_order)]`` in network order,
    arrays still h5py datasets or ndarrays in the file's own order ('HWIO' or 'OIHW')."""

    layout: str
    layers: list
    maybe_flipped: bool = False
    provenance: dict = dataclasses.field(default_factory=dict)


def check_arch_name(arch) -> None:
    """Refuse an architecture name other than None, 'vgg16' or 'vgg19'.

    Raises a WeightsError sentence listing the known architectures; returns None otherwise.
    """
    if arch is not None:
        try:
            check_arch(arch)
        except ValueError as exc:  # the same sentence as a WeightsError, so the CLI exits 2 with it
            raise WeightsError(f"{exc}.") from None


def error(path, problem: str, arch, hint: bool = True) -> WeightsError:
    """One sentence: ``weights file PATH PROBLEM; run `minivgg weights fetch ARCH` …``.

    ``hint`` False leaves out the fetch advice (when ``problem`` already says what to do instead);
    ``arch`` None advises vgg16. Returns the error for the caller to raise.
    """
    fix = f"; run `minivgg weights fetch {arch or 'vgg16'}` for verified weights" if hint else ""
    return WeightsError(f"weights file {path} {problem}{fix}.")


def first_line(exc) -> str:
    """The first line of ``str(exc)`` (an exception or a string), for quoting a cause in a sentence.

    Falls back to the exception's type name when its text is empty.
    """
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
