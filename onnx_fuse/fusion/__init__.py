"""Fuse every legal pair of the pattern table (onnx_fuse/patterns.py) into one `onnx_fuse::<op>` node, each op
backed by one model-local function so onnxruntime runs the file unchanged."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import onnx
from onnxscript import ir

from onnx_fuse.fusion.rules import rules
from onnx_fuse.fusion.unfused import unfused_pairs
from onnx_fuse.patterns import BY_OP, FUSED_DOMAIN, QONNX_DOMAIN, fused_nodes
from onnx_fuse.qonnx_ops import opset_version

log = logging.getLogger(__name__)


@dataclass
class FuseReport:
    pairs: int = 0
    nodes_before: int = 0
    nodes_after: int = 0
    fused_nodes: list[str] = field(default_factory=list)
    by_op: dict[str, int] = field(default_factory=dict)  # fused op (ConvRelu, DenseLeakyRelu, ...) -> pairs
    left_unfused: list[str] = field(default_factory=list)  # producer -> activation pairs not fused, with the reason


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
    already = Counter(n.op_type for n in fused_nodes(model))
    ir_model = ir.serde.deserialize_model(model)
    rule_set = rules({n.op_type for n in model.graph.node})
    report.pairs = rule_set.apply_to_model(ir_model) if rule_set is not None else 0
    fused = drop_redundant_value_info(ir.serde.serialize_model(ir_model))
    nodes = fused_nodes(fused)
    present = {f.name for f in fused.functions if f.domain == FUSED_DOMAIN}
    qonnx_opset = opset_version(fused, QONNX_DOMAIN)
    for op in sorted({n.op_type for n in nodes} - present):
        fused.functions.append(BY_OP[op].function(onnx_opset(fused), qonnx_opset))
    report.nodes_after = len(fused.graph.node)
    report.fused_nodes = [n.name for n in nodes]
    report.by_op = dict(Counter(n.op_type for n in nodes) - already)  # this run's pairs, not a fused input's
    report.left_unfused = unfused_pairs(fused)
    log.debug("fused %d pairs %s: %s", report.pairs, report.by_op, ", ".join(report.fused_nodes))
    return fused, report


__all__ = ["FUSED_DOMAIN", "FuseReport", "fuse"]
