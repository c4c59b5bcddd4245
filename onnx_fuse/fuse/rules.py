"""One onnxscript rewriter rule per pattern of the table: producer -> activation => one `onnx_fuse::<op>` node.

Its `as_function=True` mode is not used: it creates one function overload per match with the attributes baked in,
and ONNX shape inference (hence qonnx) ignores overloads and resolves every call to the first body. The single
model-local function per op (patterns.Pattern.function) has attribute references instead, so it serves every call.
"""

from __future__ import annotations

from onnxscript import ir
from onnxscript.rewriter import pattern as rewriter
from onnxscript.rewriter._ir_utils import get_numpy_value

from onnx_fuse.patterns import ACTIVATION_ATTR_PREFIX, FUSED_DOMAIN, FUSED_OPSET, PATTERNS, Pattern


def activation_of(produced: ir.Value) -> ir.Node:
    return next(iter(produced.uses())).node


class FusePair(rewriter.RewriteRuleClassBase):
    def __init__(self, fused: Pattern) -> None:
        super().__init__(name=fused.op)
        self.fused = fused

    def pattern(self, op, x):
        produced = getattr(op, self.fused.producer.op)(x, _allow_other_inputs=True, _outputs=["produced"])
        return getattr(op, self.fused.activation.op)(produced, _allow_other_inputs=True)

    def check(self, context, x: ir.Value, produced: ir.Value, **_) -> bool:
        # Only the main graph: a function body holding the same chain (ours included) stays as it is.
        if not isinstance(context.graph_or_function, ir.Graph):
            return False
        # The pre-activation value must vanish with the fusion: no fan-out, no graph output.
        if len(produced.uses()) != 1 or produced.is_graph_output():
            return False
        producer = produced.producer()
        if self.fused.producer.needs_constant_weight and get_numpy_value(producer.inputs[1]) is None:
            return False
        extra = [get_numpy_value(v) for v in activation_of(produced).inputs[1:]]
        return self.fused.activation.refusal(extra) is None

    def rewrite(self, op, x: ir.Value, produced: ir.Value, **_):
        producer, activation = produced.producer(), activation_of(produced)
        inputs = list(producer.inputs)
        if activation.inputs[1:]:  # the activation's inputs follow the producer's full input list
            inputs += [None] * (len(self.fused.producer.inputs) - len(inputs)) + list(activation.inputs[1:])
        # Keep the producer's node name: hls4ml names its layers after nodes, so the fused layer stays recognisable.
        return getattr(op, self.fused.op)(
            *inputs, _domain=FUSED_DOMAIN, _version=FUSED_OPSET, _name=producer.name or None,
            **dict(producer.attributes),
            **{ACTIVATION_ATTR_PREFIX + name: attr.value for name, attr in activation.attributes.items()},
        )


def rules() -> rewriter.RewriteRuleSet:
    return rewriter.RewriteRuleSet([FusePair.rule(p) for p in PATTERNS])
