"""Rule Conv -> Relu => one `onnx_fuse::ConvRelu` node with all of the Conv's inputs and attributes.

The match/check/rewrite is an onnxscript rewriter rule. Its `as_function=True` mode is not used: it creates one
function overload per match with the attributes baked in, and ONNX shape inference (hence qonnx) ignores
overloads and resolves every call to the first body. So the single model-local function that keeps the file
runnable in plain onnxruntime is written here by hand: Conv, Relu, with each Conv attribute a reference to the
call's attribute of the same name.
"""

from __future__ import annotations

import onnx
from onnx import helper
from onnxscript import ir
from onnxscript.rewriter import pattern

FUSED_DOMAIN = "onnx_fuse"
FUSED_OP = "ConvRelu"
FUSED_OPSET = 1
CONV_ATTRIBUTES = {
    "auto_pad": onnx.AttributeProto.STRING,
    "dilations": onnx.AttributeProto.INTS,
    "group": onnx.AttributeProto.INT,
    "kernel_shape": onnx.AttributeProto.INTS,
    "pads": onnx.AttributeProto.INTS,
    "strides": onnx.AttributeProto.INTS,
}


class ConvRelu(pattern.RewriteRuleClassBase):
    def __init__(self) -> None:
        super().__init__(name=FUSED_OP)

    def pattern(self, op, x):
        # Conv's weight and optional bias ride along as "other inputs"; only the chain shape matters here.
        return op.Relu(op.Conv(x, _allow_other_inputs=True, _outputs=["conv_out"]))

    def check(self, context, x: ir.Value, conv_out: ir.Value, **_) -> bool:
        # Only the main graph: a function body holding Conv->Relu (ours included) stays as it is.
        if not isinstance(context.graph_or_function, ir.Graph):
            return False
        # The pre-ReLU value must vanish with the fusion: no fan-out, no graph output (the matcher also refuses
        # to remove such nodes; stated here so the rule does not depend on that).
        return len(conv_out.uses()) == 1 and not conv_out.is_graph_output()

    def rewrite(self, op, x: ir.Value, conv_out: ir.Value, **_):
        conv = conv_out.producer()
        # Keep the Conv's node name: hls4ml names its layers after nodes, so the fused layer stays recognisable.
        return op.ConvRelu(
            *conv.inputs, _domain=FUSED_DOMAIN, _version=FUSED_OPSET, _name=conv.name or None, **dict(conv.attributes)
        )


def conv_relu_rule() -> pattern.RewriteRule:
    return ConvRelu.rule()


def relu_function(name: str, inner: str, inputs: list[str], attributes: dict[str, int], onnx_opset: int) -> onnx.FunctionProto:
    """`name`(inputs) = Relu(`inner`(inputs)), each inner attribute a reference to the call's attribute of that name.

    A call may leave its last (bias) input out: it is then empty inside the body, which Conv and Gemm allow.
    """
    node = helper.make_node(inner, inputs, ["pre_relu"])
    node.attribute.extend(
        onnx.AttributeProto(name=attr, ref_attr_name=attr, type=kind) for attr, kind in attributes.items()
    )
    return helper.make_function(
        FUSED_DOMAIN,
        name,
        inputs=inputs,
        outputs=["Y"],
        nodes=[node, helper.make_node("Relu", ["pre_relu"], ["Y"])],
        opset_imports=[helper.make_opsetid("", onnx_opset)],
        attributes=list(attributes),
    )


def conv_relu_function(onnx_opset: int) -> onnx.FunctionProto:
    """ConvRelu(X, W[, B]) = Relu(Conv(X, W[, B]))."""
    return relu_function(FUSED_OP, "Conv", ["X", "W", "B"], CONV_ATTRIBUTES, onnx_opset)
