"""Nearest-neighbour upsampling (ONNX Resize: PyTorch's Upsample, tf2onnx's UpSampling) in the channels-last form
that hls4ml 1.3's Resize parser reads.

hls4ml's Resize parser takes the node as channels-last (it reads height, width and channels from an (N, H, W, C)
shape and the scales in that order) and requires three inputs with a named RoI (a single 0: hls4ml drops it). qonnx's ConvertToChannelsLast does
not move Resize, so, as for AveragePool (pooling.py), each Resize is wrapped the way qonnx wraps its own
channels-last ops: Transpose(to NHWC) -> Resize[channels_last domain](x, empty RoI, channels-last scales) ->
Transpose(to NCHW); qonnx's clean-up then cancels the Transposes.

Only what hls4ml computes exactly like ONNX is let through (else one line naming the node and the cause):
- mode nearest with integer spatial scales, batch and channel scale 1. hls4ml's nnet::resize_nearest picks source
  index floor(i / s), which is ONNX's asymmetric + floor (PyTorch's form) and, for an integer s, also half_pixel /
  pytorch_half_pixel with any rounding (the sample point stays within half a pixel of the source's centre);
- a square input with one scale: hls4ml's parser reads height from the W position and width from the H position,
  which is the same only when H == W and both scales are equal;
- 1-D: hls4ml 1.3's ONNX parser reads a 1-D Resize's shape at 2-D positions (IndexError), so after qonnx a 1-D
  channels-last Resize gets an op type of its own whose handler builds the same hls4ml Resize layer as a 1 x W
  image (nnet::resize_nearest with height 1 is 1-D nearest upsampling).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.channels_last.base_wrapped_op import (
    ChannelsLastWrappedOp,
    to_channels_first_args,
    to_channels_last_args,
)
from qonnx.custom_op.registry import add_op_to_domain
from qonnx.transformation.base import Transformation

from hls_backend.pooling import CL_DOMAIN

EXACT_NEAREST = {("asymmetric", "floor"), *((m, r) for m in ("half_pixel", "pytorch_half_pixel")
                                             for r in ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil"))}


class Resize_v1(ChannelsLastWrappedOp):  # noqa: N801 (qonnx's registry reads the op type and version from the name)
    """Channels-last Resize for qonnx: output shape = input shape x scales (execution: the wrapper's transpose,
    run the standard op, transpose back)."""

    def get_nodeattr_types(self) -> dict:
        return {
            "mode": ("s", False, "nearest"),
            "coordinate_transformation_mode": ("s", False, "half_pixel"),
            "nearest_mode": ("s", False, "round_prefer_floor"),
            "cubic_coeff_a": ("f", False, -0.75),
            "exclude_outside": ("i", False, 0),
            "extrapolation_value": ("f", False, 0.0),
            "antialias": ("i", False, 0),
            "keep_aspect_ratio_policy": ("s", False, "stretch"),
        }

    def make_shape_compatible_op(self, model: ModelWrapper) -> onnx.NodeProto:
        shape = model.get_tensor_shape(self.onnx_node.input[0])
        scales = model.get_initializer(self.onnx_node.input[2])
        out = [int(round(d * float(s))) for d, s in zip(shape, scales)]
        return helper.make_node("Constant", [], [self.onnx_node.output[0]], name=self.onnx_node.name,
                                value=numpy_helper.from_array(np.zeros(out, dtype=np.float32)))


def _attr(node: onnx.NodeProto, name: str, default: str) -> str:
    attr = next((a for a in node.attribute if a.name == name), None)
    return attr.s.decode() if attr is not None else default


def channels_first_scales(model: ModelWrapper, node: onnx.NodeProto, shape: list[int]) -> np.ndarray | None:
    """The Resize's scales, from its scales input or (sizes given instead) sizes / input shape; None if unknown."""
    scales = model.get_initializer(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if scales is not None and scales.size:
        return scales.astype(np.float64)
    sizes = model.get_initializer(node.input[3]) if len(node.input) > 3 and node.input[3] else None
    return None if sizes is None else sizes.astype(np.float64) / np.array(shape, dtype=np.float64)


def unsupported_reason(node: onnx.NodeProto, shape: list[int] | None, scales: np.ndarray | None) -> str | None:
    if shape is None or len(shape) not in (3, 4):
        return f"only 1-D and 2-D upsampling is supported (input rank {None if shape is None else len(shape)})"
    if scales is None or scales.size != len(shape):
        return "scales (or sizes) must be a constant"
    mode = _attr(node, "mode", "nearest")
    if mode != "nearest":
        return f"mode {mode} is not supported (nearest only)"
    transform = (_attr(node, "coordinate_transformation_mode", "half_pixel"),
                 _attr(node, "nearest_mode", "round_prefer_floor"))
    if transform not in EXACT_NEAREST:
        return f"coordinate_transformation_mode {transform[0]} with nearest_mode {transform[1]} is not supported"
    if scales[0] != 1 or scales[1] != 1 or np.any(scales[2:] != np.round(scales[2:])) or np.any(scales[2:] < 1):
        return f"scales {scales.tolist()} are not supported (integer upsampling of height and width only)"
    if len(shape) == 4 and (shape[2] != shape[3] or scales[2] != scales[3]):
        return (f"a {shape[2]}x{shape[3]} input scaled by {scales[2]:g}x{scales[3]:g} is not supported "
                "(hls4ml 1.3's Resize parser swaps height and width: square inputs with one scale only)")
    return None


class ChannelsLastResize(Transformation):
    """Rewrite every Resize as a wrapped channels-last Resize (run after qonnx's InferShapes).

    Raises ValueError (one line naming the node and the cause) for a Resize hls4ml would not compute exactly.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        graph = model.graph
        nodes = [n for n in graph.node if n.op_type == "Resize" and n.domain == ""]
        if not nodes:
            return model, False
        add_op_to_domain(CL_DOMAIN, Resize_v1)  # a plain dict assignment in qonnx: harmless to repeat
        for node in nodes:
            shape = model.get_tensor_shape(node.input[0])
            scales = channels_first_scales(model, node, shape) if shape else None
            reason = unsupported_reason(node, shape, scales)
            if reason is not None:
                raise ValueError(f"Resize '{node.name}': {reason}")
            to_last, to_first = to_channels_last_args(len(shape)), to_channels_first_args(len(shape))
            x_cl, y_cl = f"{node.name}_channels_last_in", f"{node.name}_channels_last_out"
            roi, scales_cl = f"{node.name}_roi", f"{node.name}_scales_channels_last"
            # hls4ml's ResizeRemoveConstants tests the RoI array for truth: an empty one raises, a single 0 passes
            # (the graph goes only to hls4ml, which drops the RoI, never to a runtime)
            model.set_initializer(roi, np.zeros(1, dtype=np.float32))
            model.set_initializer(scales_cl, scales[list(to_last)].astype(np.float32))
            kept = {a.name: a for a in node.attribute if a.name in Resize_v1(node).get_nodeattr_types()}
            index = list(graph.node).index(node)
            graph.node.remove(node)
            new = [
                helper.make_node("Transpose", [node.input[0]], [x_cl], name=f"{node.name}_to_channels_last",
                                 perm=to_last),
                helper.make_node("Resize", [x_cl, roi, scales_cl], [y_cl], name=node.name, domain=CL_DOMAIN),
                helper.make_node("Transpose", [y_cl], list(node.output), name=f"{node.name}_to_channels_first",
                                 perm=to_first),
            ]
            new[1].attribute.extend(kept.values())
            for offset, n in enumerate(new):
                graph.node.insert(index + offset, n)
            model.set_tensor_shape(x_cl, [shape[i] for i in to_last])
            out_shape = [int(d * s) for d, s in zip(shape, scales)]
            model.set_tensor_shape(y_cl, [out_shape[i] for i in to_last])
        if not any(o.domain == CL_DOMAIN for o in model.model.opset_import):
            model.model.opset_import.append(helper.make_opsetid(CL_DOMAIN, 1))
        return model, True


RESIZE1D_OP = "OnnxFuseResize1D"


def mark_1d_resizes(model: onnx.ModelProto) -> None:
    """Give every 1-D channels-last Resize the op type RESIZE1D_OP (run after qonnx's last shape inference)."""
    ranks = {v.name: len(v.type.tensor_type.shape.dim) for v in [*model.graph.value_info, *model.graph.input]}
    for node in model.graph.node:
        if node.domain == CL_DOMAIN and node.op_type == "Resize" and ranks.get(node.input[0]) == 3:
            node.op_type = RESIZE1D_OP


def parse_resize1d(node: onnx.NodeProto, input_names: list[str], input_shapes: list, graph: onnx.GraphProto) -> dict:
    """hls4ml's Resize layer as a 1 x W image; its initialize() multiplies the width by the channels-last scales."""
    _, width, channels = input_shapes[0]  # channels-last (N, W, C)
    return {
        "name": node.name, "class_name": "Resize", "inputs": input_names, "outputs": list(node.output),
        "data_format": "channels_last", "algorithm": "nearest", "in_height": 1, "out_height": 1,
        "in_width": width, "out_width": width, "n_chan": channels,
    }
