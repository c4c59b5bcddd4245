"""QDQ / QCDQ (QuantizeLinear [-> Clip] -> DequantizeLinear, as onnxruntime's static quantization, Brevitas'
export_onnx_qcdq and tf2onnx from int8 TFLite write) becomes qonnx Quant, the form hls4ml's QONNX flow reads.

qonnx's own QCDQToQuant does the conversion. It is exact against onnxruntime's QuantizeLinear/DequantizeLinear
wherever the zero point is 0, and on constants (weights, biases: a dequantized integer divides back to that
integer within far less than half a step). It is not exact for a runtime tensor with a non-zero zero point: qonnx's
Quant rounds x / scale + zeropt, QuantizeLinear rounds x / scale and then adds the zero point, so with an odd zero
point every rounding tie breaks the other way, and float32 drops low bits of x / scale when the zero point is added
(measured in onnxruntime 1.32: 279,355 of 1,048,576 near-tie inputs differ for zero point 37). Since
DequantizeLinear(QuantizeLinear(x)) = scale * clamp(round(x / scale), qmin - zp, qmax - zp), such a pair is first
rewritten in ONNX terms with zero point 0:
- a range [qmin - zp, qmax - zp] that is a plain signed one (uint8 with zero point 128 is int8 with 0): the pair
  with an int8 zero point of 0;
- any other range [lo, hi]: QuantizeLinear(int16, 0) -> Clip(-2^(b-1), 2^(b-1) - 1) -> DequantizeLinear, the b-bit
  signed range covering [lo, hi] (QCDQToQuant reads the Clip as the bit width), then Clip(lo * scale, hi * scale),
  which is exact because the output scale * k is monotonic in the integer k.
Both forms compute the same float32 numbers as the original pair in onnxruntime. Missing zero points (ONNX's
default uint8 0) are made explicit first (QCDQToQuant unpacks three inputs), per-axis constants get broadcastable
scales (see per_axis_constants), and int32 biases become their float32 values (see dequantized_biases). Whatever stays QuantizeLinear or
DequantizeLinear after the conversion (integer ops of the QOperator format, a dequantized runtime integer input,
per-axis zero points on a runtime tensor, blocked or float8 quantization) is refused in one line naming the node.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from onnx_fuse import qonnx_ops
from onnx_fuse.errors import InputError

QDQ = ("QuantizeLinear", "DequantizeLinear")
# element type -> (qmin, qmax); QCDQToQuant reads the same types
RANGES = {
    TensorProto.INT8: (-128, 127),
    TensorProto.UINT8: (0, 255),
    TensorProto.INT16: (-(2**15), 2**15 - 1),
    TensorProto.UINT16: (0, 2**16 - 1),
    TensorProto.INT32: (-(2**31), 2**31 - 1),
}


class Graph:
    """Lookups over a model that the rewrite below keeps in step."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.inits = {t.name: t for t in model.graph.initializer}
        self.constants = set(self.inits) | {n.output[0] for n in model.graph.node if n.op_type == "Constant"}
        self.users: dict[str, list[onnx.NodeProto]] = {}
        for node in model.graph.node:
            for name in node.input:
                self.users.setdefault(name, []).append(node)

    def array(self, name: str) -> np.ndarray | None:
        return numpy_helper.to_array(self.inits[name]) if name in self.inits else None

    def add(self, array: np.ndarray, hint: str) -> str:
        name = hint
        while name in self.inits:
            name += "_"
        self.inits[name] = numpy_helper.from_array(array, name)
        self.model.graph.initializer.append(self.inits[name])
        return name


def where(node: onnx.NodeProto) -> str:
    return f"{node.op_type} '{node.name or node.output[0]}'"


def check_supported(node: onnx.NodeProto) -> None:
    for attr in node.attribute:
        if attr.name == "block_size" and attr.i:
            raise InputError(
                f"{where(node)} uses blocked quantization (block_size {attr.i}), which qonnx's Quant cannot express"
            )
        if attr.name == "output_dtype" and attr.i and attr.i not in RANGES:
            raise InputError(
                f"{where(node)} quantizes to {helper.tensor_dtype_to_string(attr.i)}: "
                "onnx-fuse reads int8/uint8/int16/uint16/int32 QDQ only"
            )


