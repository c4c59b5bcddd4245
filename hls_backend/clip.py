"""Clip for hls4ml 1.3, whose ONNX front end has no Clip op: handler, layer, config and call templates, C++ stage.

An unfused Clip (ReLU6 and friends) needs a stage of its own for the unfused reference design; its arithmetic
(nnet_utils/onnx_fuse_clip.h) is the write-back expression of the pattern table's CLIP, so fused == unfused.
The bounds arrive as node attributes (preprocess.clip_bounds_as_attributes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx
from hls4ml.backends.template import FunctionCallTemplate, LayerConfigTemplate
from hls4ml.converters.onnx_to_hls import get_onnx_attribute
from hls4ml.model.layers import Layer
from hls4ml.model.attributes import Attribute

from hls_backend.preprocess import CLIP_HIGH, CLIP_LOW

HEADER = Path(__file__).resolve().parent / "nnet_utils" / "onnx_fuse_clip.h"


class OnnxFuseClip(Layer):
    _expected_attributes = [
        Attribute("n_in"),
        Attribute("low", value_type=float),
        Attribute("high", value_type=float),
    ]

    def initialize(self) -> None:
        inp = self.get_input_variable()
        self.set_attr("n_in", inp.size())
        self.add_output_variable(inp.shape)


def parse_clip(node: onnx.NodeProto, input_names: list[str], input_shapes: list, graph: onnx.GraphProto) -> dict[str, Any]:
    low, high = get_onnx_attribute(node, CLIP_LOW), get_onnx_attribute(node, CLIP_HIGH)
    if low is None or high is None:
        raise ValueError(f"Clip {node.name!r} reached hls4ml without constant bounds (use hls_backend.preprocess)")
    return {
        "name": node.name, "class_name": OnnxFuseClip.__name__, "inputs": input_names[:1],
        "outputs": list(node.output), "low": float(low), "high": float(high),
    }


CONFIG = """struct onnx_fuse_clip_config{index} {{
    static const unsigned n_in = {n_in};
    static constexpr double low = {low!r};
    static constexpr double high = {high!r};
}};\n"""
CALL = "nnet::onnx_fuse_clip<{input_t}, {output_t}, onnx_fuse_clip_config{index}>({input}, {output});"


class ClipConfigTemplate(LayerConfigTemplate):
    def __init__(self) -> None:
        super().__init__(OnnxFuseClip)

    def format(self, node: Layer) -> str:
        return CONFIG.format(index=node.index, n_in=node.get_attr("n_in"), low=node.get_attr("low"),
                             high=node.get_attr("high"))


class ClipFunctionTemplate(FunctionCallTemplate):
    def __init__(self) -> None:
        super().__init__(OnnxFuseClip, include_header=[f"nnet_utils/{HEADER.name}"])

    def format(self, node: Layer) -> str:
        return CALL.format(**self._default_function_params(node))  # its fields include `index`
