"""QONNX parameters as the QONNX spec types them: float32.

qonnx 0.4's QKeras converter (the one hls4ml users used from 2021 to 2025) wrote Quant scales as float64 and zero
points and bit widths as int64. The runnable functions (qonnx_ops) compute in float32 like qonnx's reference, and
ONNX type-checks their bodies: Div(X: float, scale: double) is invalid. So every parameter input (everything after
X) of a Quant, BipolarQuant or Trunc that is not float32 is read as float32: a constant becomes a float32 copy, a
computed tensor gets a Cast. X itself is left as it is: its type is the graph's, not a parameter's.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def known_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element types of initializers, graph inputs, Constant outputs and whatever ONNX shape inference finds."""
    types: dict[str, int] = {}
    try:
        inferred = onnx.shape_inference.infer_shapes(model).graph
    except Exception:  # an inconsistent graph: the checker after prepare names the fault
        inferred = model.graph
    for value in list(inferred.input) + list(inferred.value_info) + list(inferred.output):
        if value.type.tensor_type.elem_type:
            types[value.name] = value.type.tensor_type.elem_type
    for node in model.graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            for attr in node.attribute:
                if attr.name == "value":
                    types[node.output[0]] = attr.t.data_type
    types.update({t.name: t.data_type for t in model.graph.initializer})
    return types


def as_float32(model: onnx.ModelProto, is_param_node: Callable[[onnx.NodeProto], bool]) -> list[str]:
    """Rewire the parameter inputs of the nodes `is_param_node` picks to float32 versions; returns what changed."""
    types = known_types(model)
    initializers = {t.name: t for t in model.graph.initializer}
    converted: dict[str, str] = {}  # original name -> float32 name
    casts: list[tuple[int, onnx.NodeProto]] = []  # (position of the first node that reads it, Cast)
    changes = []
    for position, node in enumerate(model.graph.node):
        if not is_param_node(node):
            continue
        for index in range(1, len(node.input)):
            name = node.input[index]
            kind = types.get(name)
            if not kind or kind == TensorProto.FLOAT:
                continue
            if name not in converted:
                converted[name] = f"{name}_float32"
                if name in initializers:
                    array = numpy_helper.to_array(initializers[name]).astype(np.float32)
                    model.graph.initializer.append(numpy_helper.from_array(array, converted[name]))
                else:
                    casts.append((position, helper.make_node("Cast", [name], [converted[name]], to=TensorProto.FLOAT)))
                changes.append(f"'{name}' {helper.tensor_dtype_to_np_dtype(kind)} -> float32")
            node.input[index] = converted[name]
    for position, cast in reversed(casts):
        model.graph.node.insert(position, cast)
    drop_unused(model, set(converted) & set(initializers))
    return changes


def drop_unused(model: onnx.ModelProto, names: set[str]) -> None:
    """Initializers (and their graph-input entries) among `names` that no node reads any more."""
    read = {name for node in model.graph.node for name in node.input} | {o.name for o in model.graph.output}
    unused = names - read
    for collection in (model.graph.initializer, model.graph.input):
        kept = [item for item in collection if item.name not in unused]
        del collection[:]
        collection.extend(kept)
