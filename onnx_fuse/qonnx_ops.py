"""QONNX input: qonnx's custom ops Quant, BipolarQuant and Trunc, made runnable in plain onnxruntime.

onnxruntime has no kernel for them, so each op used gets a model-local ONNX function (domain
qonnx.custom_op.general, named after the op) whose body computes qonnx 1.0's reference implementation
(`qonnx.custom_op.general.intquant.int_quant`, `trunc.trunc_v1/v2`, `bipolar_quant.binary_quant`) step by step
in the same float32 operations, so the result is identical to qonnx's executor. The nodes themselves are not
touched: qonnx and hls4ml still read a plain QONNX file, and the functions stay in the file written.

Attributes reach the body by reference. `signed`/`narrow` become tensors through Constant(value_int=@attr);
`rounding_mode` is a string, which ONNX arithmetic cannot use directly, so the body upper-cases it
(StringNormalizer, as qonnx does) and maps it to a code with ai.onnx.ml's LabelEncoder, computes every rounding
qonnx knows and selects one with Where; an unknown mode selects NaN (never a silently wrong number), and `prepare`
refuses it up front anyway.

The bodies are written with onnx.helper rather than onnxscript's @script: a function's opset import must equal the
model's, and the model's opset is only known per file.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from onnx_fuse import channels_last_ops, qonnx_params
from onnx_fuse.errors import InputError

QONNX_DOMAIN = "qonnx.custom_op.general"
# Domains qonnx 1.0 reads as QONNX_DOMAIN: ModelWrapper rewrites 'finn' (nodes without a `backend` attribute) and
# 'finn.custom_op.general' to it, its op registry resolves 'onnx.brevitas' to the same module, and cleanup_model
# sets every Quant/Trunc/BipolarQuant node to it. Nodes in these domains are rewritten the same way here.
DOMAIN_ALIASES = ("finn", "finn.custom_op.general", "onnx.brevitas")
# qonnx executes a node whose domain has no opset import at get_preferred_qonnx_opset() = 1.
DEFAULT_QONNX_OPSET = 1
ML_DOMAIN = "ai.onnx.ml"
MIN_ONNX_OPSET = 13  # Constant(value_string), Reshape with a shape input, GreaterOrEqual

# qonnx's resolve_rounding_mode, upper-cased: mode -> index of the rounding computed in `rounded`.
ROUNDING_CODES = {"ROUND": 0, "HALF_EVEN": 0, "CEIL": 1, "FLOOR": 2, "UP": 3, "DOWN": 4, "HALF_UP": 5, "HALF_DOWN": 6}

# qonnx's get_nodeattr_types: (name, type, required, default). Trunc changed signature at qonnx opset 2.
INT, STRING = onnx.AttributeProto.INT, onnx.AttributeProto.STRING
QUANT_ATTRS = [("signed", INT, True, 1), ("narrow", INT, True, 0), ("rounding_mode", STRING, False, "ROUND")]
TRUNC_V1_ATTRS = [("rounding_mode", STRING, True, "FLOOR")]
TRUNC_V2_ATTRS = [("rounding_mode", STRING, True, "FLOOR"), ("narrow", INT, False, 0), ("signed", INT, False, 1)]
QUANT_INPUTS = ["X", "scale", "zeropt", "bitwidth"]
TRUNC_V1_INPUTS = ["X", "scale", "zeropt", "in_bitwidth", "out_bitwidth"]
TRUNC_V2_INPUTS = ["X", "scale", "zeropt", "in_bitwidth", "out_scale", "out_bitwidth"]
BIPOLAR_INPUTS = ["X", "scale"]
RUNNABLE = ("Quant", "BipolarQuant", "Trunc")

log = logging.getLogger(__name__)


class Body:
    """Collects a function body's nodes; every op returns the name of its (single) output."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []

    def op(self, op_type: str, *inputs: str, domain: str = "", **attrs) -> str:
        out = f"{op_type[0].lower()}{op_type[1:]}_{len(self.nodes)}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], domain=domain, **attrs))
        return out

    def const(self, value: float) -> str:
        return self.op("Constant", value=numpy_helper.from_array(np.array(value, dtype=np.float32)))

    def attr(self, name: str, kind: int) -> str:
        """The call's attribute `name` as a tensor: int64 scalar, or a 0-d string."""
        field = "value_int" if kind == INT else "value_string"
        out = f"attr_{name}"
        node = helper.make_node("Constant", [], [out])
        node.attribute.append(onnx.AttributeProto(name=field, ref_attr_name=name, type=kind))
        self.nodes.append(node)
        return out

    def flag(self, name: str) -> str:
        return self.op("Cast", self.attr(name, INT), to=TensorProto.BOOL)


