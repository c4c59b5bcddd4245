"""Bring a Keras Conv1D's Relu next to its Conv.

tf2onnx exports Conv1D as Unsqueeze -> Conv(1xK) -> Squeeze -> Add(bias) -> Relu (DESIGN.md), and onnxslim only
folds an Add that directly follows the Conv. Two onnxscript rewriter rules fix that:
- Conv -> Squeeze -> Add(per-channel constant)  =>  Conv(bias) -> Squeeze
- Squeeze -> Relu                               =>  Relu -> Squeeze   (an elementwise op commutes with Squeeze)
"""

from __future__ import annotations

import numpy as np
import onnx
from onnxscript import ir
from onnxscript.rewriter import pattern
from onnxscript.rewriter._ir_utils import get_numpy_value


def single_use(*values: ir.Value) -> bool:
    return all(len(v.uses()) == 1 and not v.is_graph_output() for v in values)


class SqueezedBiasIntoConv(pattern.RewriteRuleClassBase):
    def pattern(self, op, x, w, axes, bias):
        conv = op.Conv(x, w, _outputs=["conv_out"])
        return op.Add(op.Squeeze(conv, axes, _outputs=["squeezed"]), bias)

    def check(self, context, x, w, axes, bias, conv_out, squeezed, **_) -> bool:
        weight, squeeze_axes, added = get_numpy_value(w), get_numpy_value(axes), get_numpy_value(bias)
        if weight is None or squeeze_axes is None or added is None or not single_use(conv_out, squeezed):
            return False
        rank = weight.ndim  # a Conv's output has its weight's rank
        if any(int(a) % rank in (0, 1) for a in squeeze_axes):
            return False  # batch and channel axes must survive the Squeeze
        out_rank = rank - len(squeeze_axes)
        channels = weight.shape[0]
        # broadcast shape must put the constant on the channel axis (axis 1) only
        shape = (1,) * (out_rank - added.ndim) + added.shape
        return added.size == channels and len(shape) == out_rank and shape[1] == channels

    def rewrite(self, op, x, w, axes, bias, conv_out, **_):
        vector = get_numpy_value(bias).reshape(-1).astype(np.float32)
        b = op.initializer(ir.tensor(vector), name=f"{conv_out.name}_bias")
        conv = conv_out.producer()
        return op.Squeeze(op.Conv(x, w, b, _name=conv.name or None, **dict(conv.attributes)), axes)


class ReluBeforeSqueeze(pattern.RewriteRuleClassBase):
    def pattern(self, op, y, axes):
        return op.Relu(op.Squeeze(y, axes, _outputs=["squeezed"]))

    def check(self, context, y, axes, squeezed, **_) -> bool:
        producer = y.producer()
        return producer is not None and producer.op_type == "Conv" and single_use(y, squeezed)

    def rewrite(self, op, y, axes, **_):
        return op.Squeeze(op.Relu(y), axes)


RULES = pattern.RewriteRuleSet([SqueezedBiasIntoConv.rule(), ReluBeforeSqueeze.rule()])


def apply(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    ir_model = ir.serde.deserialize_model(model)
    count = RULES.apply_to_model(ir_model)
    if not count:
        return model, []
    return ir.serde.serialize_model(ir_model), [f"{count} rewrites (Squeeze->Add bias folded into Conv, Relu moved before Squeeze)"]
