"""Turn an onnx-fuse file into the channels-last graph hls4ml's ONNX front end reads, with its fused pairs tagged.

qonnx knows nothing of onnx_fuse's ops: its shape inference and channels-last conversion would leave them
channels-first between Transposes, and hls4ml's conv parser refuses anything not channels-last. So each fused node's
function is inlined again (onnx's inliner: producer -> activation), the activation node is tagged with node
metadata (patterns.PAIR_KEY), the graph goes through hls4ml's documented qonnx recipe, which keeps node metadata
while it renames every node, and the tagged nodes' new names are returned: conversion.py marks those layers in the
hls4ml config and passes.py moves their activation into the producer's write-back. The fused and the unfused file
give the same graph here; only the marks differ.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import onnx.inliner
from onnx import helper, numpy_helper
from qonnx.core.modelwrapper import ModelWrapper

from hls_backend.constant_rank import DropLeadingOnesOfConstants
from hls_backend.pool1d import mark_1d_pools
from hls_backend.gemm_bias import ZeroBiasForGemm
from hls_backend.pooling import ChannelsLastAveragePool
from hls_backend.uniform_scales import is_po2, uniform_po2_weight_scales
from hls_backend.weight_scales import move_weight_scales_below
from hls_backend.resize import ChannelsLastResize, mark_1d_resizes
from onnx_fuse.patterns import BY_OP, FUSED_DOMAIN, PAIR_KEY, clip_bounds, fused_nodes

# hls4ml reads these attributes of a Clip node (hls_backend/clip.py); its front end looks up a shape for every
# node input, so the constant bounds move from inputs to attributes.
CLIP_LOW, CLIP_HIGH = "onnx_fuse_low", "onnx_fuse_high"


class UnsupportedModelError(ValueError):
    """The graph holds something hls4ml 1.3 + qonnx would crash on or convert into a wrong design."""


def load_model(model: str | Path | onnx.ModelProto) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        return copy
    return onnx.load(str(model))


def inline_and_tag(model: onnx.ModelProto) -> onnx.ModelProto:
    """Expand onnx_fuse's functions (only ours: a QONNX file's own functions stay) and tag each pair's activation."""
    pairs = {node.output[0]: node.op_type for node in fused_nodes(model)}
    inlined = onnx.inliner.inline_selected_functions(model, [(FUSED_DOMAIN, op) for op in BY_OP])
    kept = [f for f in inlined.functions if f.domain != FUSED_DOMAIN]
    del inlined.functions[:]
    inlined.functions.extend(kept)
    imports = [o for o in inlined.opset_import if o.domain != FUSED_DOMAIN]
    del inlined.opset_import[:]
    inlined.opset_import.extend(imports)
    for node in inlined.graph.node:
        if node.output and node.output[0] in pairs:
            node.metadata_props.add(key=PAIR_KEY, value=pairs[node.output[0]])
        # A bias-less call inlines to Conv(X, W, ""): an empty trailing input means "absent" in ONNX, but hls4ml
        # looks up a shape for every input name and fails on "".
        while node.input and not node.input[-1]:
            del node.input[-1]
    return inlined


def qonnx_channels_last(model: onnx.ModelProto) -> onnx.ModelProto:
    """hls4ml's documented qonnx recipe, with GemmToMatMul moved before channels-last (qonnx reads any transB
    attribute as true, including tf2onnx's explicit transB=0, unless the Gemm is gone first)."""
    from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
    from qonnx.util.cleanup import cleanup_model

    # onnx-fuse output can carry duplicate value_info entries, which ModelWrapper asserts on. They are inferred
    # again by ONNX, through the file's functions: qonnx's own shape inference cannot start a channels-last Conv or
    # MaxPool without its input's shape.
    del model.graph.value_info[:]
    model = onnx.shape_inference.infer_shapes(model)
    wrapped = gemms_as_matmuls(cleanup_model(ModelWrapper(model)))
    try:
        wrapped = wrapped.transform(ChannelsLastAveragePool())  # qonnx has no channels-last AveragePool
        wrapped = wrapped.transform(ChannelsLastResize())  # nor Resize
    except ValueError as exc:
        raise UnsupportedModelError(f"not supported on the hls4ml path: {exc}") from exc
    wrapped = wrapped.transform(ConvertToChannelsLastAndClean())
    wrapped = wrapped.transform(DropLeadingOnesOfConstants())  # hls4ml's ApplyAlpha wants batch-free constants
    move_weight_scales_below(wrapped.model)  # per-channel float weight scales, which hls4ml 1.3 cannot move
    wrapped = cleanup_model(wrapped)
    mark_1d_pools(wrapped.model)  # after qonnx's last shape inference, which does not know the marked ops
    mark_1d_resizes(wrapped.model)
    return wrapped.model


def gemms_as_matmuls(wrapped: ModelWrapper) -> ModelWrapper:
    """Each Gemm as the MatMul + Add hls4ml converts (qonnx's GemmToMatMul, hls4ml's recipe), a bias-less one with a
    zero bias first (GemmToMatMul needs the bias input)."""
    from qonnx.transformation.gemm_to_matmul import GemmToMatMul

    with warnings.catch_warnings():
        # qonnx warns for any Gemm above opset 9; tf2onnx's opset-13 Gemm (no broadcasting tricks) converts
        # correctly, checked end to end against onnxruntime in tests/test_hls_backend.py.
        warnings.filterwarnings("ignore", message="The GemmToMatMul transformation only offers", category=UserWarning)
        return wrapped.transform(ZeroBiasForGemm()).transform(GemmToMatMul())