def rounded(b: Body, y: str) -> str:
    """qonnx's resolve_rounding_mode(@rounding_mode)(y), the same numpy steps in the same order."""
    mode = b.op("Reshape", b.attr("rounding_mode", STRING), b.op("Constant", value_ints=[1]))
    upper = b.op("StringNormalizer", mode, case_change_action="UPPER", locale="C")  # "C": no installed locale needed
    keys = list(ROUNDING_CODES)
    code = b.op(
        "LabelEncoder",
        upper,
        domain=ML_DOMAIN,
        keys_strings=keys,
        values_int64s=[ROUNDING_CODES[k] for k in keys],
        default_int64=-1,
    )
    code = b.op("Reshape", code, b.op("Constant", value=numpy_helper.from_array(np.zeros(0, np.int64))))
    sign, magnitude, half = b.op("Sign", y), b.op("Abs", y), b.const(0.5)
    candidates = [
        b.op("Round", y),  # np.round: half to even, as ONNX Round
        b.op("Ceil", y),
        b.op("Floor", y),
        b.op("Mul", sign, b.op("Ceil", magnitude)),  # UP: sign(x) * ceil(|x|)
        b.op("Where", b.op("GreaterOrEqual", y, b.const(0.0)), b.op("Floor", y), b.op("Ceil", y)),  # np.fix
        b.op("Mul", sign, b.op("Floor", b.op("Add", magnitude, half))),  # HALF_UP
        b.op("Mul", sign, b.op("Ceil", b.op("Sub", magnitude, half))),  # HALF_DOWN
    ]
    result = b.const(math.nan)
    for index in reversed(range(len(candidates))):
        chosen = b.op("Equal", code, b.op("Constant", value_int=index))
        result = b.op("Where", chosen, candidates[index], result)
    return result


def clamped(b: Body, y: str, bitwidth: str, signed: str, narrow: str) -> str:
    """qonnx's clamp to [min_int, max_int](signed, narrow, bitwidth), computed in float32 as qonnx does."""
    one, two = b.const(1.0), b.const(2.0)
    full = b.op("Pow", two, bitwidth)  # 2 ** bit_width
    half = b.op("Pow", two, b.op("Sub", bitwidth, one))  # 2 ** (bit_width - 1)
    high = b.op(
        "Where", signed, b.op("Sub", half, one), b.op("Where", narrow, b.op("Sub", full, two), b.op("Sub", full, one))
    )
    negative = b.op("Neg", half)
    low = b.op("Where", signed, b.op("Where", narrow, b.op("Add", negative, one), negative), b.const(0.0))
    y = b.op("Where", b.op("Greater", y, high), high, y)
    return b.op("Where", b.op("Less", y, low), low, y)


def bipolar(b: Body, y: str) -> str:
    return b.op("Where", b.op("GreaterOrEqual", y, b.const(0.0)), b.const(1.0), b.const(-1.0))


def quant_body(b: Body) -> None:
    """int_quant: y = x / scale + zeropt; 1-bit signed -> +-1, else round(clamp(y)); out = (y - zeropt) * scale."""
    signed = b.flag("signed")
    y = b.op("Add", b.op("Div", "X", "scale"), "zeropt")
    integer = rounded(b, clamped(b, y, "bitwidth", signed, b.flag("narrow")))
    one_bit_signed = b.op("And", b.op("Equal", "bitwidth", b.const(1.0)), signed)
    y = b.op("Where", one_bit_signed, bipolar(b, y), integer)
    b.nodes.append(helper.make_node("Mul", [b.op("Sub", y, "zeropt"), "scale"], ["Y"]))