def explicit_zero_points(graph: Graph) -> int:
    """QuantizeLinear / DequantizeLinear without a zero point get ONNX's default (uint8 0, or the type of a
    DequantizeLinear's integer input, or a QuantizeLinear's output_dtype)."""
    added = 0
    for node in graph.model.graph.node:
        if node.op_type not in QDQ or (len(node.input) > 2 and node.input[2]):
            continue
        kind = TensorProto.UINT8
        if node.op_type == "DequantizeLinear" and node.input[0] in graph.inits:
            kind = graph.inits[node.input[0]].data_type
        kind = next((a.i for a in node.attribute if a.name == "output_dtype" and a.i), kind)
        zero = graph.add(
            np.zeros((), helper.tensor_dtype_to_np_dtype(kind)), f"{node.name or node.output[0]}_zero_point"
        )
        del node.input[2:]
        node.input.append(zero)
        added += 1
    return added


def runtime_pairs(graph: Graph) -> list[tuple[onnx.NodeProto, list[onnx.NodeProto]]]:
    """(QuantizeLinear of a runtime tensor, the DequantizeLinear nodes reading it directly)."""
    pairs = []
    for node in graph.model.graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in graph.constants:
            continue
        readers = graph.users.get(node.output[0], [])
        dequants = [r for r in readers if r.op_type == "DequantizeLinear"]
        if dequants and len(dequants) == len(readers):
            pairs.append((node, dequants))
    return pairs


def signed_bits(lo: int, hi: int) -> int:
    bits = 1
    while -(2 ** (bits - 1)) > lo or 2 ** (bits - 1) - 1 < hi:
        bits += 1
    return bits


def zero_point_free(graph: Graph, quant: onnx.NodeProto, dequants: list[onnx.NodeProto]) -> str | None:
    """Rewrite a runtime QuantizeLinear -> DequantizeLinear pair with a non-zero zero point as the same numbers with
    zero point 0 (see the module docstring); returns the change, None when the zero point is already 0."""
    zero_point, scale = graph.array(quant.input[2]), graph.array(quant.input[1])
    if zero_point is None or scale is None or not np.any(zero_point):
        return None  # a runtime scale or zero point: QCDQToQuant leaves the pair, which is then refused
    for dq in dequants:
        same = dq.input[1:3] == quant.input[1:3] or (
            np.array_equal(graph.array(dq.input[1]), scale) and np.array_equal(graph.array(dq.input[2]), zero_point)
        )
        if not same:
            return None  # QCDQToQuant needs matching parameters too: refused afterwards
    if zero_point.size != 1:
        raise InputError(
            f"{where(quant)} has per-axis zero points on a runtime tensor: qonnx's Quant adds a zero point before "
            "rounding, QuantizeLinear after, so it would not compute the same numbers"
        )
    qmin, qmax = RANGES[graph.inits[quant.input[2]].data_type]
    lo, hi = qmin - int(zero_point.item()), qmax - int(zero_point.item())
    bits = signed_bits(lo, hi)
    name = quant.name or quant.output[0]
    signed_type = {8: np.int8, 16: np.int16}.get(bits)
    if (lo, hi) == (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) and signed_type is not None:
        zero = graph.add(np.zeros((), signed_type), f"{name}_signed_zero")
        for node in [quant, *dequants]:
            node.input[2] = zero
        return f"{where(quant)}: zero point {zero_point.item()} of [{qmin}, {qmax}] as {bits}-bit signed zero point 0"
    zero = graph.add(np.zeros((), np.int16), f"{name}_int16_zero")
    low = graph.add(np.array(-(2 ** (bits - 1)), np.int16), f"{name}_int_low")
    high = graph.add(np.array(2 ** (bits - 1) - 1, np.int16), f"{name}_int_high")
    quant.input[2] = zero
    clipped = f"{quant.output[0]}_clipped"
    nodes = list(graph.model.graph.node)
    position = next(i for i, n in enumerate(nodes) if n.output[:1] == quant.output[:1])
    graph.model.graph.node.insert(
        position + 1, helper.make_node("Clip", [quant.output[0], low, high], [clipped], name=f"{name}_int_clip")
    )
    s = np.float32(scale.item())
    bounds = (graph.add(np.float32(lo) * s, f"{name}_low"), graph.add(np.float32(hi) * s, f"{name}_high"))
    for dq in dequants:
        dq.input[0], dq.input[2] = clipped, zero
        out = dq.output[0]
        dq.output[0] = f"{out}_unclipped"
        position = next(i for i, n in enumerate(graph.model.graph.node) if n.output[:1] == dq.output[:1])
        graph.model.graph.node.insert(
            position + 1, helper.make_node("Clip", [dq.output[0], *bounds], [out], name=f"{dq.name or out}_range")
        )
    return (
        f"{where(quant)}: zero point {zero_point.item()} of [{qmin}, {qmax}] as a {bits}-bit zero point 0 "
        f"clipped to [{lo}, {hi}] steps"
    )


