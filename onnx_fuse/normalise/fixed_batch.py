"""Free a fixed batch other than 1 (PyTorch exports traced with batch 4, or 789444), once the graph is shown to
treat every sample on its own; then fix_batch sets it to 1 like any dynamic batch.

The batch becomes a symbolic `N`. A Reshape target that spells the batch out (`[B, -1]`) gets 0 there instead,
ONNX's "copy this dimension": at batch B the graph computes exactly what the file did. Independence is then
checked by running it: a batch of two samples must give each sample's batch-of-one result. An op that mixes samples
(a Reshape or Concat across the batch, a reduction over it, a constant shape with B baked in) fails this, and the
file is refused. No library does this (onnxslim's input_shape_modification only rewrites the input shapes).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from onnx_fuse.errors import InputError, first_line

BATCH = "N"
# a batch of two vs two batches of one may differ in the last bits (another GEMM kernel), never more
RTOL, ATOL = 1e-4, 1e-5


def fixed_batch(model: onnx.ModelProto) -> int | None:
    """The batch B > 1 that every graph input leads with, None when there is none (inputs that disagree have no
    common batch axis: another kind of input, e.g. a parameter fed at run time)."""
    initializers = {init.name for init in model.graph.initializer}
    leading = set()
    for value in model.graph.input:
        if value.name in initializers:
            continue
        dims = value.type.tensor_type.shape.dim
        leading.add(dims[0].dim_value if dims and dims[0].HasField("dim_value") else None)
    batch = leading.pop() if len(leading) == 1 else None
    return batch if batch is not None and batch > 1 else None


def constant_arrays(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    arrays = {init.name: init for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            arrays[node.output[0]] = node.attribute[0].t
    return arrays


def leading_dims(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    return {
        v.name: v.type.tensor_type.shape.dim[0].dim_value
        for v in list(graph.input) + list(graph.value_info) + list(graph.output)
        if v.type.tensor_type.shape.dim and v.type.tensor_type.shape.dim[0].HasField("dim_value")
    }


def free_reshapes(model: onnx.ModelProto, batch: int) -> int:
    """Write 0 for B in each constant Reshape target whose input has the batch B up front; count them."""
    arrays, dims = constant_arrays(model), leading_dims(model)
    freed = 0
    for node in model.graph.node:
        if node.op_type != "Reshape" or node.input[1] not in arrays:
            continue
        target = numpy_helper.to_array(arrays[node.input[1]])
        if target.size == 0 or target[0] != batch:
            continue
        allowzero = any(a.name == "allowzero" and a.i for a in node.attribute)
        if allowzero or dims.get(node.input[0]) != batch:
            raise InputError(
                f"Reshape '{node.name or node.output[0]}' has the batch {batch} baked into its target "
                f"{target.tolist()} on a tensor that does not lead with the batch: cannot set the batch to 1"
            )
        freed_target = target.copy()
        freed_target[0] = 0
        arrays[node.input[1]].CopyFrom(numpy_helper.from_array(freed_target, node.input[1]))
        freed += 1
    return freed


def symbolic_batch(model: onnx.ModelProto, batch: int) -> onnx.ModelProto:
    initializers = {init.name for init in model.graph.initializer}
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if value.name in initializers or not dims:
            continue
        if dims[0].HasField("dim_value") and dims[0].dim_value != batch:
            raise InputError(
                f"'{value.name}' leads with {dims[0].dim_value}, not the batch {batch}: the graph does not keep samples "
                "apart, so its batch cannot be set to 1"
            )
        dims[0].dim_param = BATCH
    del model.graph.value_info[:]  # derived shapes carry the old batch
    return model


def samples(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Two seeded samples per input (batch axis first)."""
    rng = np.random.default_rng(0)
    initializers = {init.name for init in model.graph.initializer}
    feeds = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        shape = (2, *(d.dim_value for d in tensor.shape.dim[1:]))
        dtype = helper.tensor_dtype_to_np_dtype(tensor.elem_type)
        floats = np.issubdtype(dtype, np.floating)
        feeds[value.name] = (rng.standard_normal(shape) if floats else rng.integers(0, 2, shape)).astype(dtype)
    return feeds


def check_samples_independent(model: onnx.ModelProto, batch: int) -> None:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    feeds = samples(model)
    try:
        sess = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        pair = sess.run(None, feeds)
        alone = [sess.run(None, {k: v[i : i + 1] for k, v in feeds.items()}) for i in range(2)]
    except Exception as exc:
        raise InputError(
            f"the graph fixes its batch at {batch} and does not run at another batch ({first_line(exc)}): "
            "export it with batch 1 or a dynamic batch"
        ) from exc
    for out, value in enumerate(model.graph.output):
        single = np.concatenate([alone[0][out], alone[1][out]])
        if pair[out].shape != single.shape or not np.allclose(pair[out], single, rtol=RTOL, atol=ATOL):
            raise InputError(
                f"output '{value.name}' mixes samples across the batch (fixed at {batch}): cannot set the batch to 1"
            )


def apply(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """The graph with its fixed batch made symbolic and shown to be per-sample; unchanged when the batch is 1."""
    batch = fixed_batch(model)
    if batch is None:
        return model, []
    model = onnx.ModelProto.FromString(model.SerializeToString())  # edit a copy, never the caller's graph
    freed = free_reshapes(model, batch)
    model = symbolic_batch(model, batch)
    check_samples_independent(model, batch)
    return model, [f"fixed batch {batch} made symbolic ({freed} Reshape targets freed), samples shown independent"]

