"""Spell every ReLU as Relu: Max(x, 0) and Clip(x, 0) (no upper bound) become Relu(x), so they can fuse.

Both are exactly max(x, 0) (NaN aside, which a trained model does not produce), so numbers do not change.
"""

from __future__ import annotations

import onnx
from onnxscript import ir
from onnxscript.rewriter import pattern
from onnxscript.rewriter._ir_utils import get_numpy_value

from onnx_fuse.normalise.rewrite import apply_rules


def is_zero_for(value: ir.Value | None, x: ir.Value) -> bool:
    """A constant single 0 that cannot broadcast x to a larger rank."""
    array = get_numpy_value(value)
    if array is None or array.size != 1 or float(array.reshape(-1)[0]) != 0.0:
        return False
    rank = x.shape.rank() if x.shape is not None else None
    return array.ndim == 0 or (rank is not None and array.ndim <= rank)


class MaxZeroIsRelu(pattern.RewriteRuleClassBase):
    def pattern(self, op, x, zero):
        return op.Max(x, zero)

    def check(self, context, x, zero, **_) -> bool:
        return is_zero_for(zero, x) and get_numpy_value(x) is None

    def rewrite(self, op, x, zero, **_):
        return op.Relu(x)


class ClipAtZeroIsRelu(pattern.RewriteRuleClassBase):
    def pattern(self, op, x, low):
        return op.Clip(x, low)  # no `max` input: unbounded above

    def check(self, context, x, low, **_) -> bool:
        return is_zero_for(low, x)

    def rewrite(self, op, x, low, **_):
        return op.Relu(x)


RULES = pattern.RewriteRuleSet(
    [MaxZeroIsRelu.rule(), ClipAtZeroIsRelu.rule()], commute=True  # Max(0, x) too
)


def apply(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    return apply_rules(model, RULES, "Max(x, 0) or Clip(x, 0) rewritten as Relu", {"Max", "Clip"})
