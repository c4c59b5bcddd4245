"""Run a set of onnxscript rewriter rules as one normalisation pass."""

from __future__ import annotations

import onnx
import onnxscript.optimizer
from onnxscript import ir
from onnxscript.rewriter import pattern


def apply_rules(
    model: onnx.ModelProto, rules: pattern.RewriteRuleSet, what: str, ops: set[str] | None = None
) -> tuple[onnx.ModelProto, list[str]]:
    """`what` describes one rewrite for the pass's change list; the model is returned as is when nothing matched.

    `ops`, if given, holds at least one op type of every rule's pattern: a graph with none of them cannot match,
    and skipping the onnx_ir round trip (~0.1 ms per node, twice) keeps a pass that has nothing to do nearly free.
    """
    if ops is not None and not any(node.op_type in ops for node in model.graph.node):
        return model, []
    ir_model = ir.serde.deserialize_model(model)
    count = rules.apply_to_model(ir_model)
    if not count:
        return model, []
    onnxscript.optimizer.remove_unused_nodes(ir_model)  # constants a rewrite left without consumers
    return ir.serde.serialize_model(ir_model), [f"{count} x {what}"]
