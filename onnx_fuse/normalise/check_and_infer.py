"""Run the ONNX checker and strict shape inference; every graph output must end with a static shape."""

from __future__ import annotations

import onnx

from onnx_fuse.errors import InputError
from onnx_fuse.load import first_line


def static_shape(value: onnx.ValueInfoProto) -> bool:
    tensor = value.type.tensor_type
    return tensor.HasField("shape") and all(d.HasField("dim_value") for d in tensor.shape.dim)


def apply(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    try:
        onnx.checker.check_model(model, full_check=True)
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except Exception as exc:
        raise InputError(f"the normalised graph fails the ONNX checker: {first_line(exc)}") from exc
    known = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    added = len(inferred.graph.value_info) - len(model.graph.value_info)
    changes = [f"{added} value shapes inferred"] if added > 0 else []
    for output in inferred.graph.output:
        if not static_shape(output):
            source = known.get(output.name)
            if source is None or not static_shape(source):
                raise InputError(f"cannot infer a static shape for output '{output.name}'")
            output.CopyFrom(source)
            changes.append(f"output '{output.name}': shape set from inference")
    return inferred, changes
