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


def apply(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    before = op_counts(model)
    listed = {value.name for value in model.graph.input}
    visible, hidden = hide_qonnx_constants(model)
    slimmed = onnxslim.slim(visible, skip_fusion_patterns=SKIPPED_FUSIONS)
    if hidden:
        restore_qonnx_constants(slimmed, hidden, listed)
    del slimmed.functions[:]
    slimmed.functions.extend(model.functions)
    after = op_counts(slimmed)
    changes = [f"{op}: {before[op]} -> {after[op]}" for op in sorted(before | after) if before[op] != after[op]]
    return slimmed, changes
