"""Spell out kernel_shape, strides, dilations, pads (and a Conv's group) on every Conv and pool.

tf2onnx omits `pads` on 'valid' convs and may emit auto_pad; qonnx's channels-last conversion and hls4ml's conv
parser read these attributes directly and need them explicit. No library tried does this, so it is
written here by hand: resolving auto_pad follows the ONNX operator spec.
"""

from __future__ import annotations

import math

import onnx
from onnx import helper

from onnx_fuse.errors import InputError

CONV_OPS = {"Conv"}
POOL_OPS = {"MaxPool", "AveragePool"}


def attributes(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def static_shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {}
    for value in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = [d.dim_value for d in dims]
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


def same_pads(in_size: int, kernel: int, stride: int, dilation: int, lower: bool) -> tuple[int, int]:
    out = math.ceil(in_size / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - in_size, 0)
    small, large = total // 2, total - total // 2
    return (large, small) if lower else (small, large)


def explicit(node: onnx.NodeProto, shapes: dict[str, list[int]]) -> dict:
    attrs = attributes(node)
    if node.op_type in CONV_OPS:
        weight = shapes.get(node.input[1])
        kernel = list(attrs.get("kernel_shape") or (weight[2:] if weight else []))
        if not kernel:
            raise InputError(f"{node.op_type} '{node.name}': kernel shape unknown (weights are not constant)")
    else:
        kernel = list(attrs["kernel_shape"])
    rank = len(kernel)
    strides = list(attrs.get("strides", [1] * rank))
    dilations = list(attrs.get("dilations", [1] * rank))
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        in_shape = shapes.get(node.input[0])
        if in_shape is None:
            raise InputError(f"{node.op_type} '{node.name}': cannot resolve auto_pad without a static input shape")
        pairs = [
            same_pads(size, k, s, d, auto_pad == "SAME_LOWER")
            for size, k, s, d in zip(in_shape[2:], kernel, strides, dilations)
        ]
        pads = [p[0] for p in pairs] + [p[1] for p in pairs]
    elif auto_pad == "VALID":
        pads = [0] * (2 * rank)
    else:
        pads = list(attrs.get("pads", [0] * (2 * rank)))
    wanted = {"kernel_shape": kernel, "strides": strides, "pads": pads}
    if node.op_type in CONV_OPS:
        wanted["dilations"] = dilations
        wanted["group"] = attrs.get("group", 1)  # hls4ml's conv parser reads it unconditionally
    return wanted


def apply(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    if not any(n.op_type in CONV_OPS | POOL_OPS for n in model.graph.node):
        return model, []
    model = onnx.ModelProto.FromString(model.SerializeToString())  # edit a copy, never the caller's graph
    # standard ops only: qonnx's channels-last Conv/MaxPool have other shapes (hls4ml reads them as written)
    targets = [n for n in model.graph.node if n.op_type in CONV_OPS | POOL_OPS and n.domain in ("", "ai.onnx")]
    shapes = static_shapes(model)
    changes = []
    for node in targets:
        attrs = attributes(node)
        wanted = explicit(node, shapes)
        added = [name for name, value in wanted.items() if attrs.get(name) is None or attrs[name] != value]
        if not added and "auto_pad" not in attrs:
            continue
        kept = [a for a in node.attribute if a.name not in wanted and a.name != "auto_pad"]
        del node.attribute[:]
        node.attribute.extend(kept + [helper.make_attribute(k, v) for k, v in wanted.items()])
        changes.append(f"{node.op_type} '{node.name}': set {', '.join(added or ['auto_pad -> pads'])}")
    return model, changes