def clip_bounds_as_attributes(model: onnx.ModelProto) -> None:
    constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type != "Clip":
            continue
        bounds = clip_bounds([constants.get(name) for name in node.input[1:3]])
        if bounds is None:
            raise UnsupportedModelError(f"Clip '{node.name}' needs constant scalar bounds on the hls4ml path")
        del node.input[1:]
        node.attribute.extend([helper.make_attribute(CLIP_LOW, bounds[0]), helper.make_attribute(CLIP_HIGH, bounds[1])])
    used = {name for node in model.graph.node for name in node.input}
    kept = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)


def check_dense_bias_scales(model: onnx.ModelProto) -> None:
    """hls4ml 1.3 crashes (IndexError in its precision inference) on a Dense whose bias comes from a Quant with a
    scale that is not a power of 2; after GemmToMatMul that bias is a constant Quant feeding an Add."""
    constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    adds = {name for node in model.graph.node if node.op_type == "Add" for name in node.input}
    for node in model.graph.node:
        if node.op_type != "Quant" or node.output[0] not in adds or node.input[0] not in constants:
            continue
        scale = constants.get(node.input[1])
        if scale is not None and not is_po2(scale):
            raise UnsupportedModelError(
                f"Quant '{node.name}' gives a Dense bias a scale that is not a power of 2, which hls4ml 1.3 cannot "
                "convert (its precision inference fails): export that bias unquantized or with a power-of-2 scale"
            )


def check_per_channel_weight_scales(model: onnx.ModelProto) -> None:
    """hls4ml 1.3 moves a weight Quant's float scale below its layer as an ApplyAlpha (move_scales.py) and cannot for
    a per-channel one on a Dense (ScaleDownMatMul broadcasts the weight-shaped scale to the output shape) or on a Conv
    whose input carries a float scale too (ScaleDownConv combines the two scales with a matrix product, which fails
    on the scalar input scale): it warns, leaves the weight Constant behind, and crashes on it (IndexError).
    weight_scales.py has already moved every scale that is one value per output channel; this refuses the rest."""
    constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    producers = {name: node for node in model.graph.node for name in node.output}
    for node in model.graph.node:
        if node.op_type not in ("MatMul", "Conv") or len(node.input) < 2:
            continue
        quant = producers.get(node.input[1])
        if quant is None or quant.op_type != "Quant" or quant.input[0] not in constants:
            continue
        scale = constants.get(quant.input[1])
        if scale is None or np.all(scale == scale.reshape(-1)[0]) or is_po2(scale):
            continue
        source = producers.get(node.input[0])
        in_scale = constants.get(source.input[1]) if source is not None and source.op_type == "Quant" else None
        if node.op_type == "Conv" and (in_scale is None or is_po2(in_scale)):
            continue
        raise UnsupportedModelError(
            f"Quant '{quant.name}' gives {node.op_type} '{node.name}' per-channel weight scales that are not powers of "
            f"2{' with a float input scale' if node.op_type == 'Conv' else ''}, which hls4ml 1.3 cannot convert (it "
            "fails to move them below the layer): use a per-tensor weight quantizer (e.g. Brevitas' "
            "Int8WeightPerTensorFloat) or power-of-2 scales"
        )


def check_stream_pools(model: onnx.ModelProto) -> None:
    """hls4ml 1.3's io_stream pooling asserts that a pool has no padding (nnet_pooling_stream.h): a padded MaxPool
    (PyTorch's `MaxPool2d(3, 2, padding=1)`) converts, then aborts C-sim. Refused before anything compiles."""
    for node in model.graph.node:
        pads = next((list(a.ints) for a in node.attribute if a.name == "pads"), [])
        if "Pool" in node.op_type and any(pads):
            raise UnsupportedModelError(
                f"not supported on the hls4ml path: {node.op_type} '{node.name}' with padding {pads} in io_stream "
                "(hls4ml 1.3's stream pooling requires unpadded pools)"
            )


def check_zero_points(model: onnx.ModelProto) -> None:
    """hls4ml 1.3's QONNX flow turns a Quant into its layer's type or an ApplyAlpha by its scale alone
    (QuantToActivation, FuseQuantWithConstant match on the scale and never look at the zero point): a non-zero zero
    point would be dropped and the design compute something else, silently. Refused before any conversion."""
    constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type != "Quant" or len(node.input) < 3:
            continue
        zero_point = constants.get(node.input[2])
        if zero_point is None or np.any(zero_point != 0):
            raise UnsupportedModelError(
                f"Quant '{node.name or node.output[0]}' has a {'runtime' if zero_point is None else 'non-zero'} zero "
                "point, which hls4ml 1.3's QONNX flow ignores (the design would compute something else): quantize "
                "with zero point 0 (symmetric) for the hls4ml path"
            )


def preprocess(model: str | Path | onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, str]]:
    """onnx-fuse file (or any plain ONNX graph) -> (channels-last graph for hls4ml, {activation node: fused op})."""
    original = load_model(model)
    inlined = inline_and_tag(original)
    check_zero_points(inlined)
    uniform_po2_weight_scales(inlined)  # per-channel power-of-2 weight scales, which hls4ml 1.3 cannot convert
    channels_last = qonnx_channels_last(inlined)
    check_dense_bias_scales(channels_last)
    check_per_channel_weight_scales(channels_last)
    clip_bounds_as_attributes(channels_last)
    marks = {
        node.name: prop.value
        for node in channels_last.graph.node
        for prop in node.metadata_props
        if prop.key == PAIR_KEY
    }
    return channels_last, marks
