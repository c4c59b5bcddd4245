"""Fuse every legal Conv->Relu pair into one `onnx_fuse::ConvRelu` node backed by a model-local function."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import onnx
from onnxscript import ir

from onnx_fuse.fuse.conv_relu import FUSED_DOMAIN, FUSED_OP, conv_relu_function, conv_relu_rule
from onnx_fuse.fuse.unfused import unfused_pairs

log = logging.getLogger(__name__)


@dataclass
class FuseReport:
    pairs: int = 0
    nodes_before: int = 0
    nodes_after: int = 0
    fused_nodes: list[str] = field(default_factory=list)
    left_unfused: list[str] = field(default_factory=list)  # Conv -> activation pairs not fused, with the reason


def onnx_opset(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def drop_redundant_value_info(model: onnx.ModelProto) -> onnx.ModelProto:
    """onnx_ir writes value_info for initializers too; qonnx's ModelWrapper rejects such duplicates."""
    graph = model.graph
    declared = {t.name for t in graph.initializer} | {v.name for v in graph.input} | {v.name for v in graph.output}
    kept = [v for v in graph.value_info if v.name not in declared]
    del graph.value_info[:]
    graph.value_info.extend(kept)
    return model


def fuse(model: onnx.ModelProto) -> tuple[onnx.ModelProto, FuseReport]:
    report = FuseReport(nodes_before=len(model.graph.node))
    ir_model = ir.serde.deserialize_model(model)
    report.pairs = conv_relu_rule().apply_to_model(ir_model)
    fused = drop_redundant_value_info(ir.serde.serialize_model(ir_model))
    has_function = any(f.domain == FUSED_DOMAIN and f.name == FUSED_OP for f in fused.functions)
    if report.pairs and not has_function:
        fused.functions.append(conv_relu_function(onnx_opset(fused)))
    report.nodes_after = len(fused.graph.node)
    report.fused_nodes = [n.name for n in fused.graph.node if n.domain == FUSED_DOMAIN and n.op_type == FUSED_OP]
    report.left_unfused = unfused_pairs(fused)
    log.debug("fused %d Conv->Relu pairs: %s", report.pairs, ", ".join(report.fused_nodes))
    return fused, report


__all__ = ["FUSED_DOMAIN", "FUSED_OP", "FuseReport", "fuse"]
