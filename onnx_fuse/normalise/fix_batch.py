"""Fix a dynamic batch dimension to 1; refuse any other dynamic dimension (hls4ml hardware has fixed shapes)."""

from __future__ import annotations

import onnx
from onnxslim.core import input_shape_modification

from onnx_fuse.errors import InputError


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    initializers = {init.name for init in model.graph.initializer}
    return [value for value in model.graph.input if value.name not in initializers]


def dims(value: onnx.ValueInfoProto) -> list[int | str | None]:
    if not value.type.tensor_type.HasField("shape"):
        raise InputError(f"input '{value.name}' has no shape: export the model with a fixed input shape")
    return [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in value.type.tensor_type.shape.dim
    ]


def apply(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    new_shapes, changes = [], []
    for value in graph_inputs(model):
        shape = dims(value)
        dynamic = [i for i, d in enumerate(shape) if not isinstance(d, int) or d <= 0]
        if any(i > 0 for i in dynamic):
            raise InputError(
                f"input '{value.name}' has dynamic dimensions {shape}: only the batch dimension may be dynamic"
            )
        if dynamic:
            new_shapes.append(f"{value.name}:{','.join(['1'] + [str(d) for d in shape[1:]])}")
            changes.append(f"input '{value.name}': batch {shape[0]!r} -> 1")
    if new_shapes:
        model = input_shape_modification(model, new_shapes)
        # onnxslim clears every derived shape; outputs get theirs back from check_and_infer.
    return model, changes
