"""A mean over every spatial axis becomes GlobalAveragePool (then Flatten, when the reduced axes were dropped).

PyTorch's exporters write `nn.AdaptiveAvgPool2d(1)` (dynamo) and `x.mean((2, 3))` (both) as ReduceMean over the
spatial axes; hls4ml 1.3 has no ReduceMean, and its pooling path reads GlobalAveragePool (hls_backend/pooling.py
makes that a channels-last AveragePool). The same mean of the same values: equal up to float summation order.
keepdims=0 leaves (N, C), which Flatten(axis=1) of the pooled (N, C, 1, ...) gives in the same element order.
"""

from __future__ import annotations

import onnx
from onnxscript import ir
from onnxscript.rewriter import pattern
from onnxscript.rewriter._ir_utils import get_numpy_value

from onnx_fuse.normalise.rewrite import apply_rules


def reduced_axes(mean: ir.Value) -> list[int] | None:
    """The ReduceMean's axes, from the attribute (opset < 18) or a constant second input (opset 18+)."""
    node = mean.producer()
    attr = node.attributes.get("axes")
    if attr is not None:
        return list(attr.as_ints())
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        axes = get_numpy_value(node.inputs[1])
        return None if axes is None else [int(a) for a in axes.reshape(-1)]
    return None  # no axes: every axis is reduced (batch and channels too), not a pooling


class SpatialMeanIsGlobalAveragePool(pattern.RewriteRuleClassBase):
    def pattern(self, op, x):
        return op.ReduceMean(x, _allow_other_inputs=True, _allow_other_attributes=True, _outputs=["mean"])

    def check(self, context, x, mean, **_) -> bool:
        rank = x.shape.rank() if x.shape is not None else None
        axes = reduced_axes(mean)
        if rank is None or rank < 3 or axes is None:
            return False
        return sorted(a % rank for a in axes) == list(range(2, rank))

    def rewrite(self, op, x, mean, **_):
        keepdims = mean.producer().attributes.get("keepdims")
        pooled = op.GlobalAveragePool(x)
        if keepdims is None or keepdims.as_int():
            return pooled
        return op.Flatten(pooled, axis=1)


RULES = pattern.RewriteRuleSet([SpatialMeanIsGlobalAveragePool.rule()])


def apply(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    if any(node.op_type == "ReduceMean" for node in model.graph.node):
        model = onnx.shape_inference.infer_shapes(model)  # the rank decides which axes are spatial
    return apply_rules(model, RULES, "ReduceMean over the spatial axes written as GlobalAveragePool", {"ReduceMean"})
