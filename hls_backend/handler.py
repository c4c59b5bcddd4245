"""hls4ml ONNX handler for the channels-last ConvRelu node written by preprocess.refuse."""

from __future__ import annotations

from typing import Any

import onnx
import onnx.helper
from hls4ml.converters.onnx.convolution import parse_conv_layer
from hls4ml.converters.onnx.core import parse_activation_layer
from hls4ml.converters.onnx_to_hls import get_onnx_attribute, sanitize_layer_name

from hls_backend.layer import CLASS_NAME
from hls_backend.preprocess import CL_DOMAIN, CL_FUSED_DOMAIN, RELU_NAME_ATTR

# Keys of the Conv layer dict that the lowering pass hands on to the Conv it creates.
NOT_CONV_KEYS = {"name", "inputs", "outputs", "class_name"}


def parse_conv_relu(
    node: onnx.NodeProto, input_names: list[str], input_shapes: list, graph: onnx.GraphProto
) -> dict[str, Any]:
    # hls4ml dispatches on op_type only; a ConvRelu that did not come through preprocess would be channels-first.
    if node.domain != CL_FUSED_DOMAIN:
        raise RuntimeError(
            f"ConvRelu {node.name!r} (domain {node.domain!r}) is not channels-last: convert it with "
            "hls_backend.convert_from_fused_onnx, which runs qonnx and re-fuses the pairs"
        )
    relu_name = get_onnx_attribute(node, RELU_NAME_ATTR)
    relu_name = relu_name.decode() if isinstance(relu_name, bytes) else relu_name
    # Reuse hls4ml's own conv parsing (shapes, pads, strides, groups) on a relabelled copy.
    conv = onnx.NodeProto()
    conv.CopyFrom(node)
    conv.op_type, conv.domain = "Conv", CL_DOMAIN
    kept = [a for a in conv.attribute if a.name != RELU_NAME_ATTR]
    del conv.attribute[:]
    conv.attribute.extend(kept)
    layer = parse_conv_layer(conv, input_names, input_shapes, graph)
    layer["conv_keys"] = tuple(k for k in layer if k not in NOT_CONV_KEYS)
    layer["class_name"] = CLASS_NAME
    # The ReLU layer exactly as hls4ml's own Relu handler describes it (class Activation, activation 'ReLU'),
    # reading a new pre-ReLU tensor; the lowering pass creates it from this dict.
    relu = onnx.helper.make_node("Relu", [f"{node.output[0]}_pre_relu"], list(node.output), name=relu_name)
    layer["relu_layer"] = parse_activation_layer(relu, list(relu.input), [], graph)
    sanitize_layer_name(layer["relu_layer"])  # as parse_onnx_model does for every layer it parses
    layer["outputs"] = list(node.output)
    return layer
