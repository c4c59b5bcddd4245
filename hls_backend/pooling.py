"""AveragePool and GlobalAveragePool in the channels-last layout that hls4ml's ONNX pooling parser reads.

Why hls4ml 1.3 + qonnx 1.0 get them wrong:
- qonnx's ConvertToChannelsLast only moves the ops of its `qonnx.custom_op.channels_last` domain (Conv, MaxPool,
  BatchNormalization). An AveragePool stays channels-first, and hls4ml's pool parser refuses a pool outside that
  domain.
- hls4ml's GlobalAveragePool parser labels the layer channels-last but reads the input shape at channels-first
  positions (n_filt = shape[1], in_height = shape[2], in_width = shape[3]); fed the channels-last graph qonnx makes,
  it averages over the wrong axes (max err 0.18 measured on a small CNN).

So, before qonnx runs: a GlobalAveragePool becomes the AveragePool with a kernel (and stride) the size of its input,
which computes the same mean; every AveragePool is then wrapped the way qonnx wraps its own channels-last ops,
Transpose(to NHWC) -> AveragePool[channels_last domain] -> Transpose(to NCHW). qonnx's clean-up then cancels the
Transposes like those of a Conv or MaxPool, and hls4ml's stock pool parser builds an AveragePooling1D/2D.
qonnx's shape inference needs a channels-last AveragePool op: one is added to that domain through qonnx's public
op registry (its MaxPool wrapper's shape rule is the pooling rule, so it is reused).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.channels_last.base_wrapped_op import to_channels_first_args, to_channels_last_args
from qonnx.custom_op.channels_last.max_pool import MaxPool_v1
from qonnx.custom_op.registry import add_op_to_domain
from qonnx.transformation.base import Transformation

CL_DOMAIN = "qonnx.custom_op.channels_last"


class AveragePool_v1(MaxPool_v1):  # noqa: N801 (qonnx's registry reads the op type and version from the class name)
    """Channels-last AveragePool for qonnx: shape inference and execution as for its channels-last MaxPool."""

    _channelsLast_node_types = ["AveragePool"]

    def get_nodeattr_types(self) -> dict:
        return {**super().get_nodeattr_types(), "count_include_pad": ("i", False, 0), "ceil_mode": ("i", False, 0)}


def _ints(node: onnx.NodeProto, name: str) -> list[int] | None:
    attr = next((a for a in node.attribute if a.name == name), None)
    return list(helper.get_attribute_value(attr)) if attr is not None else None


def unsupported_reason(node: onnx.NodeProto, rank: int | None) -> str | None:
    """Why this (Global)AveragePool cannot go to hls4ml unchanged in meaning, or None."""
    if rank not in (3, 4):
        return f"only 1-D and 2-D pooling is supported (input rank {rank})"
    if node.op_type == "GlobalAveragePool":
        return None
    if any(_ints(node, "pads") or []):
        # ONNX's count_include_pad decides whether padding counts in a window's mean; what hls4ml divides by at
        # the borders was not checked against it, so padded pools are refused rather than risked.
        return "padded average pooling (pads) is not supported"
    auto_pad = next((a.s.decode() for a in node.attribute if a.name == "auto_pad"), "NOTSET")
    if auto_pad not in ("NOTSET", "VALID"):
        return f"auto_pad {auto_pad} is not supported"
    if any(d != 1 for d in _ints(node, "dilations") or []):
        return "dilated pooling is not supported"
    if any(a.name == "ceil_mode" and a.i for a in node.attribute):
        return "ceil_mode is not supported"
    return None


class ChannelsLastAveragePool(Transformation):
    """Rewrite every (Global)AveragePool as a wrapped channels-last AveragePool (run after qonnx's InferShapes).

    Raises ValueError (one line naming the node and the cause) for a pool it cannot rewrite exactly.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        graph = model.graph
        pools = [n for n in graph.node if n.op_type in ("AveragePool", "GlobalAveragePool") and n.domain == ""]
        if not pools:
            return model, False
        add_op_to_domain(CL_DOMAIN, AveragePool_v1)  # a plain dict assignment in qonnx: harmless to repeat
        for node in pools:
            shape = model.get_tensor_shape(node.input[0])
            reason = unsupported_reason(node, len(shape) if shape else None)
            if reason is not None:
                raise ValueError(f"{node.op_type} '{node.name}': {reason}")
            rank = len(shape)
            if node.op_type == "GlobalAveragePool":
                kernel = strides = list(shape[2:])
            else:
                kernel = _ints(node, "kernel_shape")
                strides = _ints(node, "strides") or [1] * len(kernel)
            x_cl, y_cl = f"{node.name}_channels_last_in", f"{node.name}_channels_last_out"
            to_last, to_first = to_channels_last_args(rank), to_channels_first_args(rank)
            index = list(graph.node).index(node)
            graph.node.remove(node)
            new = [
                helper.make_node("Transpose", [node.input[0]], [x_cl], name=f"{node.name}_to_channels_last",
                                 perm=to_last),
                helper.make_node("AveragePool", [x_cl], [y_cl], name=node.name, domain=CL_DOMAIN,
                                 kernel_shape=kernel, strides=strides, pads=[0] * (2 * (rank - 2))),
                self._back(model, node, y_cl, to_first),
            ]
            for offset, n in enumerate(new):
                graph.node.insert(index + offset, n)
            # qonnx's shape inference asks a channels-last op for its output shape from its input's known shape
            model.set_tensor_shape(x_cl, [shape[i] for i in to_last])
            out_shape = model.get_tensor_shape(node.output[0])
            model.set_tensor_shape(y_cl, [out_shape[i] for i in to_last])
        if not any(o.domain == CL_DOMAIN for o in model.model.opset_import):
            model.model.opset_import.append(helper.make_opsetid(CL_DOMAIN, 1))
        return model, True

    @staticmethod
    def _back(model: ModelWrapper, node: onnx.NodeProto, y_cl: str, to_first: tuple[int, ...]) -> onnx.NodeProto:
        """The node that hands the channels-last result on: a Transpose back to channels-first, or, for the
        Squeeze tf2onnx puts after Keras' GlobalAveragePooling (hls4ml has no Squeeze), a Reshape to its output
        shape: with every pooled spatial dimension 1, both layouts hold the elements in the same order."""
        consumers = model.find_consumers(node.output[0])
        out_shape = model.get_tensor_shape(node.output[0])
        squeeze = consumers[0] if len(consumers) == 1 and consumers[0].op_type == "Squeeze" else None
        if squeeze is None or any(d != 1 for d in out_shape[2:]) or node.output[0] in [o.name for o in model.graph.output]:
            return helper.make_node("Transpose", [y_cl], list(node.output), name=f"{node.name}_to_channels_first",
                                    perm=to_first)
        model.graph.node.remove(squeeze)
        shape_name = f"{node.name}_flat_shape"
        model.set_initializer(shape_name, np.array(model.get_tensor_shape(squeeze.output[0]), dtype=np.int64))
        return helper.make_node("Reshape", [y_cl, shape_name], list(squeeze.output), name=squeeze.name)