def trunc_v1_body(b: Body) -> None:
    """trunc_v1: y = round(x / scale + zeropt) / 2 ** (in_bits - out_bits), rounded; out = (y - zeropt) * scale."""
    y = b.op("Round", b.op("Add", b.op("Div", "X", "scale"), "zeropt"))
    y = b.op("Div", y, b.op("Pow", b.const(2.0), b.op("Sub", "in_bitwidth", "out_bitwidth")))
    b.nodes.append(helper.make_node("Mul", [b.op("Sub", rounded(b, y), "zeropt"), "scale"], ["Y"]))


def trunc_v2_body(b: Body) -> None:
    """trunc_v2: y = round(x / scale + zeropt) / t with t = 2 ** round(log2(out_scale / scale)), clamped to the
    output bit width, rounded; out = (y - zeropt / t) * out_scale.

    log2 is Log(r) / float32(ln 2) here vs numpy's float32 log2 in qonnx; after Round they agree except for ratios
    within an ulp of 2 ** (k + 1/2), never for the power-of-2 ratios qonnx requires."""
    y = b.op("Round", b.op("Add", b.op("Div", "X", "scale"), "zeropt"))
    log2 = b.op("Div", b.op("Log", b.op("Div", "out_scale", "scale")), b.const(math.log(2.0)))
    step = b.op("Pow", b.const(2.0), b.op("Round", log2))
    y = clamped(b, b.op("Div", y, step), "out_bitwidth", b.flag("signed"), b.flag("narrow"))
    out_zeropt = b.op("Div", "zeropt", step)
    b.nodes.append(helper.make_node("Mul", [b.op("Sub", rounded(b, y), out_zeropt), "out_scale"], ["Y"]))


def bipolar_body(b: Body) -> None:
    """binary_quant: out = (x >= 0 ? 1 : -1) * scale."""
    b.nodes.append(helper.make_node("Mul", [bipolar(b, "X"), "scale"], ["Y"]))


Attr = tuple[str, int, bool, object]  # name, AttributeProto type, required by qonnx, qonnx's default


def signature(op_type: str, qonnx_opset: int) -> tuple[list[str], list[Attr], Callable[[Body], None]]:
    """The op's inputs, attributes and body builder (Trunc's depend on the file's qonnx opset, as in qonnx)."""
    if op_type == "Quant":
        return QUANT_INPUTS, QUANT_ATTRS, quant_body
    if op_type == "BipolarQuant":
        return BIPOLAR_INPUTS, [], bipolar_body
    if qonnx_opset >= 2:
        return TRUNC_V2_INPUTS, TRUNC_V2_ATTRS, trunc_v2_body
    return TRUNC_V1_INPUTS, TRUNC_V1_ATTRS, trunc_v1_body


def function(op_type: str, onnx_opset: int, qonnx_opset: int, ml_opset: int) -> onnx.FunctionProto:
    """The model-local function for one qonnx op, in the model's opset; optional attributes get qonnx's defaults."""
    inputs, attrs, build = signature(op_type, qonnx_opset)
    body = Body()
    build(body)
    proto = helper.make_function(
        QONNX_DOMAIN,
        op_type,
        inputs=inputs,
        outputs=["Y"],
        nodes=body.nodes,
        opset_imports=[helper.make_opsetid("", onnx_opset), helper.make_opsetid(ML_DOMAIN, ml_opset)],
        attributes=[name for name, _, required, _ in attrs if required],
    )
    proto.attribute_proto.extend(
        helper.make_attribute(name, default) for name, _, required, default in attrs if not required
    )
    return proto


def opset_version(model: onnx.ModelProto, domain: str) -> int | None:
    return next((o.version for o in model.opset_import if o.domain == domain), None)


def is_qonnx_domain(domain: str) -> bool:
    return domain == QONNX_DOMAIN or domain in DOMAIN_ALIASES or domain.startswith(("finn.", "qonnx."))