def constant_value_infos(model: onnx.ModelProto) -> None:
    """QCDQToQuant reads a dequantized constant's type and shape from a ValueInfo, which initializers lack unless
    listed as graph inputs (it fails on None otherwise)."""
    listed = {v.name for v in list(model.graph.input) + list(model.graph.value_info)}
    inits = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        name = node.input[0] if node.op_type == "DequantizeLinear" else None
        if name in inits and name not in listed:
            tensor = inits[name]
            model.graph.value_info.append(helper.make_tensor_value_info(name, tensor.data_type, list(tensor.dims)))
            listed.add(name)


def drop_scalar_axis(model: onnx.ModelProto, graph: Graph) -> None:
    """ONNX ignores `axis` for a per-tensor scale; QCDQToQuant indexes the scale's shape by it (fails on a 0-d one)."""
    for node in model.graph.node:
        scale = graph.array(node.input[1]) if node.op_type in QDQ else None
        if scale is not None and scale.ndim == 0:
            kept = [a for a in node.attribute if a.name != "axis"]
            del node.attribute[:]
            node.attribute.extend(kept)


def per_axis_constants(graph: Graph) -> int:
    """QCDQToQuant dequantizes a constant with the scale and zero point as stored, before it reshapes a per-axis
    scale for broadcasting (numpy fails on (C, 1, k, k) * (C,)): such scales and zero points are given their
    broadcast shape up front and `axis` dropped, a form only QCDQToQuant reads."""
    changed = 0
    for node in graph.model.graph.node:
        axis = next((a.i for a in node.attribute if a.name == "axis"), None)
        if node.op_type != "DequantizeLinear" or node.input[0] not in graph.inits or axis is None:
            continue
        rank = len(graph.inits[node.input[0]].dims)
        shape = [1] * rank
        scale = graph.array(node.input[1])
        if scale is None or scale.ndim != 1:
            continue
        shape[axis] = scale.size
        for index in (1, 2):
            array = graph.array(node.input[index])
            node.input[index] = graph.add(
                np.broadcast_to(array, scale.shape).reshape(shape), f"{node.input[index]}_axis"
            )
        kept = [a for a in node.attribute if a.name != "axis"]
        del node.attribute[:]
        node.attribute.extend(kept)
        changed += 1
    return changed


def dequantized_biases(graph: Graph) -> int:
    """DequantizeLinear of an int32 constant (the bias form of onnxruntime's QDQ, scale = input scale x weight
    scale) becomes its float32 value, computed as onnxruntime does (float(q - zp) * scale): a 32-bit Quant would tell
    hls4ml nothing (it is the accumulator's width), and hls4ml 1.3 cannot convert a Dense bias Quant whose scale is
    not a power of 2."""
    count = 0
    for node in list(graph.model.graph.node):
        if node.op_type != "DequantizeLinear" or node.input[0] not in graph.inits:
            continue
        if graph.inits[node.input[0]].data_type != TensorProto.INT32:
            continue
        ints, scale, zero = (graph.array(name) for name in node.input[:3])
        if scale is None or zero is None:
            continue
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        if scale.ndim == 1 and ints.ndim > 1:  # per-axis: scale and zero point along `axis`
            shape = [1] * ints.ndim
            shape[axis] = scale.size
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        value = (ints.astype(np.int64) - zero.astype(np.int64)).astype(np.float32) * scale.astype(np.float32)
        graph.add(value.astype(np.float32), node.output[0])
        graph.model.graph.node.remove(node)
        count += 1
    return count


SHAPE_OPS = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose")


def shape_ops_before_quantize(graph: Graph) -> int:
    """QuantizeLinear -> Reshape (or another op that only moves elements) -> DequantizeLinear, as tf2onnx writes an
    int8 TFLite model's input, becomes Reshape -> QuantizeLinear -> DequantizeLinear: with one scale and zero point
    for the whole tensor, quantizing commutes with moving elements, and QCDQToQuant needs the pair adjacent."""
    moved = 0
    nodes = list(graph.model.graph.node)
    for quant in [n for n in nodes if n.op_type == "QuantizeLinear"]:
        users = graph.users.get(quant.output[0], [])
        scale = graph.array(quant.input[1])
        if len(users) != 1 or users[0].op_type not in SHAPE_OPS or scale is None or scale.size != 1:
            continue
        shape_op = users[0]
        after = graph.users.get(shape_op.output[0], [])
        if not after or any(n.op_type != "DequantizeLinear" or list(n.input[1:]) != list(quant.input[1:]) for n in after):
            continue
        float_out = f"{shape_op.output[0]}_float"
        moved_op = helper.make_node(shape_op.op_type, [quant.input[0], *shape_op.input[1:]], [float_out],
                                    name=shape_op.name, domain=shape_op.domain)
        moved_op.attribute.extend(shape_op.attribute)
        requant = helper.make_node("QuantizeLinear", [float_out, *quant.input[1:]], list(shape_op.output),
                                   name=quant.name or f"{shape_op.name}_quantize")
        requant.attribute.extend(quant.attribute)
        index = nodes.index(shape_op)
        nodes[index : index + 1] = [moved_op, requant]
        nodes.remove(quant)
        moved += 1
    if moved:
        del graph.model.graph.node[:]
        graph.model.graph.node.extend(nodes)
        graph.__init__(graph.model)  # users changed
    return moved


