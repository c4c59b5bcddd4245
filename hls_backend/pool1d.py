"""1-D MaxPool / AveragePool for hls4ml 1.3's ONNX front end.

hls4ml 1.3's ONNX pool parser reads a 1-D channels-last pool's shape at channels-first positions (n_filt = the
width, n_in = the channels) and sets no pad_left / pad_right, so a PyTorch `MaxPool1d` stops the conversion
("Attribute pad_left ... not set"). Its 2-D branch and its Pooling1D layer are right; only the parse is wrong, and
a handler cannot be replaced for an op type hls4ml already handles. So, once qonnx is done with the graph, each 1-D
channels-last pool gets an op type of its own whose handler fills the same hls4ml Pooling1D layer from the
channels-last shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from hls4ml.converters.onnx_to_hls import get_onnx_attribute
from onnx import helper

from hls_backend.pooling import CL_DOMAIN

POOL1D_OP = "OnnxFusePool1D"
POOL_KIND = "onnx_fuse_pool"  # the original op type (MaxPool / AveragePool) rides along as an attribute


def mark_1d_pools(model: onnx.ModelProto) -> None:
    """Give every 1-D channels-last pool the op type POOL1D_OP (run after qonnx's last shape inference)."""
    ranks = {v.name: len(v.type.tensor_type.shape.dim) for v in [*model.graph.value_info, *model.graph.input]}
    for node in model.graph.node:
        if node.domain == CL_DOMAIN and node.op_type in ("MaxPool", "AveragePool") and ranks.get(node.input[0]) == 3:
            node.attribute.append(helper.make_attribute(POOL_KIND, node.op_type))
            node.op_type = POOL1D_OP


def parse_pool1d(node: onnx.NodeProto, input_names: list[str], input_shapes: list, graph: onnx.GraphProto) -> dict[str, Any]:
    _, width, channels = input_shapes[0]  # channels-last (N, W, C)
    kernel = get_onnx_attribute(node, "kernel_shape")[0]
    stride = (get_onnx_attribute(node, "strides") or [1])[0]
    pads = get_onnx_attribute(node, "pads") or [0, 0]
    kind = get_onnx_attribute(node, POOL_KIND)
    kind = kind.decode() if isinstance(kind, bytes) else kind
    return {
        "name": node.name, "inputs": input_names, "outputs": list(node.output), "data_format": "channels_last",
        "class_name": kind.replace("Pool", "Pooling1D"), "n_in": width, "n_filt": channels,
        "pool_width": kernel, "stride_width": stride, "pad_left": pads[0], "pad_right": pads[1],
        "n_out": int(np.floor((width + pads[0] + pads[1] - kernel) / stride + 1)),
    }
