"""Run a set of onnxscript rewriter rules as one normalisation pass."""

from __future__ import annotations

import onnx
import onnxscript.optimizer
from onnxscript import ir
from onnxscript.rewriter import pattern


def apply_rules(model: onnx.ModelProto, rules: pattern.RewriteRuleSet, what: str) -> tuple[onnx.ModelProto, list[str]]:
    """`what` describes one rewrite for the pass's change list; the model is returned as is when nothing matched."""
    ir_model = ir.serde.deserialize_model(model)
    count = rules.apply_to_model(ir_model)
    if not count:
        return model, []
    onnxscript.optimizer.remove_unused_nodes(ir_model)  # constants a rewrite left without consumers
    return ir.serde.serialize_model(ir_model), [f"{count} x {what}"]