# Ops that only move or select values: their output holds values of their input and nothing else.
VALUE_PRESERVING = {"MaxPool", "Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"}


def same_quant(a: onnx.NodeProto, b: onnx.NodeProto, inits: dict[str, np.ndarray]) -> bool:
    if a.op_type != "Quant" or b.op_type != "Quant" or a.domain != b.domain:
        return False
    attrs = [{x.name: helper.get_attribute_value(x) for x in n.attribute} for n in (a, b)]
    params = [[inits.get(name) for name in n.input[1:4]] for n in (a, b)]
    if any(p is None for group in params for p in group):
        return False
    return attrs[0] == attrs[1] and all(np.array_equal(x, y) for x, y in zip(*params))


def redundant_quants(model: onnx.ModelProto) -> int:
    """Drop a Quant that repeats the Quant before it across ops that only move values (onnxruntime's QDQ format
    requantizes around every MaxPool, Transpose and Reshape with the same parameters). Its input values are already
    (k - zeropt) * scale with k in range, which the same Quant returns unchanged, so dropping it is exact; hls4ml
    1.3 builds a broken design (a stream left with unread data) for the ApplyAlpha layers of a repeated float-scale
    Quant between a Transpose and a Reshape."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    producer = {out: node for node in model.graph.node for out in node.output}
    outputs = {o.name for o in model.graph.output}
    dropped = []
    for node in model.graph.node:
        if node.op_type != "Quant" or node.output[0] in outputs:
            continue
        source = producer.get(node.input[0])
        while source is not None and source.op_type in VALUE_PRESERVING:
            source = producer.get(source.input[0])
        if source is not None and same_quant(source, node, inits):
            dropped.append(node)
    renamed = {node.output[0]: node.input[0] for node in dropped}
    for node in dropped:
        model.graph.node.remove(node)
    for node in model.graph.node:
        for index, name in enumerate(node.input):
            while name in renamed:
                name = renamed[name]
            node.input[index] = name
    return len(dropped)


def apply(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    if not any(node.op_type in QDQ for node in model.graph.node):
        return model, []
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.qcdq_to_qonnx import QCDQToQuant

    model = onnx.ModelProto.FromString(model.SerializeToString())  # edit a copy, never the caller's graph
    for node in model.graph.node:
        if node.op_type in QDQ:
            check_supported(node)
    graph = Graph(model)
    changes = []
    drop_scalar_axis(model, graph)
    if added := explicit_zero_points(graph):
        changes.append(f"{added} default zero points made explicit")
    if biases := dequantized_biases(graph):
        changes.append(f"{biases} int32 biases dequantized to float32")
    per_axis_constants(graph)
    if moved := shape_ops_before_quantize(graph):
        changes.append(f"{moved} shape ops moved before their QuantizeLinear")
    for quant, dequants in runtime_pairs(graph):
        change = zero_point_free(graph, quant, dequants)
        if change:
            changes.append(change)
    del model.graph.value_info[:]  # zero-point types changed: QCDQToQuant reads the bit width from inferred types
    model = onnx.shape_inference.infer_shapes(model)
    constant_value_infos(model)
    before = sum(node.op_type in QDQ for node in model.graph.node)
    quants = sum(node.op_type == "Quant" for node in model.graph.node)
    model = ModelWrapper(model).transform(QCDQToQuant()).model
    left = [node for node in model.graph.node if node.op_type in QDQ]
    if left:
        node = left[0]
        reason = (
            "it reads a runtime integer tensor or has runtime parameters"
            if node.op_type == "DequantizeLinear"
            else "it is not followed by a DequantizeLinear with the same scale and zero point (QOperator integer ops?)"
        )
        raise InputError(f"{where(node)} cannot become a qonnx Quant: {reason}")
    made = sum(n.op_type == "Quant" for n in model.graph.node) - quants
    changes.append(f"{before} QuantizeLinear/DequantizeLinear nodes -> {made} qonnx Quant (qonnx QCDQToQuant)")
    if repeated := redundant_quants(model):
        changes.append(f"{repeated} Quant nodes that repeat the Quant before them across MaxPool/Transpose/Reshape dropped")
    return qonnx_ops.prepare(model), changes
