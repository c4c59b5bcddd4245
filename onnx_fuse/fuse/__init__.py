"""Fuse every legal Conv->Relu and Gemm->Relu pair into one `onnx_fuse::ConvRelu` / `onnx_fuse::DenseRelu` node,
each op backed by one model-local function so onnxruntime runs the file unchanged."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import onnx
from onnxscript import ir

from onnxscript.rewriter import pattern

from onnx_fuse.fuse.conv_relu import FUSED_DOMAIN, FUSED_OP, conv_relu_function, conv_relu_rule
from onnx_fuse.fuse.dense_relu import DENSE_OP, dense_relu_function, dense_relu_rule
from onnx_fuse.fuse.unfused import unfused_pairs

log = logging.getLogger(__name__)


@dataclass
class FuseReport:
    pairs: int = 0
    nodes_before: int = 0
    nodes_after: int = 0
    fused_nodes: list[str] = field(default_factory=list)
    dense_pairs: int = 0  # of `pairs`, the Gemm -> Relu ones
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
    report.pairs = pattern.RewriteRuleSet([conv_relu_rule(), dense_relu_rule()]).apply_to_model(ir_model)
    fused = drop_redundant_value_info(ir.serde.serialize_model(ir_model))
    used = {n.op_type for n in fused.graph.node if n.domain == FUSED_DOMAIN}
    present = {f.name for f in fused.functions if f.domain == FUSED_DOMAIN}
    for op, function in ((FUSED_OP, conv_relu_function), (DENSE_OP, dense_relu_function)):
        if op in used and op not in present:
            fused.functions.append(function(onnx_opset(fused)))
    report.nodes_after = len(fused.graph.node)
    fused_nodes = [n for n in fused.graph.node if n.domain == FUSED_DOMAIN and n.op_type in (FUSED_OP, DENSE_OP)]
    report.fused_nodes = [n.name for n in fused_nodes]
    report.dense_pairs = sum(n.op_type == DENSE_OP for n in fused_nodes)
    report.left_unfused = unfused_pairs(fused)
    log.debug("fused %d pairs (%d Dense->Relu): %s", report.pairs, report.dense_pairs, ", ".join(report.fused_nodes))
    return fused, report


__all__ = ["DENSE_OP", "FUSED_DOMAIN", "FUSED_OP", "FuseReport", "fuse"]
