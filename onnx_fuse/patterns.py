"""The one table of fused patterns: producer (Conv, Dense) x activation (Relu, LeakyRelu, Clip), and the epilogue
stages between them that hls4ml's write-back also takes (the scale and bias of float-scale quantized models).

Everything that knows what can be fused reads this table: the onnxscript rules and model-local functions
(fusion/rules.py), the `left unfused` reasons (fusion/unfused.py), the summary, and hls_backend's marking and
write-back (hls_backend/passes.py, templates.py). Adding an activation is one `Activation` entry here plus, when
hls4ml's ONNX front end lacks the op, its handler in hls_backend.

A fused node is `onnx_fuse::<Producer.prefix><Activation.op>` (ConvRelu, ConvLeakyRelu, ConvClip, DenseRelu, ...):
one op per pair kind rather than one op with an `activation` attribute, because a model-local ONNX function body
cannot branch on a string attribute, and the body is what keeps the file runnable in plain onnxruntime.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import onnx
from onnx import helper

from onnx_fuse.qonnx_ops import QONNX_DOMAIN

FUSED_DOMAIN = "onnx_fuse"
FUSED_OPSET = 1
# Node metadata key on the activation node of a pair the file fused, after hls_backend unfolds the function again;
# qonnx keeps node metadata through cleanup and channels-last conversion. Its value is the fused op's name.
PAIR_KEY = "onnx_fuse.pair"


# QONNX: a qonnx Quant between producer and activation (Brevitas' `output_quant`) fixes the pre-activation type.
QUANT_INPUTS = ("scale", "zeropt", "bitwidth")
QUANT_ATTRIBUTES = {"signed": onnx.AttributeProto.INT, "narrow": onnx.AttributeProto.INT,
                    "rounding_mode": onnx.AttributeProto.STRING}
# A fused node carries the middle Quant's attributes under this prefix.
QUANT_ATTR_PREFIX = "quant_"


@dataclass(frozen=True)
class Producer:
    op: str  # the ONNX op computing the pre-activation value
    prefix: str  # of the fused op's name
    inputs: tuple[str, ...]  # the op's inputs as function inputs; the last (bias) may be left out by a call
    attributes: dict[str, int]  # attribute -> AttributeProto type, each referenced by the function body
    needs_constant_weight: bool  # a Gemm is a Dense layer only with constant (or Quant-of-constant) weights
    quant: bool = False  # followed by a qonnx Quant (its inputs follow `inputs` in the function)

    def with_quant(self) -> "Producer":
        return replace(self, prefix=self.prefix + "Quant", quant=True)


# A fused node carries the activation's attributes under this prefix: Gemm and LeakyRelu both have an `alpha`.
ACTIVATION_ATTR_PREFIX = "activation_"


@dataclass(frozen=True)
class Activation:
    op: str  # ONNX op
    inputs: tuple[str, ...]  # its inputs after the pre-activation value (become function inputs after the producer's)
    attributes: dict[str, int]  # on the fused node as ACTIVATION_ATTR_PREFIX + name
    # C++ body of the write-back `nnet::cast` specialization after `pre = (pre_t)acc;`, returning the activation in
    # `out_t`: the same expression, in the same types, as the unfused hls4ml stage computes.
    write_back: str
    # The hls4ml layer the unfused stage is: its `activation` attribute (else its class name), lower case.
    hls_layer: str
    # write_back fields read from that layer's attributes: literals (printed with str.format, as hls4ml's templates
    # print them) and types (NamedType attributes, printed as their C++ definition).
    hls_values: tuple[str, ...] = ()
    hls_types: tuple[str, ...] = ()

    def refusal(self, extra: list[np.ndarray | None]) -> str | None:
        """Why an activation with these constant extra inputs (None: not constant) cannot be fused; None if it can."""
        if self.op == "Clip":
            bounds = clip_bounds(extra)
            if bounds is None:
                return "Clip bounds are not constant scalars"
            if not bounds[0] < bounds[1]:
                return f"Clip bounds ({bounds[0]:g}, {bounds[1]:g}) are empty"
        return None


CONV = Producer(
    "Conv", "Conv", ("X", "W", "B"),
    {
        "auto_pad": onnx.AttributeProto.STRING,
        "dilations": onnx.AttributeProto.INTS,
        "group": onnx.AttributeProto.INT,
        "kernel_shape": onnx.AttributeProto.INTS,
        "pads": onnx.AttributeProto.INTS,
        "strides": onnx.AttributeProto.INTS,
    },
    needs_constant_weight=False,
)
DENSE = Producer(
    "Gemm", "Dense", ("A", "B", "C"),
    {
        "alpha": onnx.AttributeProto.FLOAT,
        "beta": onnx.AttributeProto.FLOAT,
        "transA": onnx.AttributeProto.INT,
        "transB": onnx.AttributeProto.INT,
    },
    needs_constant_weight=True,
)
PRODUCERS = (CONV, DENSE, CONV.with_quant(), DENSE.with_quant())

# hls4ml 1.3 nnet::relu: `res = data > 0 ? data : 0` (assignments convert to res_T).
RELU = Activation("Relu", (), {}, "return pre > 0 ? ({out_t})pre : ({out_t})0;", hls_layer="relu")
# hls4ml 1.3 nnet::leaky_relu<data_T, param_T, res_T>(data, alpha, res): alpha arrives as param_T converted from the
# literal hls4ml prints (str of the float); the negative side is `alpha * data` in full precision, then res_T.
LEAKY_RELU = Activation(
    "LeakyRelu", (), {"alpha": onnx.AttributeProto.FLOAT},
    "{param_t} alpha = {activ_param};\n    return pre > 0 ? ({out_t})pre : ({out_t})(alpha * pre);",
    hls_layer="leakyrelu", hls_values=("activ_param",), hls_types=("param_t",),
)
# hls4ml 1.3's ONNX front end has no Clip; hls_backend/clip.py gives it one stage with exactly this expression.
CLIP = Activation(
    "Clip", ("min", "max"), {},
    "return pre < {low} ? ({out_t}){low} : pre > {high} ? ({out_t}){high} : ({out_t})pre;",
    hls_layer="onnxfuseclip", hls_values=("low", "high"),
)
ACTIVATIONS = (RELU, LEAKY_RELU, CLIP)


@dataclass(frozen=True)
class Epilogue:
    """A stage hls4ml puts between a pair's producer and its activation that the write-back computes too.

    A pair in the file (producer -> activation) can become producer -> stage -> activation in hls4ml; the fused
    layer then computes accumulator -> producer result type -> this stage -> activation -> output type.
    """

    hls_layer: str  # the hls4ml layer class, lower case
    weights: tuple[str, ...]  # the stage's weight arrays the expression reads, by hls4ml attribute name
    # C++ from the producer's result `{producer_t} product` to `{pre_t} pre` (the stage's result type), in the same
    # expression and types as the unfused stage. Weight fields name the arrays; `{i}` is the element read: per-tensor
    # stages hold one value repeated, so element 0 is the value every output gets.
    write_back: str


# hls4ml 1.3 nnet::normalize (ApplyAlpha, the scale and bias a float-scale Quant leaves after the producer, and a
# Dense's float bias): `res = product<data_T, scale_t>::product(data, scale[i]) + bias[i]` assigned to res_T, with
# product::mult's full-precision `a * w`.
SCALE_BIAS = Epilogue(
    "applyalpha", ("scale", "bias"),
    "{pre_t} pre = nnet::product::mult<{producer_t}, {scale_t}>::product(product, {scale}[{i}]) + {bias}[{i}];",
)
EPILOGUES = {e.hls_layer: e for e in (SCALE_BIAS,)}


@dataclass(frozen=True)
class Pattern:
    producer: Producer
    activation: Activation

    @property
    def op(self) -> str:
        return self.producer.prefix + self.activation.op

    def function(self, onnx_opset: int, qonnx_opset: int | None = None) -> onnx.FunctionProto:
        """`op`(producer inputs..., [Quant inputs...,] activation inputs...) = activation([Quant(]producer(...)...),
        every attribute a reference to the call's attribute of that name (one function serves every call)."""
        p, a = self.producer, self.activation
        nodes = [_referencing(helper.make_node(p.op, list(p.inputs), ["pre"]), p.attributes)]
        inputs, attributes = [*p.inputs], [*p.attributes]
        opsets = [helper.make_opsetid("", onnx_opset)]
        if p.quant:
            quant = helper.make_node("Quant", ["pre", *QUANT_INPUTS], ["quantized"], domain=QONNX_DOMAIN)
            nodes.append(_referencing(quant, QUANT_ATTRIBUTES, QUANT_ATTR_PREFIX))
            inputs += QUANT_INPUTS
            attributes += [QUANT_ATTR_PREFIX + k for k in QUANT_ATTRIBUTES]
            opsets.append(helper.make_opsetid(QONNX_DOMAIN, qonnx_opset or 1))
        act = helper.make_node(a.op, [nodes[-1].output[0], *a.inputs], ["Y"])
        nodes.append(_referencing(act, a.attributes, ACTIVATION_ATTR_PREFIX))
        return helper.make_function(
            FUSED_DOMAIN, self.op, inputs=[*inputs, *a.inputs], outputs=["Y"], nodes=nodes, opset_imports=opsets,
            attributes=[*attributes, *(ACTIVATION_ATTR_PREFIX + k for k in a.attributes)],
        )


def _referencing(node: onnx.NodeProto, attributes: dict[str, int], prefix: str = "") -> onnx.NodeProto:
    """`node` with each attribute a reference to the calling node's attribute `prefix + name`."""
    node.attribute.extend(
        onnx.AttributeProto(name=k, ref_attr_name=prefix + k, type=t) for k, t in attributes.items()
    )
    return node


PATTERNS = tuple(Pattern(p, a) for p in PRODUCERS for a in ACTIVATIONS)
BY_OP = {pattern.op: pattern for pattern in PATTERNS}
ACTIVATION_OPS = {a.op: a for a in ACTIVATIONS}
PRODUCER_OPS = {p.op: p for p in PRODUCERS if not p.quant}  # ONNX op -> its plain producer


def fused_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.domain == FUSED_DOMAIN and n.op_type in BY_OP]


def clip_bounds(extra: list[np.ndarray | None]) -> tuple[float, float] | None:
    """(min, max) of a Clip (opset >= 11: bounds are inputs) given the constant values of its bound inputs; None
    unless both are constant scalars."""
    if len(extra) != 2 or any(v is None or np.asarray(v).size != 1 for v in extra):
        return None
    low, high = (float(np.asarray(v).reshape(-1)[0]) for v in extra)
    return low, high