def canonical_domains(model: onnx.ModelProto) -> None:
    """Rewrite the aliases qonnx accepts to QONNX_DOMAIN, as qonnx does (a 'finn' node with a backend stays)."""
    for node in model.graph.node:
        if node.domain in DOMAIN_ALIASES and not (
            node.domain == "finn" and any(a.name == "backend" for a in node.attribute)
        ):
            node.domain = QONNX_DOMAIN
    used = {n.domain for n in model.graph.node}
    aliases = {o.domain: o.version for o in model.opset_import if o.domain in DOMAIN_ALIASES}
    kept = [o for o in model.opset_import if o.domain not in aliases or o.domain in used]
    if QONNX_DOMAIN in used and opset_version(model, QONNX_DOMAIN) is None:
        # qonnx often writes files without the import; an alias's version carries over, else qonnx's own default.
        kept.append(helper.make_opsetid(QONNX_DOMAIN, max(aliases.values(), default=DEFAULT_QONNX_OPSET)))
    del model.opset_import[:]
    model.opset_import.extend(kept)


def check_node(node: onnx.NodeProto, qonnx_opset: int) -> None:
    where = f"qonnx {node.op_type} node '{node.name or node.output[0]}'"
    if node.op_type not in RUNNABLE:
        raise InputError(
            f"unsupported qonnx op {node.op_type} (node '{node.name or node.output[0]}'): "
            f"onnx-fuse runs only {', '.join(RUNNABLE)}"
        )
    inputs, attrs, _ = signature(node.op_type, qonnx_opset)
    if len(node.input) != len(inputs) or not all(node.input):
        raise InputError(
            f"{where} has {len(node.input)} inputs; qonnx opset {qonnx_opset} expects {len(inputs)} ({', '.join(inputs)})"
        )
    given = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    for name, kind, required, default in attrs:
        if name not in given:
            if required:
                raise InputError(f"{where} lacks its required attribute '{name}'")
            continue
        value = given[name]
        if kind == INT and value not in (0, 1):
            raise InputError(f"{where}: attribute {name}={value}, expected 0 or 1")
        if kind == STRING:
            mode = value.decode() if isinstance(value, bytes) else str(value)
            if mode.upper() not in ROUNDING_CODES:
                raise InputError(
                    f"{where}: rounding_mode '{mode}' is not one qonnx executes ({', '.join(ROUNDING_CODES)})"
                )


def prepare(model: onnx.ModelProto) -> onnx.ModelProto:
    """Canonical qonnx domain and opset import, refuse what cannot run, attach one function per qonnx op used."""
    canonical_domains(model)
    onnx_opset = opset_version(model, "") or opset_version(model, "ai.onnx") or 0
    channels_last_ops.attach(model, onnx_opset)  # qonnx's channels-last Conv, MaxPool, BatchNormalization
    qonnx_nodes = [n for n in model.graph.node if is_qonnx_domain(n.domain) and n.domain != channels_last_ops.DOMAIN]
    if not qonnx_nodes:
        return model
    if onnx_opset < MIN_ONNX_OPSET:
        raise InputError(f"QONNX model with ONNX opset {onnx_opset}: onnx-fuse needs opset {MIN_ONNX_OPSET} or newer")
    qonnx_opset = opset_version(model, QONNX_DOMAIN) or DEFAULT_QONNX_OPSET
    ml_opset = opset_version(model, ML_DOMAIN) or 2
    if ml_opset < 2:
        raise InputError(f"QONNX model imports {ML_DOMAIN} opset {ml_opset}: onnx-fuse needs opset 2 or newer")
    for node in qonnx_nodes:
        check_node(node, qonnx_opset)
    for change in qonnx_params.as_float32(model, lambda n: is_qonnx_domain(n.domain) and n.op_type in RUNNABLE):
        log.debug("qonnx parameter %s", change)
    used = sorted({n.op_type for n in qonnx_nodes})
    # Ours replace any earlier copy (e.g. from a previous onnx-fuse run): they are the reference semantics.
    kept = [f for f in model.functions if not (f.domain == QONNX_DOMAIN and f.name in RUNNABLE)]
    del model.functions[:]
    model.functions.extend(kept + [function(op, onnx_opset, qonnx_opset, ml_opset) for op in used])
    return model


def strip_functions(model: onnx.ModelProto) -> onnx.ModelProto:
    """The file without the qonnx op functions, for consumers that must see plain Quant nodes (e.g. an inliner)."""
    kept = [f for f in model.functions if not (f.domain == QONNX_DOMAIN and f.name in RUNNABLE)]
    del model.functions[:]
    model.functions.extend(kept)
    return model
