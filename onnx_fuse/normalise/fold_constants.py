"""Fold constants, shape chains and BatchNorm/bias (also Keras 3's Mul+Add BatchNorm) into Conv with onnxslim.

qonnx nodes (Quant, ...) are never folded: a constant Quant(W) must stay a Quant node, because hls4ml reads the
weight precision from it. onnxslim's slim() has no per-node exclusion and folds through onnxruntime, which runs a
Quant through its model-local function; so every initializer a qonnx node reads is presented to onnxslim as a
graph input (a variable) for the duration of the call, and put back afterwards. onnxslim also rewrites the
bodies of model-local functions (renamed, reordered constants): the input's functions are put back unchanged.
"""

from __future__ import annotations

from collections import Counter

import onnx
import onnxslim
from onnx import helper

from onnx_fuse.qonnx_ops import is_qonnx_domain

# FusionGelu would introduce a non-standard op; nothing else onnxslim fuses leaves the ONNX standard domain.
SKIPPED_FUSIONS = ["FusionGelu"]
# weight_tying compares every pair of same-shape small constants (quadratic: 32 s at 2,000 Conv nodes) only to
# let equal constants share one initializer, which neither the fusion nor hls4ml needs.
SKIPPED_OPTIMIZATIONS = ["weight_tying"]
# Ops that none of onnxslim's folding, elimination or fusion patterns acts on unless a neighbour is a different op
# (Pad->Conv, Conv->Add/Mul/BatchNormalization, Gemm->Reshape->Mul/Add, ...), checked against onnxslim 0.1.98.
INERT_OPS = {
    "Conv", "Relu", "Gemm", "MaxPool", "AveragePool", "GlobalAveragePool", "Flatten", "Softmax",
    "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "Elu", "Selu",
}


def op_counts(model: onnx.ModelProto) -> Counter:
    return Counter(node.op_type for node in model.graph.node)


def hide_qonnx_constants(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[onnx.TensorProto]]:
    """A copy whose initializers read by qonnx nodes are graph inputs instead; returns the initializers taken."""
    read = {name for node in model.graph.node if is_qonnx_domain(node.domain) for name in node.input}
    hidden = [init for init in model.graph.initializer if init.name in read]
    if not hidden:
        return model, []
    model = onnx.ModelProto.FromString(model.SerializeToString())
    listed = {value.name for value in model.graph.input}
    kept = [init for init in model.graph.initializer if init.name not in read]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    model.graph.input.extend(
        helper.make_tensor_value_info(init.name, init.data_type, list(init.dims))
        for init in hidden
        if init.name not in listed
    )
    return model, hidden


def restore_qonnx_constants(model: onnx.ModelProto, hidden: list[onnx.TensorProto], listed: set[str]) -> None:
    """Put the hidden initializers back (those still read), and their input entries only where the file had them."""
    read = {name for node in model.graph.node for name in node.input}
    names = {init.name for init in hidden}
    inputs = [value for value in model.graph.input if value.name not in names or value.name in listed]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    model.graph.initializer.extend(init for init in hidden if init.name in read)


def something_to_fold(model: onnx.ModelProto) -> bool:
    """True unless a linear scan proves onnxslim has nothing to do. onnxslim costs ~1.3 ms per node of Python even
    when it changes nothing (10,000 nodes: 13 s), so a graph of plain layers skips it."""
    graph = model.graph
    constants = {init.name for init in graph.initializer}
    inputs = {value.name for value in graph.input}
    if constants & inputs:  # onnxslim drops initializers from the input list
        return True
    produced, consumed, seen = set(), Counter(), set()
    available = constants | inputs | {""}
    for node in graph.node:
        if node.op_type not in INERT_OPS or node.domain not in ("", "ai.onnx"):
            return True
        if not any(name not in constants for name in node.input if name):  # all inputs constant: foldable
            return True
        if any(name not in available for name in node.input):  # not topologically sorted: onnxslim sorts
            return True
        key = (node.op_type, tuple(name for name in node.input if name not in constants))
        if key in seen:  # same op on the same tensors: a candidate for subexpression elimination
            return True
        seen.add(key)
        consumed.update(node.input)
        produced.update(name for name in node.output if name)
        available.update(node.output)
    outputs = {value.name for value in graph.output}
    # dead nodes, unused initializers and unused graph inputs are removed by onnxslim's cleanup
    return any(name not in consumed and name not in outputs for name in produced | constants | inputs)


def apply(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    if not something_to_fold(model):
        # onnxslim would still have inferred the intermediate shapes that later passes read
        return onnx.shape_inference.infer_shapes(model), []
    before = op_counts(model)
    listed = {value.name for value in model.graph.input}
    visible, hidden = hide_qonnx_constants(model)
    slimmed = onnxslim.slim(visible, skip_fusion_patterns=SKIPPED_FUSIONS, skip_optimizations=SKIPPED_OPTIMIZATIONS)
    if hidden:
        restore_qonnx_constants(slimmed, hidden, listed)
    del slimmed.functions[:]
    slimmed.functions.extend(model.functions)
    after = op_counts(slimmed)
    changes = [f"{op}: {before[op]} -> {after[op]}" for op in sorted(before | after) if before[op] != after[op]]
    return slimmed, changes
