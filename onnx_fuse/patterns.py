"""The one table of fused patterns: producer (Conv, Dense) x activation (Relu, LeakyRelu, Clip).

Everything that knows what can be fused reads this table: the onnxscript rules and model-local functions
(fuse/rules.py), the `left unfused` reasons (fuse/unfused.py), the summary, and hls_backend's marking and
write-back (hls_backend/passes.py, templates.py). Adding an activation is one `Activation` entry here plus, when
hls4ml's ONNX front end lacks the op, its handler in hls_backend.

A fused node is `onnx_fuse::<Producer.prefix><Activation.op>` (ConvRelu, ConvLeakyRelu, ConvClip, DenseRelu, ...):
one op per pair kind rather than one op with an `activation` attribute, because a model-local ONNX function body
cannot branch on a string attribute, and the body is what keeps the file runnable in plain onnxruntime.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

FUSED_DOMAIN = "onnx_fuse"
FUSED_OPSET = 1
# Node metadata key on the activation node of a pair the file fused, after hls_backend unfolds the function again;
# qonnx keeps node metadata through cleanup and channels-last conversion. Its value is the fused op's name.
PAIR_KEY = "onnx_fuse.pair"


@dataclass(frozen=True)
class Producer:
    op: str  # the ONNX op computing the pre-activation value
    prefix: str  # of the fused op's name
    inputs: tuple[str, ...]  # function inputs; the last (bias) may be left out by a call
    attributes: dict[str, int]  # attribute -> AttributeProto type, each referenced by the function body
    needs_constant_weight: bool  # a Gemm is a Dense layer only with constant weights


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
PRODUCERS = (CONV, DENSE)

# hls4ml 1.3 nnet::relu: `res = data > 0 ? data : 0` (assignments convert to res_T).
RELU = Activation("Relu", (), {}, "return pre > 0 ? ({out_t})pre : ({out_t})0;")
# hls4ml 1.3 nnet::leaky_relu<data_T, param_T, res_T>(data, alpha, res): alpha arrives as param_T converted from the
# literal hls4ml prints (str of the float); the negative side is `alpha * data` in full precision, then res_T.
LEAKY_RELU = Activation(
    "LeakyRelu", (), {"alpha": onnx.AttributeProto.FLOAT},
    "{param_t} alpha = {param};\n    return pre > 0 ? ({out_t})pre : ({out_t})(alpha * pre);",
)
# hls4ml 1.3's ONNX front end has no Clip; hls_backend/clip.py gives it one stage with exactly this expression.
CLIP = Activation(
    "Clip", ("min", "max"), {},
    "return pre < {low} ? ({out_t}){low} : pre > {high} ? ({out_t}){high} : ({out_t})pre;",
)
ACTIVATIONS = (RELU, LEAKY_RELU, CLIP)


@dataclass(frozen=True)
class Pattern:
    producer: Producer
    activation: Activation

    @property
    def op(self) -> str:
        return self.producer.prefix + self.activation.op

    def function(self, onnx_opset: int) -> onnx.FunctionProto:
        """`op`(producer inputs..., activation inputs...) = activation(producer(...), ...), every attribute of both
        a reference to the call's attribute of the same name (one function serves every call)."""
        p, a = self.producer, self.activation
        inner = helper.make_node(p.op, list(p.inputs), ["pre"])
        inner.attribute.extend(onnx.AttributeProto(name=k, ref_attr_name=k, type=t) for k, t in p.attributes.items())
        act = helper.make_node(a.op, ["pre", *a.inputs], ["Y"])
        act.attribute.extend(
            onnx.AttributeProto(name=k, ref_attr_name=ACTIVATION_ATTR_PREFIX + k, type=t) for k, t in a.attributes.items()
        )
        return helper.make_function(
            FUSED_DOMAIN, self.op, inputs=[*p.inputs, *a.inputs], outputs=["Y"], nodes=[inner, act],
            opset_imports=[helper.make_opsetid("", onnx_opset)],
            attributes=[*p.attributes, *(ACTIVATION_ATTR_PREFIX + k for k in a.attributes)],
        )


PATTERNS = tuple(Pattern(p, a) for p in PRODUCERS for a in ACTIVATIONS)
BY_OP = {pattern.op: pattern for pattern in PATTERNS}
ACTIVATION_OPS = {a.op: a for a in ACTIVATIONS}
PRODUCER_OPS = {p.op: p for p in PRODUCERS}


def clip_bounds(extra: list[np.ndarray | None]) -> tuple[float, float] | None:
    """(min, max) of a Clip (opset >= 11: bounds are inputs) given the constant values of its bound inputs; None
    unless both are constant scalars."""
    if len(extra) != 2 or any(v is None or np.asarray(v).size != 1 for v in extra):
        return None
    low, high = (float(np.asarray(v).reshape(-1)[0]) for v in extra)
    return low, high
