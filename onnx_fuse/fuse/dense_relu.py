"""Rule Gemm -> Relu => one `onnx_fuse::DenseRelu` node with all of the Gemm's inputs and attributes.

Same scheme as ConvRelu (see conv_relu.py): an onnxscript rule, plus one hand-written model-local function
Relu(Gemm(A, B, C)) whose Gemm attributes reference the call's. A MatMul with constant weights reaches this rule
as a Gemm (normalise/matmul_as_gemm.py).
"""

from __future__ import annotations

import onnx
from onnxscript import ir
from onnxscript.rewriter import pattern
from onnxscript.rewriter._ir_utils import get_numpy_value

from onnx_fuse.fuse.conv_relu import FUSED_DOMAIN, FUSED_OPSET, relu_function

DENSE_OP = "DenseRelu"
GEMM_ATTRIBUTES = {
    "alpha": onnx.AttributeProto.FLOAT,
    "beta": onnx.AttributeProto.FLOAT,
    "transA": onnx.AttributeProto.INT,
    "transB": onnx.AttributeProto.INT,
}


class DenseRelu(pattern.RewriteRuleClassBase):
    def __init__(self) -> None:
        super().__init__(name=DENSE_OP)

    def pattern(self, op, a, b):
        return op.Relu(op.Gemm(a, b, _allow_other_inputs=True, _outputs=["gemm_out"]))

    def check(self, context, a: ir.Value, b: ir.Value, gemm_out: ir.Value, **_) -> bool:
        if not isinstance(context.graph_or_function, ir.Graph):
            return False
        # a Dense layer has constant weights; anything else is a general matrix product, left alone
        return get_numpy_value(b) is not None and len(gemm_out.uses()) == 1 and not gemm_out.is_graph_output()

    def rewrite(self, op, a: ir.Value, b: ir.Value, gemm_out: ir.Value, **_):
        gemm = gemm_out.producer()
        return op.DenseRelu(
            *gemm.inputs, _domain=FUSED_DOMAIN, _version=FUSED_OPSET, _name=gemm.name or None, **dict(gemm.attributes)
        )


def dense_relu_rule() -> pattern.RewriteRule:
    return DenseRelu.rule()


def dense_relu_function(onnx_opset: int) -> onnx.FunctionProto:
    """DenseRelu(A, B[, C]) = Relu(Gemm(A, B[, C]))."""
    return relu_function(DENSE_OP, "Gemm", ["A", "B", "C"], GEMM_ATTRIBUTES, onnx_opset)
