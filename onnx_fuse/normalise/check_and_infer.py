"""Strict shape inference and the full ONNX checker; every graph output must end with a static shape."""

from __future__ import annotations

import onnx

from onnx_fuse.errors import InputError
from onnx_fuse.errors import first_line


def static_shape(value: onnx.ValueInfoProto) -> bool:
    tensor = value.type.tensor_type
    return tensor.HasField("shape") and all(d.HasField("dim_value") for d in tensor.shape.dim)


def apply(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    model = onnx.ModelProto.FromString(model.SerializeToString())
    changes = []
    for output in model.graph.output:
        if not static_shape(output):  # e.g. a dynamic batch fixed upstream: let inference fill it in
            output.type.tensor_type.ClearField("shape")
            changes.append(f"output '{output.name}': shape taken from inference")
    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
        onnx.checker.check_model(inferred, full_check=True)
    except Exception as exc:
        raise InputError(f"the normalised graph fails the ONNX checker: {first_line(exc)}") from exc
    for output in inferred.graph.output:
        if not static_shape(output):
            raise InputError(f"cannot infer a static shape for output '{output.name}'")
    return inferred, changes
