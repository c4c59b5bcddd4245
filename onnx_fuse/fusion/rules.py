"""The onnxscript rewriter rules of the pattern table: [producer -> [Quant ->]] activation => one onnx_fuse node.

One rule per activation, not per pattern: the activation's input is an OrValue over the table's producers, which
onnxscript dispatches on the producing op, so each node costs one match attempt per activation (3) instead of one
per pattern (12); the rewriter tries every rule at every node, and those attempts were most of the pass.

Its `as_function=True` mode is not used: it creates one function overload per match with the attributes baked in,
and ONNX shape inference (hence qonnx) ignores overloads and resolves every call to the first body. The single
model-local function per op (patterns.Pattern.function) has attribute references instead, so it serves every call.
"""

from __future__ import annotations

from onnxscript import ir
from onnxscript.rewriter import pattern as rewriter
from onnxscript.rewriter._ir_utils import get_numpy_value

from onnx_fuse.patterns import (
    ACTIVATION_ATTR_PREFIX, ACTIVATIONS, FUSED_DOMAIN, FUSED_OPSET, PATTERNS, PRODUCERS, QONNX_DOMAIN,
    QUANT_ATTR_PREFIX, Activation, Pattern,
)

# (producer ONNX op, Quant in between?, activation op) -> its table entry
BY_CHAIN = {(p.producer.op, p.producer.quant, p.activation.op): p for p in PATTERNS}


def is_constant_weight(value: ir.Value) -> bool:
    """A constant, or a qonnx Quant of constants (how QONNX stores a quantized weight)."""
    if get_numpy_value(value) is not None:
        return True
    node = value.producer()
    return (
        node is not None and node.op_type == "Quant" and node.domain == QONNX_DOMAIN
        and all(get_numpy_value(v) is not None for v in node.inputs)
    )


def only_use(value: ir.Value) -> ir.Node | None:
    """The single consumer of `value`, None if it has several or is a graph output (it must vanish when fused)."""
    uses = value.uses()
    return None if len(uses) != 1 or value.is_graph_output() else next(iter(uses)).node


class FusePair(rewriter.RewriteRuleClassBase):
    def __init__(self, activation: Activation) -> None:
        super().__init__(name=f"Fuse{activation.op}")
        self.activation = activation

    def pattern(self, op, x):
        def producers(quant: bool) -> list:  # fresh pattern nodes: one per producer of the table, reading x
            names = [p.op for p in PRODUCERS if p.quant == quant]
            return [getattr(op, name)(x, _allow_other_inputs=True, _outputs=["produced"]) for name in names]

        quantized = op.Quant(
            rewriter.OrValue(producers(quant=True)), _allow_other_inputs=True, _domain=QONNX_DOMAIN,
            _outputs=["quantized"],
        )
        return getattr(op, self.activation.op)(
            rewriter.OrValue([*producers(quant=False), quantized]), _allow_other_inputs=True
        )

    def fused(self, produced: ir.Value, quantized: ir.Value | None) -> Pattern:
        """The table entry of the matched chain."""
        return BY_CHAIN[(produced.producer().op_type, quantized is not None, self.activation.op)]

    def check(self, context, x: ir.Value, produced: ir.Value, quantized: ir.Value | None = None, **_) -> bool:
        # Only the main graph: a function body holding the same chain (ours included) stays as it is.
        if not isinstance(context.graph_or_function, ir.Graph):
            return False
        # Every intermediate value must vanish with the fusion: no fan-out, no graph output.
        pre = [produced] if quantized is None else [produced, quantized]
        if any(only_use(v) is None for v in pre):
            return False
        producer = produced.producer()
        if self.fused(produced, quantized).producer.needs_constant_weight and not is_constant_weight(producer.inputs[1]):
            return False
        extra = [get_numpy_value(v) for v in only_use(pre[-1]).inputs[1:]]
        return self.activation.refusal(extra) is None

    def rewrite(self, op, x: ir.Value, produced: ir.Value, quantized: ir.Value | None = None, **_):
        fused = self.fused(produced, quantized)
        producer = produced.producer()
        inputs = list(producer.inputs)
        attributes = dict(producer.attributes)
        chain = [produced] if quantized is None else [produced, quantized]
        activation = only_use(chain[-1])
        tail = list(activation.inputs[1:])
        if quantized is not None:
            quant = quantized.producer()
            tail = list(quant.inputs[1:]) + tail
            attributes.update({QUANT_ATTR_PREFIX + k: a.value for k, a in quant.attributes.items()})
        attributes.update({ACTIVATION_ATTR_PREFIX + k: a.value for k, a in activation.attributes.items()})
        if tail:  # what follows the producer's inputs starts after its full input list
            inputs += [None] * (len(fused.producer.inputs) - len(inputs)) + tail
        # Keep the producer's node name: hls4ml names its layers after nodes, so the fused layer stays recognisable.
        return getattr(op, fused.op)(
            *inputs, _domain=FUSED_DOMAIN, _version=FUSED_OPSET, _name=producer.name or None, **attributes
        )


def rules(op_types: set[str]) -> rewriter.RewriteRuleSet | None:
    """The rules for the activations among `op_types` (a graph's ops), None if there are none: the rewriter tries
    every rule at every node, so a rule that cannot match costs a failed attempt per node."""
    present = [FusePair.rule(a) for a in ACTIVATIONS if a.op in op_types]
    return rewriter.RewriteRuleSet(present) if present else None
