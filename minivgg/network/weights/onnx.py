"""The ONNX reader: the conv weights of a VGG exported to ONNX (``Conv`` nodes in graph order, weight
and bias from initializers or ``Constant`` nodes, through ``Identity`` aliases). Needs the optional
``onnx`` package (``pip install 'minivgg[onnx]'``).
"""

from __future__ import annotations

from ...errors import WeightsError
from .base import Raw, error, first_line


def _import_onnx():
    """``(onnx, onnx.numpy_helper)``, or None when the onnx package is not installed."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        return None
    return onnx, numpy_helper


def read_onnx(path, data: bytes, arch) -> Raw:
    """The Conv layers of the ONNX model ``data`` as a ``Raw`` (kernels OIHW ndarrays, network order).

    Weight = input[1], bias = input[2] of every Conv node. ``path`` is the name the errors give;
    a missing onnx package, a corrupt model, external data or a non-constant weight is a
    WeightsError sentence.
    """
    mods = _import_onnx()
    if mods is None:
        raise error(
            path,
            "is an ONNX model, and reading ONNX needs the onnx package: pip install 'minivgg[onnx]'",
            arch,
            hint=False,
        )
    try:
        nodes, tensors, prov = _onnx_graph(data, mods)
    except WeightsError:
        raise
    except Exception as exc:  # protobuf DecodeError and friends
        raise error(
            path,
            f"is a truncated or corrupt ONNX model ({type(exc).__name__}: {first_line(exc)})",
            arch,
        ) from None
    alias = {out: ins[0] for op, ins, outs in nodes if op == "Identity" and ins for out in outs[:1]}

    def tensor(name, role, node_no):
        seen = set()
        while name in alias and name not in tensors and name not in seen:
            seen.add(name)
            name = alias[name]
        if name not in tensors:
            raise error(
                path,
                f"has Conv node {node_no} whose {role} {name!r} is not a constant initializer",
                arch,
            )
        return tensors[name](path, arch)

    layers, conv_no = [], 0
    for op, ins, _outs in nodes:
        if op != "Conv":
            continue
        conv_no += 1
        if len(ins) < 3 or not ins[2]:
            raise error(path, f"has Conv node {conv_no} without a bias input", arch)
        layers.append(
            (
                f"Conv #{conv_no} ({ins[1]})",
                tensor(ins[1], "weight", conv_no),
                tensor(ins[2], "bias", conv_no),
                "OIHW",
            )
        )
    prov["reader"] = "onnx"
    return Raw("onnx", layers, False, prov)


def _onnx_graph(data: bytes, mods):
    """``(nodes, tensors, provenance)`` of a model: ``(op, inputs, outputs)`` and lazy tensor decoders by name."""
    onnx, numpy_helper = mods
    model = onnx.load_model_from_string(data)
    tensors = {}

    def make(t):
        def get(path, arch):
            if t.data_location == onnx.TensorProto.EXTERNAL:
                raise error(
                    path,
                    f"stores tensor {t.name!r} as external data outside the file, and minivgg "
                    "reads only self-contained models",
                    arch,
                )
            try:
                return numpy_helper.to_array(t)
            except Exception as exc:  # data that does not fit its dims or dtype: a damaged model
                raise error(
                    path,
                    f"is a truncated or corrupt ONNX model: tensor {t.name!r} cannot be decoded "
                    f"({type(exc).__name__}: {first_line(exc)})",
                    arch,
                ) from None

        return get

    for t in model.graph.initializer:
        tensors[t.name] = make(t)
    nodes = []
    for node in model.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value" and a.HasField("t"):
                    tensors[node.output[0]] = make(a.t)
        nodes.append((node.op_type, list(node.input), list(node.output)))
    prov = {"producer": f"{model.producer_name} {model.producer_version}".strip()}
    return nodes, tensors, prov
